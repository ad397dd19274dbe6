"""Kernel time of dgreg's M-grouped contiguous FP8 GEMM on DeepGEMM's MoE shapes.

    DGREG_PLUGINS=sm90 python benchmarks/grouped_contiguous.py --json out.json

Each shape is checked against a float64 reference first. TFLOPS count every row of every
expert (all rows are valid here: m per group is a multiple of 128).
"""

from __future__ import annotations

import argparse
import functools
import json
import sys

import torch

import dgreg
from dgreg.bench import _check, call_time_us, kernel_time_us

#: (groups, m per group, N, K) and DeepGEMM's published H800 TFLOPS
SHAPES = [((4, 8192, 4096, 7168), 1346), ((4, 8192, 7168, 2048), 1214),
          ((8, 4096, 4096, 7168), 1346), ((8, 4096, 7168, 2048), 1214)]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json")
    args = parser.parse_args()
    rows = []
    print(f"{'G':>3} {'m/G':>5} {'N':>5} {'K':>5} | {'us':>8} {'TFLOPS':>7} {'call us':>8} | "
          f"{'DG H800':>7} | config")
    for (groups, per, n, k), published in SHAPES:
        m = groups * per
        a8, a_sf = dgreg.per_token_cast_to_fp8(torch.randn(m, k, device="cuda"))
        pairs = [dgreg.per_block_cast_to_fp8(torch.randn(n, k, device="cuda")) for _ in range(groups)]
        b8 = torch.stack([p[0] for p in pairs])
        b_sf = torch.stack([p[1] for p in pairs])
        ids = torch.arange(groups, device="cuda", dtype=torch.int32).repeat_interleave(per)
        d = torch.full((m, n), float("nan"), device="cuda", dtype=torch.bfloat16)
        fn = functools.partial(dgreg.m_grouped_gemm_contiguous, a8, b8, d, grouped_layout=ids,
                               a_scale=a_sf, b_scale=b_sf)
        fn()
        sa = a_sf.double().repeat_interleave(128, 1)[:, :k]
        ref = torch.empty(m, n, dtype=torch.float64, device="cuda")
        for g in range(groups):
            sb = b_sf[g].double().repeat_interleave(128, 0).repeat_interleave(128, 1)[:n, :k]
            span = slice(g * per, (g + 1) * per)
            ref[span] = (a8[span].double() * sa[span]) @ (b8[g].double() * sb).T
        _check(d, ref, f"g{groups}m{per}n{n}k{k}")
        t, _ = kernel_time_us(fn)
        c = call_time_us(fn)
        tflops = 2 * m * n * k / t / 1e6
        cfg = dgreg.explain("m_grouped_fp8_gemm_contiguous", dgreg.Problem(m, n, k, groups),
                            file=None).choice.config
        rows.append({"groups": groups, "m_per_group": per, "n": n, "k": k, "kernel_us": t,
                     "call_us": c, "tflops": tflops, "deepgemm_h800_tflops": published,
                     "config": repr(cfg)})
        print(f"{groups:>3} {per:>5} {n:>5} {k:>5} | {t:8.1f} {tflops:7.0f} {c:8.1f} | "
              f"{published:>7} | {cfg!r}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": torch.cuda.get_device_name(), "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
