#!/usr/bin/env bash
# Installs everything the demo and the test suite need, idempotently: each step checks first and skips what is
# already there, so a second run takes seconds. Safe to run as root on a fresh Debian machine.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\033[1m[prereqs]\033[0m %s\n' "$*"; }
SUDO=""
[[ $(id -u) -eq 0 ]] || SUDO="sudo"

# --- Debian packages -------------------------------------------------------------------------------------------
# libnss-myhostname: every *.localhost name resolves to loopback, so b111.acme.kaas.localhost works with no DNS.
# libssl-dev/pkg-config/zlib1g-dev/make/g++: rdkafka-sys builds librdkafka from source (Debian's 2.0.2 is too old).
# openssl: the demo generates its local CA and certificates with it.
# openjdk-17-jre-headless/maven: the tests' real Kafka brokers run on Java 17; Maven fetches their jars.
apt_pkgs=(libnss-myhostname libssl-dev pkg-config zlib1g-dev make g++ openssl python3-venv
  openjdk-17-jre-headless maven)
missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  log "apt: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
else
  log "apt: all present"
fi
# The package's postinst normally adds myhostname to nsswitch.conf; make sure, since tests depend on it.
if ! grep -Eq '^hosts:.*myhostname' /etc/nsswitch.conf; then
  log "nsswitch: adding myhostname to the hosts line"
  $SUDO sed -i -E 's/^(hosts:.*)$/\1 myhostname/' /etc/nsswitch.conf
fi
getent hosts b111.acme.kaas.localhost >/dev/null || { echo "*.localhost does not resolve; check /etc/nsswitch.conf" >&2; exit 1; }

# --- Tansu, the Kafka broker the tests and the demo run against ---------------------------------------------------
export PATH="$HOME/.cargo/bin:$PATH"
if command -v tansu >/dev/null; then
  log "tansu: $(command -v tansu)"
else
  log "tansu: cargo install (about 12 minutes the first time)"
  cargo install tansu --locked --features dynostore,libsql
fi

# --- Apache Kafka, the real tenant clusters of the end-to-end tests ----------------------------------------------
# The versions in scripts/kafka/versions.env, from Maven Central into ~/.cache/kaas/kafka/ (about 2 minutes
# the first time; a version already complete is skipped).
scripts/install-kafka.sh

# --- cargo-nextest (the test runner) -----------------------------------------------------------------------------
if ! cargo nextest --version >/dev/null 2>&1; then
  log "cargo-nextest: installing"
  cargo install cargo-nextest --locked
fi

# --- cargo-fuzz (the broker-response fuzz target, scripts/fuzz.sh) ----------------------------------------------
if ! cargo fuzz --version >/dev/null 2>&1; then
  log "cargo-fuzz: installing"
  cargo install cargo-fuzz --locked
fi

# --- Python clients in a virtual environment ---------------------------------------------------------------------
VENV=.venv
if [[ ! -x $VENV/bin/python ]]; then
  log "python: creating $VENV"
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c 'import confluent_kafka, kafka, helm_python, kubernetes_validate, jsonschema, yaml, pytest' 2>/dev/null; then
  log "python: installing clients and chart-test tools"
  "$VENV/bin/pip" install -q -r tests/python/requirements.txt
else
  log "python: clients present"
fi
log "done"
