"""Kernel time of the sm90 FP8 kernel under several forced tile configs, per shape.

    DGREG_PLUGINS=sm90 python benchmarks/sweep_sm90.py --json out.json

Every config is checked against the float64 reference before it is timed; the heuristics'
own pick is timed too, so the table shows how far it is from the best forced config.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys

import torch

import dgreg
from dgreg import dispatch
from dgreg.bench import _check, _operands, kernel_time_us

SHAPES = [(64, 2112, 7168), (64, 4096, 7168), (64, 7168, 2048), (128, 2112, 7168),
          (128, 4096, 7168), (128, 7168, 2048), (128, 32768, 512)]
CONFIGS = ["", "block_m=64,block_n=136,split_k=8", "block_m=64,block_n=104,split_k=6",
           "block_m=64,block_n=64,split_k=4", "block_m=64,block_n=128,split_k=4",
           "block_m=64,block_n=176,split_k=3", "block_m=64,block_n=64,split_k=2",
           "block_m=128,block_n=136,split_k=8", "block_m=128,block_n=64,split_k=8",
           "block_m=64,block_n=56", "block_m=128,block_n=104,split_k=2"]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json")
    args = parser.parse_args()
    rows = []
    for m, n, k in SHAPES:
        a8, a_sf, b8, b_sf, ref = _operands("fp8", m, n, k)
        for forced in CONFIGS:
            os.environ["DGREG_SM90_CONFIG"] = forced
            dispatch.clear_caches()
            d = torch.full((m, n), float("nan"), device="cuda", dtype=torch.bfloat16)
            fn = functools.partial(dgreg.gemm, a8, b8, d, a_scale=a_sf, b_scale=b_sf)
            try:
                fn()
                _check(d, ref, forced)
                t, _ = kernel_time_us(fn, calls=20)
            except Exception as exc:  # an illegal config for this shape: report, go on
                print(f"{m:>5} {n:>6} {k:>6} {forced or 'heuristic':<28} failed: {exc}")
                continue
            cfg = dgreg.explain("fp8_gemm", (m, n, k), file=None).choice.config
            tflops = 2 * m * n * k / t / 1e6
            rows.append({"m": m, "n": n, "k": k, "forced": forced, "config": repr(cfg),
                         "kernel_us": t, "tflops": tflops})
            print(f"{m:>5} {n:>6} {k:>6} {forced or 'heuristic':<28} {t:9.1f} us {tflops:6.0f} "
                  f"TFLOPS  {cfg!r}", flush=True)
    os.environ.pop("DGREG_SM90_CONFIG", None)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": torch.cuda.get_device_name(), "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
