#!/usr/bin/env bash
# Generates a local CA and one server certificate for a domain and its tenants, with openssl:
#   scripts/gen-certs.sh OUT_DIR DOMAIN TENANT...
# The certificate covers <tenant>.<domain> and *.<tenant>.<domain> for each tenant (bootstrap and broker names).
# Existing files are kept, so clients that trust the CA keep working across runs.
set -euo pipefail
out=$1 domain=$2; shift 2
mkdir -p "$out"
cd "$out"
if [[ ! -f ca.pem ]]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 825 \
    -subj "/CN=kaas local CA" -keyout ca.key -out ca.pem 2>/dev/null
fi
if [[ ! -f server.pem ]]; then
  sans="DNS:*.${domain}"
  for t in "$@"; do sans+=",DNS:${t}.${domain},DNS:*.${t}.${domain}"; done
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=${domain}" \
    -keyout server.key -out server.csr 2>/dev/null
  printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' "$sans" > server.ext
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 365 \
    -extfile server.ext -out server.pem 2>/dev/null
  rm -f server.csr server.ext
fi
echo "$out/ca.pem $out/server.pem $out/server.key"
