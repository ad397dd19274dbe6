"""``dgreg bench``: dgreg side by side with cuBLASLt (``torch._scaled_mm``) on DeepGEMM's shapes.

For every shape, inputs are built as DeepGEMM's tests build them (random normal BF16 cast
with ``per_token_cast_to_fp8`` / ``per_block_cast_to_fp8``) and every result is checked
against a float64 reference before anything is timed. Two timings per implementation:

- kernel time: the profiler's CUDA kernel durations per call, with the L2 cache flushed
  (a 256 MB write) before every call, as DeepGEMM's ``bench_kineto`` measures;
- per-call time: ``triton.testing.do_bench`` median (host overhead included), or CUDA events
  when triton is missing.

TFLOPS = 2 M N K / t; GB/s = (A + B in FP8 + D in BF16) / t; the roofline floor is
max(FLOPs / peak FLOPS, bytes / peak bandwidth) with both peaks measured in the same run
(cuBLASLt FP8 8192^3 per-tensor scaled, and a 4 GiB device copy).
"""

from __future__ import annotations

import functools
import json
import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

import dgreg
from dgreg.reference import dequantize_1d2d

__all__ = ["DENSE_SHAPES", "run_bf16", "run_dense", "run_suite"]

#: DeepGEMM's dense table: M x (N, K)
DENSE_SHAPES = [(m, n, k) for m in (64, 128, 4096)
                for n, k in ((2112, 7168), (24576, 1536), (32768, 512), (7168, 16384),
                             (4096, 7168), (7168, 2048))]
#: DeepGEMM's published H800 TFLOPS for those shapes (same order)
DEEPGEMM_H800 = [206, 289, 219, 336, 287, 295, 352, 535, 358, 645, 533, 510,
                 1127, 1212, 775, 1520, 1410, 1168]

_FLUSH: torch.Tensor | None = None


def _flush() -> None:
    global _FLUSH
    if _FLUSH is None:
        _FLUSH = torch.empty(256 * 2**20 // 4, dtype=torch.int32, device="cuda")
    _FLUSH.zero_()


def kernel_time_us(fn: Callable[[], Any], calls: int = 30) -> tuple[float, list[str]]:
    """Mean per-call CUDA kernel time (all kernels but the L2 flush), and their names."""
    from torch.profiler import ProfilerActivity, profile

    fn()
    _flush()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            _flush()
            fn()
        torch.cuda.synchronize()
    total, names = 0.0, set()
    for event in prof.events():
        if event.device_time <= 0 or "fill" in event.name.lower() or "Fill" in event.name:
            continue
        total += event.device_time
        names.add(event.name[:60])
    return total / calls, sorted(names)


def call_time_us(fn: Callable[[], Any]) -> float:
    try:
        from triton.testing import do_bench

        return do_bench(fn, warmup=25, rep=100, return_mode="median") * 1e3
    except ImportError:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        fn()
        times = []
        for _ in range(50):
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) * 1e3)
        return statistics.median(times)


def measure_peaks(dtype: str = "fp8") -> dict[str, float]:
    n = 8192
    if dtype == "fp8":
        a = torch.randn(n, n, device="cuda").to(torch.float8_e4m3fn)
        b = torch.randn(n, n, device="cuda").to(torch.float8_e4m3fn).t()
        one = torch.ones((), device="cuda")
        mm = functools.partial(torch._scaled_mm, a, b, scale_a=one, scale_b=one,
                               out_dtype=torch.bfloat16, use_fast_accum=True)
    else:
        a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
        b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
        mm = functools.partial(torch.mm, a, b)
    t_mm = call_time_us(mm)
    src = torch.empty(2**30, dtype=torch.int32, device="cuda")
    dst = torch.empty_like(src)
    t_copy = call_time_us(lambda: dst.copy_(src))
    return {"peak_tflops": 2 * n**3 / t_mm / 1e6, "peak_gbps": 2 * src.numel() * 4 / t_copy / 1e3}


def _check(d: torch.Tensor, ref: torch.Tensor, what: str, limit: float = 1e-3) -> float:
    """calc_diff < ``limit`` and every element within 2^-5 of max |ref| (calc_diff alone,
    being a global measure, can miss a few wrong columns)."""
    diff = dgreg.calc_diff(d, ref)
    worst = (d.double() - ref).abs().max().item() if d.numel() else 0.0
    bound = 2 ** -5 * ref.abs().max().item()
    if not diff < limit or d.isnan().any() or worst > bound:
        raise AssertionError(f"{what}: calc_diff {diff:.3e}, max |d - ref| {worst:.3g} "
                             f"(bound {bound:.3g}) against the float64 reference")
    return diff


