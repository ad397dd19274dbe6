"""Host time per call of the sm90 M-grouped FP8 kernels at the bench's grouped shapes (GPU kept
busy, so only the host is timed), with ``torch._scaled_grouped_mm``'s on the same host for
scale. Every call is checked against the float64 reference once before it is timed.

    DGREG_PLUGINS=sm90 python benchmarks/host_overhead_grouped.py
"""

from __future__ import annotations

import sys

import torch
from host_overhead_fp8 import per_call_us

from dgreg import bench


def main() -> int:
    print(f"device {torch.cuda.get_device_name()}")
    for shape, _ in bench.GROUPED_SHAPES:
        case = bench._prepare_grouped(*shape)
        bench._checked(case, f"grouped {shape}")
        ours = per_call_us(lambda _i, fn=case["ours"]: fn(), calls=200)
        theirs = per_call_us(lambda _i, fn=case["theirs"]: fn(), calls=200)
        print(f"{' '.join(map(str, shape)):28s} dgreg {ours:6.1f} us   "
              f"torch._scaled_grouped_mm {theirs:6.1f} us per call (host)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
