#!/usr/bin/env bash
# Installs the test prerequisites (idempotently) and runs the whole test suite: formatting, lints, unit tests,
# golden files, the end-to-end tests with real brokers and real clients, the cost figure, a short fuzz run, and
# the chart tests.
# Stops at the first stage that fails; either way it ends with one summary (scripts/test-summary.py): each
# stage with its result and time, and the tests passed, failed and skipped per suite.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
# The whole suite builds each test binary once: incremental caches would only cost disk (GiBs across the test
# binaries) and time. An explicit CARGO_INCREMENTAL is kept.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
target=${CARGO_TARGET_DIR:-target}
summary=$target/test-summary
rm -rf "$summary" && mkdir -p "$summary"
# The stages as they ran: name, result, seconds (read by the summary).
stages=$summary/stages.tsv
: >"$stages"
trap 'python3 scripts/test-summary.py "$summary" "$target" || true' EXIT

# Runs stage $1 (the rest: its command), recording its result and time.
stage() {
  local name=$1 start=$SECONDS status=0
  shift
  "$@" || status=$?
  printf '%s\t%s\t%s\n' "$name" "$([[ $status == 0 ]] && echo ok || echo "FAILED ($status)")" \
    "$((SECONDS - start))" >>"$stages"
  return "$status"
}

stage prerequisites scripts/install-prereqs.sh
stage fmt cargo fmt --all -- --check
stage clippy cargo clippy --workspace --all-targets --locked -- -D warnings
RUSTDOCFLAGS="-D warnings" stage doc cargo doc --workspace --no-deps --locked --quiet
# Licenses, banned crates and sources (advisories need the RustSec repository, outside the registries reached).
stage deny cargo deny --log-level error check licenses bans sources
# JUnit per test binary (.config/nextest.toml) for the summary.
stage nextest cargo nextest run --workspace --locked --no-fail-fast
# The cost figure: instructions per MiB (callgrind) and allocations per request through one session, TLS on both
# legs, against cost/baseline.json (fails on more than 5 % growth; scripts/cost.sh --update moves it on purpose).
stage cost scripts/cost.sh
# Every parser under libFuzzer with a malloc limit (20 s per target; FUZZ_SECONDS=600 scripts/fuzz.sh runs long).
stage fuzz scripts/fuzz.sh
# Helm charts: rendered with the Helm v4 SDK, validated against upstream CRDs and Kubernetes' schemas.
stage charts .venv/bin/python -m pytest -q charts/tests --junitxml="$summary/charts.xml"