def _prepare_fp8(m: int, n: int, k: int) -> dict[str, Any]:
    """DeepGEMM-style FP8 inputs, dgreg's call, cuBLASLt's block-scaled call, the reference."""
    a8, a_sf = dgreg.per_token_cast_to_fp8(torch.randn(m, k, device="cuda", dtype=torch.bfloat16))
    b8, b_sf = dgreg.per_block_cast_to_fp8(torch.randn(n, k, device="cuda", dtype=torch.bfloat16))
    a_sf = dgreg.get_mn_major_tma_aligned_tensor(a_sf)
    a_ref, b_ref = dequantize_1d2d(a8, a_sf, b8, b_sf)
    d = torch.full((m, n), float("nan"), device="cuda", dtype=torch.bfloat16)
    return {
        "op": "fp8_gemm", "d": d, "limit": 1e-3, "bytes": m * k + n * k + 2 * m * n,
        "ref": a_ref @ b_ref.T,
        "ours": functools.partial(dgreg.gemm, a8, b8, d, a_scale=a_sf, b_scale=b_sf),
        # B as [K, N] column-major and its scales as [K/128, N/128] over [N/128, K/128]
        # storage: the forms cuBLASLt's block-scaled path accepts
        "theirs": functools.partial(torch._scaled_mm, a8, b8.t(), scale_a=a_sf, scale_b=b_sf.t(),
                                    out_dtype=torch.bfloat16),
    }


def _prepare_bf16(m: int, n: int, k: int) -> dict[str, Any]:
    a = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, k, device="cuda", dtype=torch.bfloat16)
    d = torch.full((m, n), float("nan"), device="cuda", dtype=torch.bfloat16)
    return {"op": "bf16_gemm", "d": d, "limit": 1e-5, "bytes": 2 * (m * k + n * k) + 2 * m * n,
            "ref": a.double() @ b.double().T, "ours": functools.partial(dgreg.gemm, a, b, d),
            "theirs": functools.partial(torch.mm, a, b.t())}


_SUITES = {"fp8": (_prepare_fp8, "cuBLASLt", "FP8"), "bf16": (_prepare_bf16, "cuBLAS", "BF16")}


