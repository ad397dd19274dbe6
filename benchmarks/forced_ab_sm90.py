"""Forced A/B of sm90 configs: per case, the "before" config timed twice around the "after" one.

    DGREG_PLUGINS=sm90 python benchmarks/forced_ab_sm90.py CASES.json [--json OUT.json]
    DGREG_ARCH=h200 python benchmarks/forced_ab_sm90.py CASES.json --prebuild .jitcache  # CPU

CASES.json: ``[{"key": ["fp8" | "bf16", M, N, K] or ["masked" | "contiguous", G, M per group,
N, K], "before": DGREG_SM90_CONFIG, "after": DGREG_SM90_CONFIG}, ...]``. Every run is checked
against the float64 reference on a poisoned D before it is timed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from sm90_forced import checked_kernel_us, op_problem, prebuild, prepared_case, write_json


def run(cases: list[dict]) -> list[dict]:
    rows = []
    for case in cases:
        key = case["key"]
        prepared = prepared_case(key)
        times: dict[str, list[float]] = {}
        for label in ("before", "after", "before"):
            us, _ = checked_kernel_us(prepared, *op_problem(key), case[label], f"{key} {case[label]}")
            times.setdefault(label, []).append(us)
        before, after = min(times["before"]), times["after"][0]
        rows.append({**case, "before_us": times["before"], "after_us": after})
        print(f"{key!s:<36} {case['before']:<58} {before:8.1f} | {case['after']:<58} "
              f"{after:8.1f}  x{before / after:.3f}", flush=True)
    os.environ.pop("DGREG_SM90_CONFIG", None)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("cases")
    parser.add_argument("--json")
    parser.add_argument("--prebuild", metavar="DIR")
    args = parser.parse_args()
    with open(args.cases) as f:
        cases = json.load(f)
    if args.prebuild:
        return prebuild(((*op_problem(case["key"]), case[label]) for case in cases
                         for label in ("before", "after")), args.prebuild)
    rows = run(cases)
    write_json(args.json, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
