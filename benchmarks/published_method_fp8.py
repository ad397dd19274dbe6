"""Dense FP8 kernel times under two methods, dgreg and cuBLASLt side by side:

- ``flushed``: ``dgreg bench``'s method (a 256 MiB write before every call, the same inputs);
- ``fresh``: the method of DeepGEMM's first test script, from which its published H800 figures
  for M <= 128 come (those rows never changed afterwards; the M = 4096 rows were measured
  again later, after an L2 flush went into its benchmark): before every timed call the inputs
  are built anew (random normal BF16, the BF16 reference product, the casts to FP8, the scale
  transpose), and nothing is flushed. The casts write A and B last, so a B that fits in L2
  (50 MB) may be read from there rather than from HBM.

Only the GEMM kernels are counted (profiler durations, by kernel name; the names of the input
builder's kernels must not overlap them). Every result is checked against the float64
reference first.

    DGREG_PLUGINS=sm90 python benchmarks/published_method_fp8.py [--json OUT.json] [--shapes MxNxK,...]

The default shapes are DeepGEMM's 12 dense shapes of M <= 128.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import torch
from sm90_forced import write_json

import dgreg
from dgreg.bench import (
    DEEPGEMM_H800,
    DENSE_SHAPES,
    _check,
    _checked,
    _prepare_fp8,
    fp8_calls,
    kernel_time_us,
)


def _builder(m: int, n: int, k: int) -> tuple[dict[str, Any], Any]:
    """(fresh, build): ``build()`` makes a new set of inputs as DeepGEMM's first test did
    (randn BF16, the BF16 product as its reference, per-token A and per-block B casts, the
    A scales made MN-major); ``fresh[lib]()`` calls that library on the latest set."""
    calls: list[Any] = []

    def build() -> None:
        a = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
        b = torch.randn(n, k, device="cuda", dtype=torch.bfloat16)
        d = torch.empty(m, n, device="cuda", dtype=torch.bfloat16)
        ref = a @ b.t()  # DeepGEMM's reference, kept with the set as its test kept it
        a8, a_sf = dgreg.per_token_cast_to_fp8(a)
        b8, b_sf = dgreg.per_block_cast_to_fp8(b)
        calls[:] = [*fp8_calls(a8, dgreg.get_mn_major_tma_aligned_tensor(a_sf), b8, b_sf, d), ref]

    return {"dgreg": lambda: calls[0](), "cuBLASLt": lambda: calls[1]()}, build


def _timed(what: str, fn: Any, fresh_fn: Any, build: Any, builder_kernels: set[str],
           flops: int) -> dict[str, float]:
    """One library's kernel time flushed (``fn``) and with fresh inputs (``fresh_fn`` after
    ``build``), counting only the kernels ``fn`` launches."""
    names = set(kernel_time_us(fn, calls=1)[1])
    if names & builder_kernels:
        raise SystemExit(f"{what}: kernels {sorted(names & builder_kernels)} are also the input "
                         "builder's: they cannot be told apart")

    def counted(name: str) -> bool:  # by name as the profile gives it
        return name[:60] in names

    flushed, _ = kernel_time_us(fn, kernel=counted)
    fresh_us, _ = kernel_time_us(fresh_fn, flush=build, kernel=counted)
    return {"flushed_us": flushed, "fresh_us": fresh_us,
            "flushed_tflops": flops / flushed / 1e6, "fresh_tflops": flops / fresh_us / 1e6}


def measure(m: int, n: int, k: int) -> dict[str, Any]:
    flops = 2 * m * n * k
    # correctness first, on the bench's own inputs and poisoned D
    case = _prepare_fp8(m, n, k)
    calls = {"dgreg": case["ours"], "cuBLASLt": case["theirs"]}
    row: dict[str, Any] = {"shape": [m, n, k], "calc_diff": _checked(case, "dgreg")}
    row["vendor_calc_diff"] = _check(calls["cuBLASLt"](), case.pop("ref"), "cuBLASLt")
    fresh, build = _builder(m, n, k)
    build()
    builder_kernels = set(kernel_time_us(build, calls=1)[1])
    for lib, fn in calls.items():
        row[lib] = _timed(f"{lib} {m}x{n}x{k}", fn, fresh[lib], build, builder_kernels, flops)
    return row


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json")
    parser.add_argument("--shapes", help="MxNxK,... (default: DeepGEMM's dense shapes of "
                                         "M <= 128)")
    args = parser.parse_args()
    published = dict(zip(DENSE_SHAPES, DEEPGEMM_H800, strict=True))
    shapes = ([tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
              if args.shapes else [shape for shape in DENSE_SHAPES if shape[0] <= 128])
    print(f"device {torch.cuda.get_device_name()}; TFLOPS from kernel time "
          "(flushed: 256 MiB write before each call; fresh: inputs rebuilt before each call, "
          "no flush)")
    print(f"{'shape':>19} | {'dgreg flushed':>13} {'fresh':>6} | {'cuBLASLt flushed':>16} "
          f"{'fresh':>6} | {'DG H800':>7}")
    rows = []
    for shape in shapes:
        row = measure(*shape)
        row["deepgemm_h800_tflops"] = published.get(tuple(shape))
        rows.append(row)
        ours, theirs = row["dgreg"], row["cuBLASLt"]
        print(f"{shape[0]:>5} {shape[1]:>6} {shape[2]:>6} | {ours['flushed_tflops']:13.0f} "
              f"{ours['fresh_tflops']:6.0f} | {theirs['flushed_tflops']:16.0f} "
              f"{theirs['fresh_tflops']:6.0f} | {row['deepgemm_h800_tflops'] or '':>7}", flush=True)
    write_json(args.json, {"device": torch.cuda.get_device_name(),
                           "date": time.strftime("%Y-%m-%d"), "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
