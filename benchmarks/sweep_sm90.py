"""Kernel time of the sm90 dense kernel under several forced tile configs, per shape.

    DGREG_PLUGINS=sm90 python benchmarks/sweep_sm90.py [--dtype bf16] --json out.json
    DGREG_ARCH=h200 python benchmarks/sweep_sm90.py --dtype bf16 --prebuild .jitcache  # CPU

Every config is checked against the float64 reference before it is timed; the heuristics'
own pick is timed too (and, for BF16, the same pick with ``inflight``), so the table shows
how far it is from the best forced config. ``--prebuild DIR`` compiles every config the
sweep would run into a kernel cache (no GPU needed: the device is simulated with
``DGREG_ARCH``), to carry to the GPU machine.

    DGREG_PLUGINS=sm90 python benchmarks/sweep_sm90.py --grid GRID.json --json out.json

``--grid``: the shapes and configs from a file, ``[{"key": ["fp8" | "bf16", M, N, K] or
["masked" | "contiguous", G, M per group, N, K], "configs": [DGREG_SM90_CONFIG, ...]}, ...]``
("" is the heuristics' pick); each config is checked, then timed twice, the second pass in
the reverse order, and the shorter time kept (``--prebuild`` works with it too).
"""

from __future__ import annotations

import argparse
import os
import sys

from sm90_forced import checked_kernel_us, forced_plan, op_problem, prepared_case, write_json
from sm90_forced import prebuild as build_all

import dgreg

SHAPES = {
    "fp8": [(64, 2112, 7168), (64, 4096, 7168), (64, 7168, 2048), (128, 2112, 7168),
            (128, 4096, 7168), (128, 7168, 2048), (128, 32768, 512)],
    "bf16": [(64, 2112, 7168), (64, 4096, 7168), (128, 2112, 7168), (128, 4096, 7168),
             (128, 7168, 2048), (4096, 2112, 7168), (4096, 24576, 1536), (4096, 32768, 512),
             (4096, 7168, 16384), (4096, 4096, 7168), (4096, 7168, 2048)],
}
CONFIGS = {
    "fp8": ["", "block_m=64,block_n=136,split_k=8", "block_m=64,block_n=104,split_k=6",
            "block_m=64,block_n=64,split_k=4", "block_m=64,block_n=128,split_k=4",
            "block_m=64,block_n=176,split_k=3", "block_m=64,block_n=64,split_k=2",
            "block_m=128,block_n=136,split_k=8", "block_m=128,block_n=64,split_k=8",
            "block_m=64,block_n=56", "block_m=128,block_n=104,split_k=2"],
    # per M class: small M (<= 128) and large M
    "bf16-small": ["", "+inflight", "block_m=64,block_n=128,split_k=4",
                   "block_m=64,block_n=128,split_k=4,inflight=1",
                   "block_m=64,block_n=64,split_k=4,inflight=1",
                   "block_m=64,block_n=96,split_k=6,inflight=1",
                   "block_m=128,block_n=128,split_k=4,inflight=1",
                   "block_m=128,block_n=64,split_k=8,inflight=1"],
    "bf16-large": ["", "block_m=256,block_n=128", "block_m=256,block_n=128,inflight=1",
                   "block_m=128,block_n=256", "block_m=128,block_n=256,inflight=1",
                   "block_m=128,block_n=128", "block_m=128,block_n=128,inflight=1",
                   "block_m=128,block_n=192", "block_m=128,block_n=192,inflight=1",
                   "block_m=256,block_n=96,inflight=1", "block_m=256,block_n=136",
                   "block_m=256,block_n=128,stages=2"],
}


def _configs(dtype: str, m: int) -> list[str]:
    if dtype == "fp8":
        return CONFIGS["fp8"]
    return CONFIGS["bf16-small" if m <= 128 else "bf16-large"]


def _op(dtype: str) -> str:
    return "fp8_gemm" if dtype == "fp8" else "bf16_gemm"


