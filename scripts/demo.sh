#!/usr/bin/env bash
# The demo: a local Tansu broker behind kaas-proxy, tenant "demo", reachable as demo.kaas.localhost over TLS.
#   scripts/demo.sh          install prerequisites, start both, produce and consume through the proxy
#   scripts/demo.sh stop     stop them
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
dir=$root/.demo
port=${DEMO_PORT:-9092}
broker_port=${DEMO_BROKER_PORT:-19092}
export PATH="$HOME/.cargo/bin:$PATH"

stop() {
  for p in proxy tansu; do
    if [[ -f $dir/$p.pid ]] && kill "$(cat "$dir/$p.pid")" 2>/dev/null; then echo "stopped $p"; fi
    rm -f "$dir/$p.pid"
  done
}
if [[ ${1:-} == stop ]]; then stop; exit 0; fi

scripts/install-prereqs.sh
cargo build --release -p kaas-proxy
stop
mkdir -p "$dir"
scripts/gen-certs.sh "$dir/certs" kaas.localhost demo >/dev/null

cat > "$dir/kaas-proxy.yaml" <<YAML
listen: "[::]:$port"
domain: kaas.localhost
tls:
  cert: certs/server.pem
  key: certs/server.key
tenants:
  - name: demo
    bootstrap: ["127.0.0.1:$broker_port"]
YAML

(cd "$dir" && exec tansu broker --listener-url "tcp://127.0.0.1:$broker_port" \
  --advertised-listener-url "tcp://127.0.0.1:$broker_port" --storage-engine memory://tansu/ \
  >"$dir/tansu.log" 2>&1) &
echo $! > "$dir/tansu.pid"
"$root/target/release/kaas-proxy" --config "$dir/kaas-proxy.yaml" >"$dir/proxy.log" 2>&1 &
echo $! > "$dir/proxy.pid"

wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  echo "nothing listens on port $1; see $dir/*.log" >&2; stop; exit 1; }
wait_port "$broker_port"
wait_port "$port"

echo "== producing 5 records and consuming them back through demo.kaas.localhost:$port (TLS)"
.venv/bin/python tests/python/kafka_clients.py roundtrip --bootstrap "demo.kaas.localhost:$port" \
  --ca "$dir/certs/ca.pem" --topic demo --group demo-group --count 5 --run demo > "$dir/roundtrip.json"
.venv/bin/python - "$dir/roundtrip.json" <<'PY'
import base64, json, sys
r = json.load(open(sys.argv[1]))
for m in r["consumed"]:
    print(f"  partition {m['partition']} offset {m['offset']} key {base64.b64decode(m['key']).decode()}"
          f" ({len(base64.b64decode(m['value']))} value bytes)")
assert len(r["consumed"]) == 5 and all("error" not in m for m in r["consumed"]), r
PY
cat <<TXT

kaas-proxy is running on port $port for tenant "demo" (logs: $dir/proxy.log, $dir/tansu.log).
Connect any Kafka client with exactly these settings:

  bootstrap.servers = demo.kaas.localhost:$port
  security.protocol = SSL
  ssl.ca.location   = $dir/certs/ca.pem

Stop everything with: scripts/demo.sh stop
TXT
