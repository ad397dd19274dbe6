"""Kernel time of dgreg's M-grouped FP8 GEMMs on DeepGEMM's MoE shapes (contiguous and masked),
side by side with torch._scaled_grouped_mm: the same suite as `dgreg bench grouped`.

    DGREG_PLUGINS=sm90 python benchmarks/grouped.py --json out.json
"""

from __future__ import annotations

import argparse
import sys

from dgreg.bench import main

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--json")
    parser.add_argument("--plot")
    args = parser.parse_args()
    main(args.json, args.plot, "grouped")
    sys.exit(0)
