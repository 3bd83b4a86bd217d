#!/usr/bin/env bash
# Runs the load harness: installs nginx with its stream module (idempotently), builds kaas-proxy and kaas-bench
# in release mode, and compares direct, kaas-proxy and nginx TLS termination. Arguments go to kaas-bench
# (see `scripts/bench.sh --help`); the default run takes under two minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
scripts/install-prereqs.sh
missing=()
for p in nginx libnginx-mod-stream; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  # The package may start a system nginx on port 80; the bench runs its own.
  (systemctl stop nginx || service nginx stop || pkill -x nginx) >/dev/null 2>&1 || true
fi
# Many idle connections need file descriptors: raise the soft limit as far as the hard one allows.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
# The tests' Tansu is a debug build (scripts/install-prereqs.sh); measured against, Tansu runs as released.
TANSU_RELEASE="${KAAS_CACHE:-$HOME/.cache/kaas}/tansu-release"
if [[ ! -x $TANSU_RELEASE/bin/tansu ]]; then
  CARGO_PROFILE_RELEASE_LTO=off CARGO_PROFILE_RELEASE_DEBUG=0 \
    cargo install tansu --version 0.6.0 --locked --features dynostore --root "$TANSU_RELEASE"
fi
export KAAS_TANSU=$TANSU_RELEASE/bin/tansu
cargo build --release -p kaas-proxy -p kaas-bench
exec target/release/kaas-bench "$@"
