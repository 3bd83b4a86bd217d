#!/usr/bin/env bash
# The demo: a single-node Apache Kafka broker (KRaft, from the jars install-prereqs caches) behind kaas-proxy,
# tenant "demo", reachable as demo.kaas.localhost over TLS with the proxy's own CA.
#   scripts/demo.sh          install prerequisites, start both, go through the proxy with three clients, print
#                            the settings each client needs
#   scripts/demo.sh stop     stop them
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
dir=$root/.demo
port=${DEMO_PORT:-9092}
broker_port=${DEMO_BROKER_PORT:-19092}
controller_port=${DEMO_CONTROLLER_PORT:-19093}
export PATH="$HOME/.cargo/bin:$PATH"
# shellcheck source=kafka/versions.env
source scripts/kafka/versions.env
kafka_home="${KAAS_CACHE:-$HOME/.cache/kaas}/kafka/$KAFKA_VERSION"

stop() {
  # tansu: what an earlier version of the demo ran.
  for p in proxy kafka tansu; do
    [[ -f $dir/$p.pid ]] || continue
    pid=$(<"$dir/$p.pid")
    if kill "$pid" 2>/dev/null; then
      # Kafka shuts down in order on SIGTERM; wait, so that its ports are free for the next start.
      for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
      echo "stopped $p"
    fi
    rm -f "$dir/$p.pid"
  done
}
if [[ ${1:-} == stop ]]; then stop; exit 0; fi

scripts/install-prereqs.sh
cargo build --release -p kaas-proxy
stop
mkdir -p "$dir"
scripts/gen-certs.sh "$dir/certs" kaas.localhost demo >/dev/null
ca=$dir/certs/ca.pem

# --- the tenant's cluster: one node, broker and controller, on loopback only, fresh data every run ------------
kafka=$dir/kafka
rm -rf "$kafka"
mkdir -p "$kafka"
cat >"$kafka/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://127.0.0.1:$broker_port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$broker_port
log.dirs=$kafka/data
num.partitions=3
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
PROPS
# As the tests run Kafka (tests/src/kafka.rs): the serial collector, the C1 JIT, and the class-data archive
# install-prereqs trained on this class path, which makes start-up about 40 % faster.
java=(java -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto -XX:-UsePerfData)
[[ -f $kafka_home/kafka.jsa ]] && java+=("-XX:SharedArchiveFile=$kafka_home/kafka.jsa")
java+=(-cp "$kafka_home/libs/*")
broker=("${java[@]}" -Xms128m -Xmx512m "-Dkafka.logs.dir=$kafka"
  "-Dlog4j2.configurationFile=$root/scripts/kafka/log4j2.properties")
# Any 16 bytes in URL-safe base64 name the cluster: "kaas-demo-kafka1".
"${broker[@]}" kafka.tools.StorageTool format --cluster-id a2Fhcy1kZW1vLWthZmthMQ \
  --config "$kafka/server.properties" >"$kafka/format.log" 2>&1 \
  || { cat "$kafka/format.log" >&2; exit 1; }
(cd "$kafka" && exec "${broker[@]}" kafka.Kafka server.properties >"$kafka/stdout.log" 2>&1) &
echo $! >"$dir/kafka.pid"

cat >"$dir/kaas-proxy.yaml" <<YAML
listen: "[::]:$port"
domain: kaas.localhost
tls:
  cert: certs/server.pem
  key: certs/server.key
tenants:
  - name: demo
    bootstrap: ["127.0.0.1:$broker_port"]
    upstream: { plaintext: true }
YAML
"$root/target/release/kaas-proxy" --config "$dir/kaas-proxy.yaml" >"$dir/proxy.log" 2>&1 &
echo $! >"$dir/proxy.pid"

fail() { echo "$1" >&2; tail -n 20 "$2" >&2; stop; exit 1; }
# The broker logs this once it serves clients; the listener alone opens earlier.
for _ in $(seq 600); do
  grep -q 'Kafka Server started' "$kafka/server.log" 2>/dev/null && break
  kill -0 "$(<"$dir/kafka.pid")" 2>/dev/null || fail "kafka exited; the end of $kafka/server.log:" "$kafka/server.log"
  sleep 0.2
