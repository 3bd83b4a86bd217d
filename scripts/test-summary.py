#!/usr/bin/env python3
"""The test command's closing summary: each stage with its result and time, then the tests per suite.

Usage: test-summary.py SUMMARY_DIR TARGET_DIR. Reads SUMMARY_DIR/stages.tsv (written by scripts/test.sh),
nextest's JUnit report (TARGET_DIR/nextest/default/junit.xml, .config/nextest.toml) when the nextest stage ran,
and SUMMARY_DIR/charts.xml (pytest). Standard library only: it runs before and after the project's venv exists.
"""

import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def suites(path):
    """(name, passed, failed, skipped) per <testsuite> of a JUnit file; [] when it is missing or unreadable."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return []
    found = [root] if root.tag == "testsuite" else root.iter("testsuite")
    out = []
    for s in found:
        cases = list(s.iter("testcase"))
        failed = sum(1 for c in cases if c.find("failure") is not None or c.find("error") is not None)
        skipped = sum(1 for c in cases if c.find("skipped") is not None)
        out.append((s.get("name", "?"), len(cases) - failed - skipped, failed, skipped))
    return out


def main():
    summary, target = Path(sys.argv[1]), Path(sys.argv[2])
    rows = []
    stages = summary / "stages.tsv"
    if stages.exists():
        rows = [line.split("\t") for line in stages.read_text().splitlines() if line.strip()]
    print("\n== test command summary ==")
    width = max([len(r[0]) for r in rows] + [len("stage")])
    print(f"{'stage':<{width}}  {'result':<12} {'seconds':>7}")
    for name, result, seconds in rows:
        print(f"{name:<{width}}  {result:<12} {seconds:>7}")
    total = sum(int(r[2]) for r in rows)
    print(f"{'total':<{width}}  {'':<12} {total:>7}")
    if not rows or rows[-1][1] != "ok":
        print("(stopped at the first failing stage; the stages after it did not run)")
    reports = []
    if any(r[0] == "nextest" for r in rows):
        reports.append(("nextest", target / "nextest" / "default" / "junit.xml"))
    reports.append(("charts", summary / "charts.xml"))
    for label, path in reports:
        found = suites(path)
        if not found:
            continue
        print(f"\ntests ({label}, per suite): passed failed skipped")
        sums = [0, 0, 0]
        for name, passed, failed, skipped in found:
            print(f"  {name:<48} {passed:>6} {failed:>6} {skipped:>7}")
            sums = [a + b for a, b in zip(sums, (passed, failed, skipped))]
        print(f"  {'all':<48} {sums[0]:>6} {sums[1]:>6} {sums[2]:>7}")


if __name__ == "__main__":
    main()
