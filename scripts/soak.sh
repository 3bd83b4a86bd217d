#!/usr/bin/env bash
# Soak: a steady mixed load (produce, consume, group rebalances, reconnect churn, a tenant reload every minute)
# through the real kaas-proxy binary to a 3-broker Apache Kafka cluster for MINUTES (default 30), sampling the
# proxy every 10 s. Writes target/soak/soak.csv, soak.svg and summary.txt (SOAK_OUT, an absolute path, overrides
# the folder).
# Release builds by default (SOAK_PROFILE=debug for the test command's build); the test command runs 2 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
minutes="${1:-30}"
[[ "$minutes" =~ ^[0-9]+([.][0-9]+)?$ ]] || { echo "usage: scripts/soak.sh [MINUTES]" >&2; exit 2; }
scripts/install-prereqs.sh
profile=(--cargo-profile release)
[[ "${SOAK_PROFILE:-release}" == debug ]] && profile=()
out="${SOAK_OUT:-$(pwd)/target/soak}"
SOAK_MINUTES="$minutes" SOAK_OUT="$out" cargo nextest run -p kaas-e2e --test e2e --locked --no-capture -E 'test(/^soak::kafka::/)' \
  "${profile[@]}"
echo "soak: $out/summary.txt, soak.csv, soak.svg"
cat "$out/summary.txt"
