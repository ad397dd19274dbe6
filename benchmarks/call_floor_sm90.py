"""What a call costs the GPU beyond its kernel: ``dgreg bench``'s per-call time (``do_bench``
median, a 256 MiB write before each call) against its kernel time (the profiler's kernel
duration after the same write), for kernels that do nothing, launched as the sm90 GEMM is
launched or with one launch attribute changed at a time (grid, 384 threads, 227 KB of
dynamic shared memory, five 128-byte tensor-map parameters, a 2-CTA cluster), and for the
FP8 GEMM and ``torch._scaled_mm`` at the M <= 128 bench shapes on the same inputs.

    DGREG_PLUGINS=sm90 python benchmarks/call_floor_sm90.py [--json F]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import sys
from pathlib import Path

import torch
from launch_cost import SOURCE, map_args, sm90_cubin

from dgreg import bench
from dgreg.jit.launch import LoadedKernel

SMEM = 227 * 1024  # the most dynamic shared memory a Hopper CTA may ask for
#: (label, entry, grid, block, dynamic shared memory, cluster)
EMPTY = [
    ("1 CTA x 32, no smem", "one", 1, 32, 0, 1),
    ("132 x 384, no smem", "one", 132, 384, 0, 1),
    ("132 x 384, 100 KB", "one", 132, 384, 100 * 1024, 1),
    ("132 x 384, 227 KB", "one", 132, 384, SMEM, 1),
    ("132 x 384, 227 KB, 5 maps", "maps5", 132, 384, SMEM, 1),
    ("132 x 384, 227 KB, 5 maps, cluster 2", "maps5", 132, 384, SMEM, 2),
]
SHAPES = [(64, 2112, 7168), (64, 24576, 1536), (64, 32768, 512), (64, 4096, 7168),
          (64, 7168, 2048), (128, 2112, 7168), (128, 32768, 512), (128, 7168, 2048)]


def _empty_calls():
    cubin = sm90_cubin(SOURCE)
    holders = map_args(5)
    for label, entry, grid, block, smem, cluster in EMPTY:
        kernel = LoadedKernel(cubin, entry, smem)
        if entry == "one":
            types, args = [ctypes.c_longlong], [1]
        else:
            types, args = [None] * 5 + [ctypes.c_longlong] * 19, holders + [1] * 19
        launch = kernel.bind((grid, 1, 1), (block, 1, 1), types, cluster=(cluster, 1, 1),
                             shared_mem=smem)
        yield label, (lambda launch=launch, args=args: launch(args)), entry


def _row(label: str, fn, kernel_name=None) -> dict:
    kernel_us, names = bench.kernel_time_us(fn, calls=50, kernel=kernel_name)
    call_us = bench.call_time_us(fn)
    print(f"{label:44s} kernel {kernel_us:7.2f} us  call {call_us:7.2f} us  "
          f"call - kernel {call_us - kernel_us:5.2f} us   {', '.join(names)[:60]}", flush=True)
    return {"label": label, "kernel_us": kernel_us, "call_us": call_us, "names": names}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json")
    args = parser.parse_args()
    print(f"device {torch.cuda.get_device_name()}")
    rows = []
    for label, fn, entry in _empty_calls():
        rows.append(_row(label, fn, lambda name, entry=entry: name.startswith(entry)))
    for m, n, k in SHAPES:
        case = bench._prepare_fp8(m, n, k)
        bench._checked(case, f"ours {m} x {n} x {k}")
        bench._check(case["theirs"](), case["ref"], f"theirs {m} x {n} x {k}")
        for who, label in (("ours", "dgreg"), ("theirs", "cuBLASLt")):
            rows.append(_row(f"{label} {m} x {n} x {k}", case[who]))
    if args.json:
        Path(args.json).write_text(json.dumps({"device": torch.cuda.get_device_name(),
                                               "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
