#!/usr/bin/env bash
# Installs the test prerequisites (idempotently) and runs the whole test suite: formatting, lints, unit tests,
# golden files, and the end-to-end tests with real Tansu brokers and real clients.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
scripts/install-prereqs.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo nextest run --workspace --locked --no-fail-fast
# Helm charts: rendered with the Helm v4 SDK, validated against upstream CRDs and Kubernetes' schemas.
.venv/bin/python -m pytest -q charts/tests
