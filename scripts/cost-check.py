"""Compares the cost figures of this build (scripts/cost.sh) with cost/baseline.json, or writes them there.

Figures per workload: instructions per MiB moved through the proxy, and allocations per request. Fails (exit 1)
when either grows by more than TOLERANCE over its baseline; a figure that falls is reported, and kept until the
baseline is updated on purpose (--update, the reason in the commit).
"""
import json
import sys

TOLERANCE = 0.05


def main(figures_path, baseline_path, mode):
    now = {}
    with open(figures_path) as f:
        for line in f:
            workload, instructions, bytes_, allocations, requests = line.split("\t")
            mib = int(bytes_) / (1 << 20)
            now[workload] = {"instructions_per_mib": round(int(instructions) / mib),
                             "allocations_per_request": round(int(allocations) / int(requests), 2)}
    if mode == "--update":
        with open(baseline_path, "w") as f:
            json.dump(now, f, indent=2, sort_keys=True)
            f.write("\n")
        print(f"cost: {baseline_path} updated: {json.dumps(now, sort_keys=True)}")
        return 0
    with open(baseline_path) as f:
        baseline = json.load(f)
    failed = []
    for workload, figures in sorted(now.items()):
        for name, value in sorted(figures.items()):
            base = baseline.get(workload, {}).get(name)
            if base is None:
                failed.append(f"{workload} {name}: no baseline (scripts/cost.sh --update)")
                continue
            change = (value - base) / base if base else 0.0
            print(f"cost: {workload:8} {name:24} {value:>14} baseline {base:>14} ({change:+.1%})")
            if change > TOLERANCE:
                failed.append(f"{workload} {name}: {value} is {change:+.1%} over the baseline {base}")
    if failed:
        print("cost: grew more than 5 %:\n  " + "\n  ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else ""))
