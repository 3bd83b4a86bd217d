#!/usr/bin/env bash
# Fuzzes the proxy's reading of broker responses (proxy/fuzz, target broker_response) with libFuzzer under
# AddressSanitizer and a malloc limit: a single allocation over 64 MiB, as a broker-sized number would cause, is
# a crash. Seeds are valid responses of every API and version the proxy rewrites.
#   scripts/fuzz.sh              short run (FUZZ_SECONDS, default 30; the test command runs this)
#   FUZZ_SECONDS=3600 scripts/fuzz.sh    a long run
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
seconds=${FUZZ_SECONDS:-30}
corpus=proxy/fuzz/corpus/broker_response
mkdir -p "$corpus"
cargo run -q --locked -p kaas-proxy --features testkit --example fuzz_seeds -- "$corpus"
cd proxy
# cargo-fuzz passes nightly-only flags (sanitizers, coverage); RUSTC_BOOTSTRAP lets the stable toolchain
# accept them, so no second toolchain is needed.
RUSTC_BOOTSTRAP=1 cargo fuzz run broker_response -- \
  -max_total_time="$seconds" -malloc_limit_mb=64 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1