def run_suite(kind: str, shapes: list[tuple[int, int, int]] | None = None, *,
              log: Callable[[str], None] = print) -> dict[str, Any]:
    """dgreg.gemm against the vendor library on ``shapes`` (default DeepGEMM's dense table)."""
    prepare, vendor, label = _SUITES[kind]
    published = kind == "fp8" and shapes is None
    shapes = shapes or DENSE_SHAPES
    peaks = measure_peaks(kind)
    device = torch.cuda.get_device_name()
    log(f"device {device}; measured peaks: {label} {peaks['peak_tflops']:.0f} TFLOPS ({vendor} "
        f"8192^3), copy {peaks['peak_gbps']:.0f} GB/s")
    header = (f"{'M':>5} {'N':>6} {'K':>6} | {'dgreg us':>8} {'TFLOPS':>7} {'GB/s':>6} {'roof':>5} | "
              f"{vendor + ' us':>12} {'TFLOPS':>7} | {'x ' + vendor:>11} | {'call us':>7} "
              f"{vendor:>8} {'x':>5}" + (f" | {'DG H800':>7}" if published else ""))
    log(header)
    log("-" * len(header))
    rows = []
    for index, (m, n, k) in enumerate(shapes):
        case = prepare(m, n, k)
        ours, theirs = case["ours"], case["theirs"]
        ours()
        diff = _check(case["d"], case["ref"], f"dgreg m{m}n{n}k{k}", case["limit"])
        try:
            their_diff = _check(theirs(), case["ref"], f"{vendor} m{m}n{n}k{k}", case["limit"])
        except (RuntimeError, AssertionError, ValueError) as exc:
            theirs, their_diff = None, f"unavailable: {str(exc).splitlines()[0][:160]}"
            log(f"  {vendor} m{m}n{n}k{k}: {their_diff}")
        flops, nbytes = 2 * m * n * k, case["bytes"]
        floor_us = max(flops / (peaks["peak_tflops"] * 1e6), nbytes / (peaks["peak_gbps"] * 1e3))
        t_ours, names = kernel_time_us(ours)
        c_ours = call_time_us(ours)
        t_theirs = kernel_time_us(theirs)[0] if theirs else math.nan
        c_theirs = call_time_us(theirs) if theirs else math.nan
        row = {
            "m": m, "n": n, "k": k, "calc_diff": diff, "cublas_calc_diff": their_diff,
            "kernel_us": t_ours, "call_us": c_ours, "cublas_kernel_us": t_theirs,
            "cublas_call_us": c_theirs, "tflops": flops / t_ours / 1e6,
            "gbps": nbytes / t_ours / 1e3, "roofline": floor_us / t_ours,
            "cublas_tflops": flops / t_theirs / 1e6, "speedup_kernel": t_theirs / t_ours,
            "speedup_call": c_theirs / c_ours, "kernels": names,
            "config": repr(dgreg.explain(case["op"], (m, n, k), file=None).choice.config),
        }
        if published:
            row["deepgemm_h800_tflops"] = DEEPGEMM_H800[index]
        rows.append(row)
        log(f"{m:>5} {n:>6} {k:>6} | {t_ours:8.1f} {row['tflops']:7.0f} {row['gbps']:6.0f} "
            f"{row['roofline']:5.0%} | {t_theirs:12.1f} {row['cublas_tflops']:7.0f} | "
            f"{row['speedup_kernel']:10.2f}x | {c_ours:7.1f} {c_theirs:8.1f} "
            f"{row['speedup_call']:4.2f}x" + (f" | {row['deepgemm_h800_tflops']:>7}" if published
                                               else ""))

    def geo(key: str) -> float:
        values = [math.log(r[key]) for r in rows if r[key] == r[key] and r[key] > 0]
        return math.exp(statistics.fmean(values)) if values else math.nan

    summary = {"geomean_speedup_kernel": geo("speedup_kernel"),
               "geomean_speedup_call": geo("speedup_call"), "geomean_tflops": geo("tflops")}
    log(f"geometric mean: {summary['geomean_tflops']:.0f} TFLOPS; x {vendor} kernel "
        f"{summary['geomean_speedup_kernel']:.2f}, per call {summary['geomean_speedup_call']:.2f}")
    return {"device": device, "date": time.strftime("%Y-%m-%d"), "torch": torch.__version__,
            "suite": kind, "peaks": peaks, "rows": rows, "summary": summary}


def run_dense(shapes: list[tuple[int, int, int]] | None = None, *,
              log: Callable[[str], None] = print) -> dict[str, Any]:
    """FP8 1d2d NT against torch._scaled_mm (block-wise scales)."""
    return run_suite("fp8", shapes, log=log)


def run_bf16(shapes: list[tuple[int, int, int]] | None = None, *,
             log: Callable[[str], None] = print) -> dict[str, Any]:
    """BF16 NT against torch.mm."""
    return run_suite("bf16", shapes, log=log)


def plot(result: dict[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    labels = [f"{r['m']}x{r['n']}x{r['k']}" for r in rows]
    x = range(len(rows))
    fig, ax = plt.subplots(figsize=(12, 4.5))
    ax.bar([i - 0.27 for i in x], [r["tflops"] for r in rows], 0.27, label="dgreg")
    ax.bar(list(x), [r["cublas_tflops"] for r in rows], 0.27,
           label="cuBLASLt (_scaled_mm)" if "deepgemm_h800_tflops" in rows[0] else "cuBLAS (torch.mm)")
    if rows[0].get("deepgemm_h800_tflops"):
        ax.bar([i + 0.27 for i in x], [r["deepgemm_h800_tflops"] for r in rows], 0.27,
               label="DeepGEMM (published, H800)")
    ax.set_xticks(list(x), labels, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("TFLOPS (kernel time)")
    kind = "FP8 1d2d" if "deepgemm_h800_tflops" in rows[0] else "BF16"
    ax.set_title(f"{kind} NT GEMM on {result['device']}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(json_path: str | None = None, plot_path: str | None = None,
               suite: str = "fp8") -> dict[str, Any]:
    result = run_suite(suite)
    if json_path:
        with open(json_path, "w") as f:
            json.dump(result, f, indent=1, default=str)
    if plot_path:
        try:
            plot(result, plot_path)
        except ImportError:
            print("matplotlib is not installed: no plot")
    return result

