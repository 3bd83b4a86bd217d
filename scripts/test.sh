#!/usr/bin/env bash
# Installs the test prerequisites (idempotently) and runs the whole test suite: formatting, lints, unit tests,
# golden files, the end-to-end tests with real brokers and real clients, a short fuzz run, and the chart tests.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
scripts/install-prereqs.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet
# Licenses, banned crates and sources (advisories need the RustSec repository, outside the registries reached).
cargo deny --log-level error check licenses bans sources
cargo nextest run --workspace --locked --no-fail-fast
# Every parser under libFuzzer with a malloc limit (20 s per target; FUZZ_SECONDS=600 scripts/fuzz.sh runs long).
scripts/fuzz.sh
# Helm charts: rendered with the Helm v4 SDK, validated against upstream CRDs and Kubernetes' schemas.
.venv/bin/python -m pytest -q charts/tests
