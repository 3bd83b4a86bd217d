#!/usr/bin/env bash
# The proxy's cost figure (cost/src/main.rs): instructions per MiB through one kaas-proxy session, TLS 1.3 on
# both legs, all in memory on one thread, counted by callgrind inside the session only; and allocations per
# request. Fixed workloads: produce (256 x 64 KiB Produce v11) and consume (16 x 1 MiB Fetch v17), each also with
# usage records on (produce-metered, consume-metered).
#
#   scripts/cost.sh            compare with cost/baseline.json: fails when either figure of either workload
#                              grows by more than 5 %
#   scripts/cost.sh --update   write the figures of this build into cost/baseline.json (say why in the commit)
#
# Instruction counts do not wobble with the machine's load the way time does: the same build and workload count
# the same within a fraction of a percent run to run (measured in the note that added it).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
command -v valgrind >/dev/null || { echo "valgrind is missing (scripts/install-prereqs.sh installs it)" >&2; exit 1; }
cargo build --release --locked -q -p kaas-cost
bin=${CARGO_TARGET_DIR:-target}/release/kaas-cost
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
figures=$out/figures.tsv
for workload in produce consume produce-metered consume-metered; do
  # Collection only inside the session's polls (never inlined, named for this); the rest runs uncounted.
  valgrind --tool=callgrind --callgrind-out-file="$out/$workload.out" \
    --toggle-collect='<kaas_cost::Proxy<*> as core::future::future::Future>::poll' \
    "$bin" "$workload" >"$out/$workload.txt" 2>"$out/$workload.log" || { cat "$out/$workload.log" >&2; exit 1; }
  instructions=$(sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$out/$workload.out")
  [[ -n $instructions && $instructions -gt 0 ]] || { echo "$workload: callgrind counted nothing" >&2; exit 1; }
  read -r bytes allocations requests < <(sed -n \
    's/.*requests=\([0-9]*\) bytes=\([0-9]*\) allocations=\([0-9]*\).*/\2 \3 \1/p' "$out/$workload.txt")
  printf '%s\t%s\t%s\t%s\t%s\n' "$workload" "$instructions" "$bytes" "$allocations" "$requests" >>"$figures"
done
python3 scripts/cost-check.py "$figures" cost/baseline.json "${1:-}"
