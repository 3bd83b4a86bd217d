#!/usr/bin/env bash
# The demo: a single-node Apache Kafka broker (KRaft, plaintext on loopback) as tenant "demo" behind kaas-proxy,
# reachable as demo.kaas.localhost over TLS with the proxy's own CA.
#   scripts/demo.sh        install only what the demo uses (the Kafka jars, confluent-kafka, the proxy's release
#                          build), start both, check one produce+consume and a wrong name's refusal through the
#                          proxy, show the tenant's metrics and print the settings a client needs
#   scripts/demo.sh stop   stop what it started
# It verifies itself on every run: a round trip that does not come back byte for byte, or a wrong name that is
# not refused and counted, fails the run (non-zero exit) and stops what it started.
# Environment (all optional): DEMO_PORT (9092), DEMO_ADMIN_PORT (9093), DEMO_BROKER_PORT (19092),
# DEMO_CONTROLLER_PORT (19093), DEMO_DIR (.demo), DEMO_PROXY_BIN (a kaas-proxy binary instead of the release
# build: the test suite's), KAAS_CACHE (~/.cache/kaas), CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
dir=${DEMO_DIR:-$root/.demo}
port=${DEMO_PORT:-9092}
admin_port=${DEMO_ADMIN_PORT:-9093}
broker_port=${DEMO_BROKER_PORT:-19092}
controller_port=${DEMO_CONTROLLER_PORT:-19093}
cache=${KAAS_CACHE:-$HOME/.cache/kaas}
export PATH="$HOME/.cargo/bin:$PATH"
# shellcheck source=kafka/versions.env
source scripts/kafka/versions.env
kafka_home=$cache/kafka/$KAFKA_VERSION
start_us=${EPOCHREALTIME/./}