def _resolve_forced(forced: str, dtype: str, m: int, n: int, k: int) -> str:
    """``+inflight``: the heuristics' own pick, with inflight on."""
    if forced != "+inflight":
        return forced
    cfg = forced_plan(_op(dtype), dgreg.Problem(m, n, k), "").choice.config
    if cfg.stages < 3:
        return ""
    return (f"block_m={cfg.block_m},block_n={cfg.block_n},split_k={cfg.split_k},"
            f"stages={cfg.stages},inflight=1")


def prebuild(dtype: str, cache_dir: str) -> int:
    def jobs():  # evaluated inside build_all's plugin scope
        for m, n, k in SHAPES[dtype]:
            for forced in _configs(dtype, m):
                text = _resolve_forced(forced, dtype, m, n, k)
                if forced != "+inflight" or text:
                    yield _op(dtype), dgreg.Problem(m, n, k), text

    return build_all(jobs(), cache_dir)


def grid(cases: list[dict]) -> list[dict]:
    """Every case's configs, checked, then timed in two passes (forward, reverse)."""
    rows = []
    for case in cases:
        key = case["key"]
        prepared = prepared_case(key)
        op, problem = op_problem(key)
        times: dict[str, list[float]] = {}
        configs: dict[str, str] = {}
        order = list(case["configs"])
        for check, texts in ((True, order), (False, order[::-1])):
            for text in texts:
                if text in configs and configs[text] is None:
                    continue
                try:
                    t, res = checked_kernel_us(prepared, op, problem, text, f"{key} {text}",
                                               check=check)
                except ValueError as exc:  # an illegal config for this shape: report, go on
                    print(f"{key!s:<36} {text or 'heuristic':<48} not run: {exc}")
                    configs[text] = None
                    continue
                configs[text] = repr(res.choice.config)
                times.setdefault(text, []).append(t)
        flops = prepared["flops"]
        for text in order:
            if configs.get(text) is None:
                continue
            best = min(times[text])
            rows.append({"key": key, "forced": text, "config": configs[text], "kernel_us": best,
                         "passes_us": times[text], "tflops": flops / best / 1e6})
            print(f"{key!s:<36} {text or 'heuristic':<48} {best:9.1f} us "
                  f"({' '.join(f'{t:.1f}' for t in times[text])}) {flops / best / 1e6:6.0f} TFLOPS "
                  f"{configs[text]}", flush=True)
    os.environ.pop("DGREG_SM90_CONFIG", None)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dtype", choices=("fp8", "bf16"), default="fp8")
    parser.add_argument("--grid", metavar="GRID.json")
    parser.add_argument("--json")
    parser.add_argument("--prebuild", metavar="DIR")
    args = parser.parse_args()
    if args.grid:
        import json

        with open(args.grid) as f:
            cases = json.load(f)
        if args.prebuild:
            return build_all(((*op_problem(case["key"]), text) for case in cases
                              for text in case["configs"]), args.prebuild)
        import torch

        write_json(args.json, {"device": torch.cuda.get_device_name(), "rows": grid(cases)})
        return 0
    if args.prebuild:
        return prebuild(args.dtype, args.prebuild)

    import torch

    from dgreg.bench import _SUITES

    rows = []
    for m, n, k in SHAPES[args.dtype]:
        case = _SUITES[args.dtype][0](m, n, k)
        for forced in _configs(args.dtype, m):
            text = _resolve_forced(forced, args.dtype, m, n, k)
            if forced == "+inflight" and not text:
                continue
            try:
                t, res = checked_kernel_us(case, _op(args.dtype), dgreg.Problem(m, n, k), text,
                                           text)
            except Exception as exc:  # an illegal config for this shape: report, go on
                print(f"{m:>5} {n:>6} {k:>6} {text or 'heuristic':<44} failed: {exc}")
                continue
            cfg = res.choice.config
            tflops = 2 * m * n * k / t / 1e6
            rows.append({"m": m, "n": n, "k": k, "forced": text, "config": repr(cfg),
                         "kernel_us": t, "tflops": tflops})
            print(f"{m:>5} {n:>6} {k:>6} {text or 'heuristic':<44} {t:9.1f} us {tflops:6.0f} "
                  f"TFLOPS  {cfg!r}", flush=True)
    os.environ.pop("DGREG_SM90_CONFIG", None)
    write_json(args.json, {"device": torch.cuda.get_device_name(), "dtype": args.dtype,
                           "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
