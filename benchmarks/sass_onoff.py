"""The sm90 FP8 kernel with the FFMA interleave pass off and on, side by side (same run).

    DGREG_PLUGINS=sm90 python benchmarks/sass_onoff.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys

from dgreg import config
from dgreg.bench import run_suite


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json")
    args = parser.parse_args()
    results = {}
    for setting in ("-ffma_interleave", "ffma_interleave"):
        with config.scope(DGREG_SASS_PASSES=(setting,)):
            print(f"== DGREG_SASS_PASSES={setting}")
            results[setting] = run_suite("fp8", log=lambda line: None)
    off, on = results["-ffma_interleave"]["rows"], results["ffma_interleave"]["rows"]
    print(f"{'M':>5} {'N':>6} {'K':>6} | {'off us':>8} {'on us':>8} {'on/off':>7}")
    for a, b in zip(off, on, strict=True):
        print(f"{a['m']:>5} {a['n']:>6} {a['k']:>6} | {a['kernel_us']:8.1f} {b['kernel_us']:8.1f} "
              f"{b['kernel_us'] / a['kernel_us']:7.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
