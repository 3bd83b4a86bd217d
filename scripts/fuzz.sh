#!/usr/bin/env bash
# Fuzzes the proxy's parsers of peer and operator input (proxy/fuzz) with libFuzzer under AddressSanitizer and a
# malloc limit: a single allocation over 64 MiB, as a peer-sized number would cause, is a crash; so is an input
# that takes over 10 s. Targets (each file's //! line says what it asserts):
#   broker_response   broker response bodies: the walker, rewrite, leak check, process_response, throttle
#   frame_codec       byte streams in arbitrary chunks through FrameReader (bounded buffer, exact framing)
#   request_header    client request headers: parse_request, inspect_request, cap_fetch_bytes
#   api_versions_cap  ApiVersions bodies: capping and what clients are then offered
#   client_hello_sni  first bytes of a connection: rustls' Acceptor, then the SNI → tenant parse
#   config            the configuration file and principal mapping rules
#   usage_and_audit   what the usage records and the audit trail read: Produce and Fetch, the administrative
#                     requests and their responses, SASL's messages
# Seeds (valid inputs of every target) are generated into proxy/fuzz/corpus/<target>/gen-* before each run;
# what libFuzzer finds is kept there (git-ignored) and grows the next run's start.
#   scripts/fuzz.sh [SECONDS]          every target for SECONDS (FUZZ_SECONDS, default 20; the test command)
#   FUZZ_SECONDS=600 scripts/fuzz.sh   a long run
#   FUZZ_RUNS=10000000 FUZZ_TARGETS="frame_codec config" scripts/fuzz.sh
#                                      each named target until it has run that many inputs (no time limit)
# Stops at the first failing target, naming it and the input that failed (proxy/fuzz/artifacts/<target>/).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
seconds=${1:-${FUZZ_SECONDS:-20}}
runs=${FUZZ_RUNS:-}
read -r -a targets <<<"${FUZZ_TARGETS:-broker_response frame_codec request_header api_versions_cap client_hello_sni config usage_and_audit}"
repo=$PWD
cd proxy
# cargo-fuzz passes nightly-only flags (sanitizers, coverage); RUSTC_BOOTSTRAP lets the stable toolchain
# accept them, so no second toolchain is needed. One build of every target (and the seed writer).
export RUSTC_BOOTSTRAP=1
cargo fuzz build
host=$(rustc -vV | sed -n 's/^host: //p')
fuzz/target/"$host"/release/fuzz_seeds fuzz/corpus "$repo"
logs=fuzz/target/logs
mkdir -p "$logs"
# A figure of libFuzzer's -print_final_stats from a target's log.
final_stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -n 1; }
for target in "${targets[@]}"; do
  log=$logs/$target.log
  mkdir -p fuzz/corpus/"$target" fuzz/artifacts/"$target"
  if [[ -n $runs ]]; then limit=(-runs="$runs"); else limit=(-max_total_time="$seconds"); fi
  start=$SECONDS
  if ! cargo fuzz run "$target" -- "${limit[@]}" -timeout=10 -malloc_limit_mb=64 \
    -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 >"$log" 2>&1; then
    tail -n 80 "$log" >&2
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
    echo >&2
    echo "fuzz: target $target FAILED; input: ${artifact:-proxy/fuzz/artifacts/$target/ (see proxy/$log)}" >&2
    echo "fuzz: reproduce with: cd proxy && RUSTC_BOOTSTRAP=1 cargo fuzz run $target ${artifact:-ARTIFACT}" >&2
    echo "fuzz: whole log: proxy/$log" >&2
    exit 1
  fi
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$done_line")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$done_line")
  corp=$(sed -n 's/.* corp: \([^ ]*\).*/\1/p' <<<"$done_line")
  printf 'fuzz: %-17s %9s execs %7s/s  cov %5s  ft %6s  corpus %s  %ss\n' "$target" \
    "$(final_stat number_of_executed_units)" "$(final_stat average_exec_per_sec)" "$cov" "$ft" "$corp" \
    "$((SECONDS - start))"
done