# alive NAME PATTERN: whether $dir/NAME.pid names a running process whose command line has PATTERN (so a pid
# the system reused for something else after a reboot is never taken for, or killed as, the demo's).
alive() {
  [[ -f $dir/$1.pid ]] || return 1
  local pid
  pid=$(<"$dir/$1.pid")
  [[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$2"
}
declare -A pattern=([proxy]=kaas-proxy [kafka]=kafka.Kafka [tansu]=tansu) # tansu: an earlier demo's broker

stop() {
  local p pid stopped=0
  for p in proxy kafka tansu; do
    if alive "$p" "${pattern[$p]}"; then
      pid=$(<"$dir/$p.pid")
      kill "$pid" 2>/dev/null || true
      # Kafka shuts down in order on SIGTERM; wait, so that its ports are free for the next start.
      # (By command line, not kill -0: an exited process nobody reaped yet is gone for this purpose.)
      for _ in $(seq 300); do alive "$p" "${pattern[$p]}" || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
      echo "stopped $p (pid $pid)"
      stopped=1
    fi
    rm -f "$dir/$p.pid"
  done
  ((stopped)) || echo "the demo is not running"
}
if [[ ${1:-} == stop ]]; then stop; exit 0; fi
if [[ -n ${1:-} ]]; then echo "usage: scripts/demo.sh [stop]" >&2; exit 2; fi

mkdir -p "$dir"
# One demo per folder: a second run while one starts or runs says so and leaves it alone. The lock is held for
# this script only (the broker and the proxy are started with it closed).
exec 9>"$dir/lock"
if ! flock -n 9; then
  echo "Another scripts/demo.sh is starting the demo in $dir; wait for it, or stop it with: scripts/demo.sh stop"
  exit 0
fi
if alive proxy kaas-proxy || alive kafka kafka.Kafka; then
  echo "The demo is already running (kaas-proxy pid $(cat "$dir/proxy.pid" 2>/dev/null || echo -)," \
    "Kafka pid $(cat "$dir/kafka.pid" 2>/dev/null || echo -)); nothing to do."
  [[ -f $dir/summary.txt ]] && cat "$dir/summary.txt"
  echo "Stop it with: scripts/demo.sh stop"
  exit 0
fi
stop >/dev/null # stale pid files of a run that died

# --- progress: one line per step, what it found or did and the seconds it took ---------------------------------
# A step's own output goes to $log, shown only when the step fails, so the screen stays one line per step.
log=$dir/install.log
: >"$log"
step() { step_us=${EPOCHREALTIME/./}; printf '[demo] %-22s ' "$1"; }
seconds() { local us=$((${EPOCHREALTIME/./} - $1)); printf '%d.%d s' $((us / 1000000)) $((us / 100000 % 10)); }
done_() { printf '%s (%s)\n' "$1" "$(seconds "$step_us")"; }
quiet() { "$@" >>"$log" 2>&1 || { echo; echo "failed: $*; the end of $log:" >&2; tail -n 30 "$log" >&2; exit 1; }; }
SUDO=""
[[ $(id -u) -eq 0 ]] || SUDO="sudo"

# --- 1. Debian packages, only those missing: Java and Maven (the broker and its jars), openssl (the demo's CA),
# python3-venv (the client's venv), libnss-myhostname (every *.localhost name resolves to loopback) -------------
step "system packages"
missing=()
command -v java >/dev/null || missing+=(openjdk-17-jdk-headless)
command -v mvn >/dev/null || missing+=(maven)
command -v openssl >/dev/null || missing+=(openssl)
# (A venv already made needs no python3-venv; importing ensurepip costs a second or two on a busy machine.)
[[ -x .venv/bin/python || -x $cache/demo/venv/bin/python ]] || python3 -c 'import ensurepip, venv' 2>/dev/null ||
  missing+=(python3-venv)
getent hosts b1.demo.kaas.localhost >/dev/null || missing+=(libnss-myhostname)
command -v cargo >/dev/null || { echo "cargo is missing: install Rust (https://rustup.rs) first" >&2; exit 1; }
if ((${#missing[@]})); then
  quiet $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive quiet $SUDO apt-get install -y -qq "${missing[@]}"
  # The package's postinst normally adds myhostname to nsswitch.conf; make sure.
  grep -Eq '^hosts:.*myhostname' /etc/nsswitch.conf ||
    quiet $SUDO sed -i -E 's/^(hosts:.*)$/\1 myhostname/' /etc/nsswitch.conf
  done_ "installed ${missing[*]}"
else
  done_ "present"
fi
getent hosts b1.demo.kaas.localhost >/dev/null ||
  { echo "*.localhost does not resolve; check /etc/nsswitch.conf" >&2; exit 1; }

# --- 2. Apache Kafka's jars from Maven Central (the tests' install, this version only) ---------------------------
step "Apache Kafka $KAFKA_VERSION"
had_kafka=0
[[ -f $kafka_home/complete ]] && had_kafka=1
((had_kafka)) || printf 'from Maven Central ... '
quiet bash scripts/install-kafka.sh "$KAFKA_VERSION"
if ((had_kafka)); then done_ "present in $kafka_home"; else done_ "downloaded into $kafka_home"; fi

# --- 3. One Python client, confluent-kafka (librdkafka inside its wheel, nothing to compile): the tests' .venv
# when it has it, otherwise a venv of the demo's own in the cache, at the tests' pinned version ------------------
step "confluent-kafka"
if [[ -x .venv/bin/python ]] && .venv/bin/python -c 'import confluent_kafka' 2>/dev/null; then
  py=.venv/bin/python
  done_ "present in .venv"
else
  venv=$cache/demo/venv
  pin=$(grep -E '^confluent-kafka==' tests/python/requirements.txt)
  py=$venv/bin/python
  if [[ -x $py && -f $venv/stamp && $(<"$venv/stamp") == "$pin" ]]; then
    done_ "present in $venv"
  else
    rm -rf "$venv"
    quiet python3 -m venv "$venv"
    quiet "$py" -m pip install -q --disable-pip-version-check "$pin"
    printf '%s\n' "$pin" >"$venv/stamp"
    done_ "installed $pin into $venv"
  fi
fi

# --- 4. The proxy's release build (cargo skips it when nothing changed) ------------------------------------------
step "kaas-proxy build"
if [[ -n ${DEMO_PROXY_BIN:-} ]]; then
  proxy_bin=$DEMO_PROXY_BIN
  done_ "given: $proxy_bin"
else
  proxy_bin=${CARGO_TARGET_DIR:-$root/target}/release/kaas-proxy
  before=$(stat -c %Y "$proxy_bin" 2>/dev/null || echo none)
  # The one long step of a first run: say so, and where cargo's progress goes.
  [[ $before != none ]] || printf 'first build, minutes on 2 cores (cargo: %s) ... ' "$log"
  quiet cargo build --release --locked -p kaas-proxy --bin kaas-proxy
  if [[ $before == "$(stat -c %Y "$proxy_bin")" ]]; then done_ "up to date"; else done_ "built $proxy_bin"; fi
fi

# --- 5. Start the tenant's cluster (one node, broker and controller, fresh data every run) and the proxy ---------
step "start"
started=0
# From here on a failure stops what was started, so that the next run starts clean.
trap '((started)) || { echo "the demo failed; stopping what it started" >&2; stop >&2; }' EXIT
quiet scripts/gen-certs.sh "$dir/certs" kaas.localhost demo
ca=$dir/certs/ca.pem
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
# install-kafka.sh trained on this class path, which makes start-up about 40 % faster.
java=(java -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto -XX:-UsePerfData)
[[ -f $kafka_home/kafka.jsa ]] && java+=("-XX:SharedArchiveFile=$kafka_home/kafka.jsa")
java+=(-cp "$kafka_home/libs/*")
broker=("${java[@]}" -Xms128m -Xmx512m "-Dkafka.logs.dir=$kafka"
  "-Dlog4j2.configurationFile=$root/scripts/kafka/log4j2.properties")
# Any 16 bytes in URL-safe base64 name the cluster: "kaas-demo-kafka1".
quiet "${broker[@]}" kafka.tools.StorageTool format --cluster-id a2Fhcy1kZW1vLWthZmthMQ \
  --config "$kafka/server.properties"
(cd "$kafka" && exec "${broker[@]}" kafka.Kafka server.properties >"$kafka/stdout.log" 2>&1 </dev/null 9>&-) &
echo $! >"$dir/kafka.pid"

cat >"$dir/kaas-proxy.yaml" <<YAML
listen: "[::]:$port"
admin_listen: "127.0.0.1:$admin_port"
domain: kaas.localhost
tls:
  cert: certs/server.pem
  key: certs/server.key
tenants:
  - name: demo
    bootstrap: ["127.0.0.1:$broker_port"]
    upstream: { plaintext: true }
YAML
"$proxy_bin" --config "$dir/kaas-proxy.yaml" >"$dir/proxy.log" 2>&1 </dev/null 9>&- &
echo $! >"$dir/proxy.pid"

fail() { echo; echo "$1" >&2; [[ -z ${2:-} ]] || tail -n 20 "$2" >&2; exit 1; }
# GET PATH from the admin endpoint, body only; bash's /dev/tcp, so no curl is needed.
admin_get() {
  (exec 3<>"/dev/tcp/127.0.0.1/$admin_port" &&
    printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$1" >&3 &&
    sed '1,/^\r$/d' <&3) 2>/dev/null
}
# The broker logs this once it serves clients; the listener alone opens earlier.
for _ in $(seq 600); do
  grep -q 'Kafka Server started' "$kafka/server.log" 2>/dev/null && break
  alive kafka kafka.Kafka || fail "kafka exited; the end of $kafka/server.log:" "$kafka/server.log"
  sleep 0.2
done
grep -q 'Kafka Server started' "$kafka/server.log" || fail "kafka did not start in 2 minutes:" "$kafka/server.log"
for _ in $(seq 100); do [[ $(admin_get /readyz) == ready ]] && break; sleep 0.1; done
[[ $(admin_get /readyz) == ready ]] || fail "kaas-proxy is not ready on $port (admin $admin_port):" "$dir/proxy.log"
done_ "Kafka on 127.0.0.1:$broker_port, kaas-proxy on :$port (admin 127.0.0.1:$admin_port)"

bootstrap=demo.kaas.localhost:$port
refusals() { admin_get /metrics | sed -n 's/^kaas_proxy_listener_refused_total{reason="unrecognized_name"} //p'; }

# --- 6. Check: one produce+consume through the proxy, byte for byte --------------------------------------------
step "produce + consume"
"$py" tests/python/kafka_clients.py roundtrip --client confluent --bootstrap "$bootstrap" --ca "$ca" \
  --topic demo --group demo-group --count 5 --run demo >"$dir/roundtrip.json" 2>>"$log" ||
  fail "the round trip through the proxy failed; the end of $log:" "$log"
intact() { fail "the round trip did not come back intact:" "$dir/roundtrip.txt"; }
"$py" - "$dir/roundtrip.json" >"$dir/roundtrip.txt" <<'PY' || intact
import base64, json, sys
r = json.load(open(sys.argv[1]))
sent = sorted((m["key"], m["value"]) for m in r["produced"])
got = sorted((m["key"], m["value"]) for m in r["consumed"])
for m in r["consumed"]:
    print(f"  consumed partition {m['partition']} offset {m['offset']} key {base64.b64decode(m['key']).decode()}"
          f" ({len(base64.b64decode(m['value']))} value bytes)")
if not (len(sent) == 5 and sent == got):
    sys.exit(f"  produced {len(sent)} records, consumed {len(got)}; they differ")
PY
done_ "5 records produced (acks=all) and consumed back in a group, byte for byte"
cat "$dir/roundtrip.txt"

# --- 7. Check: a client asking for a tenant that does not exist is refused during the TLS handshake, and counted -
step "a wrong name"
wrong=nosuch.kaas.localhost:$port
before=$(refusals)
"$py" - "$wrong" "$ca" >"$dir/refusal.txt" 2>>"$log" <<'PY' || fail "the wrong name was not refused:" "$dir/refusal.txt"
import sys, time
from confluent_kafka.admin import AdminClient

errors = []
# The client's first error is the proxy's answer; librdkafka's own log is off, the error callback has it.
admin = AdminClient({"bootstrap.servers": sys.argv[1], "security.protocol": "SSL", "ssl.ca.location": sys.argv[2],
                     "error_cb": errors.append, "log_level": 0})
deadline = time.monotonic() + 20
while not errors and time.monotonic() < deadline:
    admin.poll(0.1)
if not errors:
    sys.exit("  no error within 20 s")
print(f"  the client's error: {errors[0].str()}")
if "unrecognized name" not in errors[0].str():
    sys.exit("  not the TLS alert unrecognized_name")
PY
after=$(refusals)
((after > before)) ||
  fail "kaas_proxy_listener_refused_total{reason=\"unrecognized_name\"} did not grow ($before, then $after)"
done_ "${wrong%:*} refused with the TLS alert unrecognized_name"
cat "$dir/refusal.txt"
# The proxy's log line, without its colours and time stamp.
sed -E 's/\x1b\[[0-9;]*m//g' "$dir/proxy.log" | grep -m1 -F "${wrong%:*}" |
  sed -E 's/^[^ ]+ +/  the proxy logged: /' || true
echo "  kaas_proxy_listener_refused_total{reason=\"unrecognized_name\"} $after (was $before)"

# --- 8. What the proxy reports about the tenant, as Prometheus scrapes it ---------------------------------------
echo "[demo] tenant \"demo\" on http://127.0.0.1:$admin_port/metrics (a few of its series):"
admin_get /metrics >"$dir/metrics.txt"
# Sessions, bytes each way, and produce and fetch latency (seconds summed over the requests counted), in the proxy
# itself (stage="proxy") and waiting on the broker (stage="upstream").
series='^kaas_proxy_(session_(opened_total|active|bytes_total)\{[^}]*tenant="demo"'
series+='|request_duration_seconds_(count|sum)\{tenant="demo",api="(Produce|Fetch)")'
grep -E "$series" "$dir/metrics.txt" | sed 's/^/  /' || fail "no series of tenant demo in $dir/metrics.txt"

started=1
cat >"$dir/summary.txt" <<TXT

Apache Kafka $KAFKA_VERSION (one KRaft node on 127.0.0.1:$broker_port) is tenant "demo" behind kaas-proxy on port $port.
Logs: $kafka/server.log, $dir/proxy.log. Metrics: http://127.0.0.1:$admin_port/metrics.
Dashboard: charts/kaas-proxy/dashboards/kaas-proxy.json (import into Grafana, with Prometheus scraping the metrics).
A client needs the bootstrap name and the CA, nothing else:

librdkafka (C/C++, confluent-kafka for Python, Go and .NET, the rdkafka crate):
  bootstrap.servers = $bootstrap
  security.protocol = SSL
  ssl.ca.location   = $ca

Java (kafka-clients 2.7 or newer, Kafka's own tools): $dir/client.properties
  bootstrap.servers=$bootstrap
  security.protocol=SSL
  ssl.truststore.type=PEM
  ssl.truststore.location=$ca

kafka-python:
  KafkaConsumer("demo", bootstrap_servers="$bootstrap", security_protocol="SSL",
                ssl_cafile="$ca")
TXT
printf 'bootstrap.servers=%s\nsecurity.protocol=SSL\nssl.truststore.type=PEM\nssl.truststore.location=%s\n' \
  "$bootstrap" "$ca" >"$dir/client.properties"
cat "$dir/summary.txt"
echo
echo "Ready in $(seconds "$start_us"). Stop everything with: scripts/demo.sh stop"
