"""Kernel time of dgreg's M-grouped FP8 GEMMs on DeepGEMM's MoE shapes (contiguous and masked).

    DGREG_PLUGINS=sm90 python benchmarks/grouped.py --json out.json

Each shape is checked against a float64 reference first. Every row is valid here (m per
group a multiple of 128; masked_m = m per group), so TFLOPS count all rows.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys

import torch

import dgreg
from dgreg.bench import _check, call_time_us, kernel_time_us
from dgreg.reference import dequantize_1d2d

#: (kind, groups, m per group, N, K) and DeepGEMM's published H800 TFLOPS
SHAPES = [(("contiguous", 4, 8192, 4096, 7168), 1346), (("contiguous", 4, 8192, 7168, 2048), 1214),
          (("contiguous", 8, 4096, 4096, 7168), 1346), (("contiguous", 8, 4096, 7168, 2048), 1214),
          (("masked", 1, 1024, 4096, 7168), 1233), (("masked", 1, 1024, 7168, 2048), 925),
          (("masked", 2, 512, 4096, 7168), 1040), (("masked", 2, 512, 7168, 2048), 916),
          (("masked", 4, 256, 4096, 7168), 932), (("masked", 4, 256, 7168, 2048), 815)]


def _case(kind: str, groups: int, per: int, n: int, k: int):
    """The call, its output and its float64 reference."""
    pa = [dgreg.per_token_cast_to_fp8(torch.randn(per, k, device="cuda")) for _ in range(groups)]
    pb = [dgreg.per_block_cast_to_fp8(torch.randn(n, k, device="cuda")) for _ in range(groups)]
    a8, a_sf = torch.stack([p[0] for p in pa]), torch.stack([p[1] for p in pa])
    b8, b_sf = torch.stack([p[0] for p in pb]), torch.stack([p[1] for p in pb])
    a_ref, b_ref = dequantize_1d2d(a8, a_sf, b8, b_sf)
    ref = a_ref @ b_ref.transpose(1, 2)
    d = torch.full((groups, per, n), float("nan"), device="cuda", dtype=torch.bfloat16)
    if kind == "masked":
        masked = torch.full((groups,), per, dtype=torch.int32, device="cuda")
        fn = functools.partial(dgreg.m_grouped_gemm_masked, a8, b8, d, masked_m=masked,
                               expected_m=per, a_scale=a_sf, b_scale=b_sf)
        problem = dgreg.Problem(per, n, k, groups, expected_m=per)
        return fn, d, ref, problem
    ids = torch.arange(groups, device="cuda", dtype=torch.int32).repeat_interleave(per)
    flat = d.view(groups * per, n)
    fn = functools.partial(dgreg.m_grouped_gemm_contiguous, a8.view(groups * per, k), b8, flat,
                           grouped_layout=ids, a_scale=a_sf.view(groups * per, -1),
                           b_scale=b_sf)
    return fn, d, ref, dgreg.Problem(groups * per, n, k, groups)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json")
    args = parser.parse_args()
    rows = []
    print(f"{'kind':>10} {'G':>3} {'m/G':>5} {'N':>5} {'K':>5} | {'us':>8} {'TFLOPS':>7} "
          f"{'call us':>8} | {'DG H800':>7} | config")
    for (kind, groups, per, n, k), published in SHAPES:
        fn, d, ref, problem = _case(kind, groups, per, n, k)
        fn()
        _check(d, ref, f"{kind} g{groups}m{per}n{n}k{k}")
        t, _ = kernel_time_us(fn)
        c = call_time_us(fn)
        tflops = 2 * groups * per * n * k / t / 1e6
        cfg = dgreg.explain(f"m_grouped_fp8_gemm_{kind}", problem, file=None).choice.config
        rows.append({"kind": kind, "groups": groups, "m_per_group": per, "n": n, "k": k,
                     "kernel_us": t, "call_us": c, "tflops": tflops,
                     "deepgemm_h800_tflops": published, "config": repr(cfg)})
        print(f"{kind:>10} {groups:>3} {per:>5} {n:>5} {k:>5} | {t:8.1f} {tflops:7.0f} {c:8.1f} | "
              f"{published:>7} | {cfg!r}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": torch.cuda.get_device_name(), "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