done
grep -q 'Kafka Server started' "$kafka/server.log" || fail "kafka did not start in 2 minutes:" "$kafka/server.log"
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || fail "kaas-proxy does not listen on $port:" "$dir/proxy.log"

# --- the settings each client gets, exercised below before they are printed -------------------------------------
cat >"$dir/client.properties" <<PROPS
bootstrap.servers=demo.kaas.localhost:$port
security.protocol=SSL
ssl.truststore.type=PEM
ssl.truststore.location=$ca
PROPS
bootstrap=demo.kaas.localhost:$port

echo "== librdkafka (confluent-kafka): 5 records produced with acks=all and consumed back in a group"
.venv/bin/python tests/python/kafka_clients.py roundtrip --client confluent --bootstrap "$bootstrap" --ca "$ca" \
  --topic demo --group demo-group --count 5 --run demo >"$dir/roundtrip.json"
.venv/bin/python - "$dir/roundtrip.json" <<'PY'
import base64, json, sys
r = json.load(open(sys.argv[1]))
for m in r["consumed"]:
    print(f"  partition {m['partition']} offset {m['offset']} key {base64.b64decode(m['key']).decode()}"
          f" ({len(base64.b64decode(m['value']))} value bytes)")
sent = sorted((m["key"], m["value"]) for m in r["produced"])
got = sorted((m["key"], m["value"]) for m in r["consumed"])
assert len(got) == 5 and sent == got, "the records consumed differ from those produced"
PY

echo "== Java (Kafka's kafka-console-consumer with client.properties): the same records, keys only"
"${java[@]}" org.apache.kafka.tools.consumer.ConsoleConsumer \
  --bootstrap-server "$bootstrap" --command-config "$dir/client.properties" --topic demo --group demo-java \
  --from-beginning --max-messages 5 --timeout-ms 30000 --formatter-property print.value=false \
  --formatter-property print.key=true --formatter-property print.partition=true \
  --formatter-property print.offset=true 2>"$dir/console-consumer.log" | sed 's/^/  /' | tee "$dir/java.txt"
[[ $(wc -l <"$dir/java.txt") -eq 5 ]] || fail "the console consumer did not read 5 records:" "$dir/console-consumer.log"

echo "== kafka-python: the brokers as a client sees them (the proxy's names only)"
.venv/bin/python tests/python/kafka_clients.py metadata --client kafka-python --bootstrap "$bootstrap" --ca "$ca" \
  >"$dir/metadata.json"
.venv/bin/python - "$dir/metadata.json" <<'PY'
import json, sys
md = json.load(open(sys.argv[1]))
for b in md["brokers"]:
    print(f"  broker {b['id']} at {b['host']}:{b['port']}")
assert md["brokers"] and all(b["host"].endswith(".demo.kaas.localhost") for b in md["brokers"]), md
PY

cat <<TXT

Apache Kafka $KAFKA_VERSION (one KRaft node on 127.0.0.1:$broker_port) is tenant "demo" behind kaas-proxy on port $port.
Logs: $kafka/server.log, $dir/proxy.log.
A client needs the bootstrap name and the CA, nothing else:

librdkafka (C/C++, confluent-kafka for Python, Go and .NET, the rdkafka crate):
  bootstrap.servers = $bootstrap
  security.protocol = SSL
  ssl.ca.location   = $ca

Java (kafka-clients 2.7 or newer, Kafka's own tools): $dir/client.properties
$(sed 's/^/  /' "$dir/client.properties")
  e.g. kafka-console-consumer.sh --bootstrap-server $bootstrap \\
         --command-config $dir/client.properties --topic demo --from-beginning

kafka-python:
  KafkaConsumer("demo", bootstrap_servers="$bootstrap", security_protocol="SSL",
                ssl_cafile="$ca")

Stop everything with: scripts/demo.sh stop
TXT
