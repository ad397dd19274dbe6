"""cProfile of the host side of 300 M-grouped FP8 calls (the bench's masked 1 x 1024 x 4096 x
7168 and contiguous 4 x 8192 x 7168 x 2048 cases), the GPU kept busy so that only the host
runs; the functions with the most own time first.

    DGREG_PLUGINS=sm90 python benchmarks/profile_grouped_host.py
"""

from __future__ import annotations

import cProfile
import pstats
import sys

import torch

from dgreg import bench


def main() -> int:
    for shape in [("masked", 1, 1024, 4096, 7168), ("contiguous", 4, 8192, 7168, 2048)]:
        fn = bench._prepare_grouped(*shape)["ours"]
        fn()
        torch.cuda.synchronize()
        torch.cuda._sleep(400_000_000)  # the queue never drains while the host is profiled
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(300):
            fn()
        profiler.disable()
        torch.cuda.synchronize()
        print("=====", shape)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(22)
    return 0


if __name__ == "__main__":
    sys.exit(main())
