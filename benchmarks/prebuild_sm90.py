"""Compile, on a machine without a GPU, every sm90 kernel a GPU run of the conformance suite
and of ``dgreg bench`` (fp8, bf16, grouped, layouts) will pick, into a kernel cache to carry
to the GPU machine (same nvcc there: the entries are hits).

    DGREG_ARCH=h200 python benchmarks/prebuild_sm90.py .jitcache [--jobs N]

The device is simulated (``DGREG_ARCH``, 132 SMs for h100/h200): the heuristics pick exactly
what they pick on the real one. The compiling is ``dgreg warmup``'s.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ["DGREG_PLUGINS"] = "sm90"  # before dgreg loads plugins; warmup's processes inherit it

import dgreg
from dgreg import bench
from dgreg.cli.warmup_cmd import precompile
from dgreg.device import current_device

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


def pairs(device) -> list:
    """(spec, problem) of every conformance case sm90 claims and of every benchmark shape."""
    from plugin_helpers import conformance_resolutions

    found = [(res.spec, res.problem)
             for res, _ in conformance_resolutions("sm90", device.name.split()[-1].lower())]
    explained = [dgreg.explain(op, (m, n, k), device=device, file=None)
                 for m, n, k in bench.DENSE_SHAPES for op in ("fp8_gemm", "bf16_gemm")]
    for (kind, groups, per, n, k), _ in bench.GROUPED_SHAPES:
        problem = (dgreg.Problem(per, n, k, groups, expected_m=per) if kind == "masked"
                   else dgreg.Problem(groups * per, n, k, groups))
        explained.append(dgreg.explain(f"m_grouped_fp8_gemm_{kind}", problem, device=device,
                                       file=None))
    for dtype, layout, m, n, k in bench.LAYOUT_SHAPES:
        explained.append(dgreg.explain(f"{dtype}_gemm", dgreg.Problem(m, n, k), device=device,
                                       file=None, layout=layout))
    return found + [(res.spec, res.problem) for res in explained]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("cache_dir", nargs="?", help="the kernel cache (default: DGREG_CACHE_DIR)")
    parser.add_argument("--jobs", type=int, default=0)
    args = parser.parse_args()
    if args.cache_dir:  # read by warmup's processes
        os.environ["DGREG_CACHE_DIR"] = str(Path(args.cache_dir).resolve())
    device = current_device()
    return precompile(pairs(device), device, args.jobs)


if __name__ == "__main__":
    sys.exit(main())
