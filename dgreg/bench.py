"""``dgreg bench``: dgreg side by side with the vendor library on DeepGEMM's shapes.

Suites: ``fp8`` (dense 1d2d NT against cuBLASLt's block-scaled ``torch._scaled_mm``), ``bf16``
(against ``torch.mm``), ``grouped`` (MoE M-grouped contiguous and masked FP8 against
``torch._scaled_grouped_mm``, which scales per row only: the closest recipe torch offers),
``layouts`` (FP8 and BF16 NN/TN/TT against the same call in NT, to price the transposing copy).

For every shape, inputs are built as DeepGEMM's tests build them (random normal BF16 cast
with ``per_token_cast_to_fp8`` / ``per_block_cast_to_fp8``) and every result is checked
against a float64 reference before anything is timed. Two timings per implementation:

- kernel time: the profiler's CUDA kernel durations per call, with the L2 cache flushed
  (a 256 MB write) before every call, as DeepGEMM's ``bench_kineto`` measures;
- per-call time: ``triton.testing.do_bench`` median (host overhead included), or CUDA events
  when triton is missing.

Every shape's kernel times are taken first, then the peaks, then every shape's per-call
times: a ``do_bench`` loop holds the card at full load for 100 ms, and at M = 4096 kernels
timed after such loops ran 1-12% (dgreg) and up to 13% (cuBLASLt) slower than in a pass of
short bursts, which is how DeepGEMM's kernel timings are taken. Each timing alternates which
library runs first.

TFLOPS = 2 M N K / t; GB/s = (A + B + D bytes) / t; the roofline floor is
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

__all__ = ["DENSE_SHAPES", "GROUPED_SHAPES", "LAYOUT_SHAPES", "fp8_calls", "run_suite"]

#: DeepGEMM's dense table: M x (N, K)
DENSE_SHAPES = [(m, n, k) for m in (64, 128, 4096)
                for n, k in ((2112, 7168), (24576, 1536), (32768, 512), (7168, 16384),
                             (4096, 7168), (7168, 2048))]
#: DeepGEMM's published H800 TFLOPS for those shapes (same order)
DEEPGEMM_H800 = [206, 289, 219, 336, 287, 295, 352, 535, 358, 645, 533, 510,
                 1127, 1212, 775, 1520, 1410, 1168]
#: DeepGEMM's MoE tables: (kind, groups, m per group, N, K) and its published H800 TFLOPS
GROUPED_SHAPES = [(("contiguous", 4, 8192, 4096, 7168), 1346),
                  (("contiguous", 4, 8192, 7168, 2048), 1214),
                  (("contiguous", 8, 4096, 4096, 7168), 1346),
                  (("contiguous", 8, 4096, 7168, 2048), 1214),
                  (("masked", 1, 1024, 4096, 7168), 1233), (("masked", 1, 1024, 7168, 2048), 925),
                  (("masked", 2, 512, 4096, 7168), 1040), (("masked", 2, 512, 7168, 2048), 916),
                  (("masked", 4, 256, 4096, 7168), 932), (("masked", 4, 256, 7168, 2048), 815)]
#: (dtype, layout, M, N, K) for the layouts suite
LAYOUT_SHAPES = [(dtype, layout, m, n, k) for dtype in ("fp8", "bf16")
                 for m, n, k in ((128, 7168, 7168), (4096, 7168, 2048), (4096, 4096, 7168))
                 for layout in ("NT", "NN", "TN", "TT")]

_FLUSH: torch.Tensor | None = None


def _flush() -> None:
    global _FLUSH
    if _FLUSH is None:
        _FLUSH = torch.empty(256 * 2**20 // 4, dtype=torch.int32, device="cuda")
    _FLUSH.zero_()


def kernel_time_us(fn: Callable[[], Any], calls: int = 30, *,
                   flush: Callable[[], Any] | None = None,
                   kernel: Callable[[str], bool] | None = None) -> tuple[float, list[str]]:
    """Mean per-call CUDA kernel time and the kernels' names: every kernel but the L2 flush's
    fill, or only those whose name ``kernel`` accepts. Each call follows ``flush`` (default:
    writing 256 MiB)."""
    from torch.profiler import ProfilerActivity, profile

    flush = flush or _flush
    fn()
    flush()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            flush()
            fn()
        torch.cuda.synchronize()
    total, names = 0.0, set()
    for event in prof.events():
        wanted = kernel(event.name) if kernel else "fill" not in event.name.lower()
        if event.device_time <= 0 or not wanted:
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


def _alternating(ours: Callable[[], Any], theirs: Callable[[], Any] | None,
                 timer: Callable[[Callable[[], Any]], float], rounds: int = 2) -> tuple[float, float]:
    """(ours, theirs): the mean of ``timer`` over ``rounds`` rounds that alternate which
    library runs first (NaN for theirs without a vendor run), so that neither always runs
    on the card as the other left it."""
    times: dict[Any, list[float]] = {ours: [], theirs: []}
    for round_ in range(rounds):
        for fn in (ours, theirs) if round_ % 2 == 0 else (theirs, ours):
            if fn is not None:
                times[fn].append(timer(fn))
    return statistics.fmean(times[ours]), statistics.fmean(times[theirs] or [math.nan])


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


def _checked(case: dict[str, Any], what: str) -> float:
    """A prepared case's dgreg call run once on a poisoned D and checked against the case's
    float64 reference (:func:`_check`, at the case's limit): its calc_diff. The bench's first
    check, and scripts' checks of a case again (another config, another kernel build)."""
    case["d"].fill_(float("nan"))
    case["ours"]()
    return _check(case["d"], case["ref"], what, case["limit"])


def _operands(dtype: str, m: int, n: int, k: int) -> tuple[Any, ...]:
    """DeepGEMM-style inputs (random normal BF16; FP8: cast per token for A, per 128 x 128 block
    for B) and their float64 product: (a, a_scale, b, b_scale, reference)."""
    a = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, k, device="cuda", dtype=torch.bfloat16)
    if dtype == "bf16":
        return a, None, b, None, a.double() @ b.double().T
    a8, a_sf = dgreg.per_token_cast_to_fp8(a)
    b8, b_sf = dgreg.per_block_cast_to_fp8(b)
    a_ref, b_ref = dequantize_1d2d(a8, a_sf, b8, b_sf)
    return a8, a_sf, b8, b_sf, a_ref @ b_ref.T


def _dense_case(dtype: str, m: int, n: int, k: int, ref: torch.Tensor) -> dict[str, Any]:
    """What every dense case shares: sizes, bytes (A + B + D), tolerance, a poisoned D."""
    elem = 1 if dtype == "fp8" else 2
    return {"flops": 2 * m * n * k, "bytes": elem * (m * k + n * k) + 2 * m * n,
            "limit": 1e-3 if dtype == "fp8" else 1e-5, "ref": ref,
            "d": torch.full((m, n), float("nan"), device="cuda", dtype=torch.bfloat16)}


def fp8_calls(a8: torch.Tensor, a_sf: torch.Tensor, b8: torch.Tensor, b_sf: torch.Tensor,
              d: torch.Tensor) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """(dgreg's FP8 1d2d call into ``d``, cuBLASLt's block-scaled call) on the same inputs
    (``a_sf`` MN-major, as dgreg.get_mn_major_tma_aligned_tensor makes it)."""
    # cuBLASLt: B as [K, N] column-major and its scales as [K/128, N/128] over [N/128, K/128]
    # storage, the forms its block-scaled path accepts
    return (functools.partial(dgreg.gemm, a8, b8, d, a_scale=a_sf, b_scale=b_sf),
            functools.partial(torch._scaled_mm, a8, b8.t(), scale_a=a_sf, scale_b=b_sf.t(),
                              out_dtype=torch.bfloat16))


def _prepare_fp8(m: int, n: int, k: int) -> dict[str, Any]:
    """dgreg's FP8 1d2d call and cuBLASLt's block-scaled call on the same inputs."""
    a8, a_sf, b8, b_sf, ref = _operands("fp8", m, n, k)
    a_sf = dgreg.get_mn_major_tma_aligned_tensor(a_sf)
    case = _dense_case("fp8", m, n, k, ref)
    ours, theirs = fp8_calls(a8, a_sf, b8, b_sf, case["d"])
    return {**case, "explain": ("fp8_gemm", (m, n, k)), "ours": ours, "theirs": theirs}


def _prepare_bf16(m: int, n: int, k: int) -> dict[str, Any]:
    a, _, b, _, ref = _operands("bf16", m, n, k)
    case = _dense_case("bf16", m, n, k, ref)
    return {**case, "explain": ("bf16_gemm", (m, n, k)),
            "ours": functools.partial(dgreg.gemm, a, b, case["d"]),
            "theirs": functools.partial(torch.mm, a, b.t())}


def _rowwise_fp8(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """FP8 with one FP32 scale per row (the only recipe torch's grouped GEMM takes)."""
    scale = x.abs().amax(dim=-1).float().clamp_min(1e-4) / 448.0
    return (x / scale.unsqueeze(-1)).to(torch.float8_e4m3fn), scale


def _prepare_grouped(kind: str, groups: int, per: int, n: int, k: int) -> dict[str, Any]:
    """dgreg's M-grouped FP8 1d2d call and torch._scaled_grouped_mm (row-wise scales) on the
    same BF16 data, each checked against its own float64 reference. Every row is valid (m per
    group a multiple of 128, masked_m = m per group), so the FLOPs count all rows. A's scales
    are MN-major and TMA-aligned before the timed calls, as DeepGEMM's tests pass them
    ([G * M, K / 128] contiguous, [G, M, K / 128] masked): no copy inside the call."""
    a = torch.randn(groups, per, k, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(groups, n, k, device="cuda", dtype=torch.bfloat16)
    pa = [dgreg.per_token_cast_to_fp8(a[g]) for g in range(groups)]
    pb = [dgreg.per_block_cast_to_fp8(b[g]) for g in range(groups)]
    a8, a_sf = torch.stack([p[0] for p in pa]), torch.stack([p[1] for p in pa])
    b8, b_sf = torch.stack([p[0] for p in pb]), torch.stack([p[1] for p in pb])
    a_ref, b_ref = dequantize_1d2d(a8, a_sf, b8, b_sf)
    d = torch.full((groups, per, n), float("nan"), device="cuda", dtype=torch.bfloat16)
    # torch: A row-wise [G * per, K] (or [G, per, K]), B [G, K, N] column-major, B scales [G, N]
    ra8, ra_sf = _rowwise_fp8(a)
    rb8, rb_sf = _rowwise_fp8(b)
    their_ref = (ra8.double() * ra_sf.double().unsqueeze(-1)) @ \
        (rb8.double() * rb_sf.double().unsqueeze(-1)).transpose(1, 2)
    if kind == "masked":
        masked = torch.full((groups,), per, dtype=torch.int32, device="cuda")
        ours = functools.partial(dgreg.m_grouped_gemm_masked, a8, b8, d, masked_m=masked,
                                 expected_m=per, b_scale=b_sf,
                                 a_scale=dgreg.get_mn_major_tma_aligned_tensor(a_sf))
        problem = dgreg.Problem(per, n, k, groups, expected_m=per)
        theirs = functools.partial(torch._scaled_grouped_mm, ra8, rb8.transpose(1, 2), ra_sf,
                                   rb_sf, out_dtype=torch.bfloat16)
    else:
        ids = torch.arange(groups, device="cuda", dtype=torch.int32).repeat_interleave(per)
        flat_a_sf = dgreg.get_mn_major_tma_aligned_tensor(a_sf.view(groups * per, -1))
        ours = functools.partial(dgreg.m_grouped_gemm_contiguous, a8.view(groups * per, k), b8,
                                 d.view(groups * per, n), grouped_layout=ids,
                                 a_scale=flat_a_sf, b_scale=b_sf)
        problem = dgreg.Problem(groups * per, n, k, groups)
        offs = torch.arange(1, groups + 1, device="cuda", dtype=torch.int32) * per
        flat8, flat_sf = ra8.view(groups * per, k), ra_sf.view(groups * per)

        def theirs():
            return torch._scaled_grouped_mm(flat8, rb8.transpose(1, 2), flat_sf, rb_sf,
                                            offs=offs, out_dtype=torch.bfloat16).view(groups, per, n)
    return {"flops": 2 * groups * per * n * k,
            "bytes": groups * (per * k + n * k + 2 * per * n), "limit": 1e-3,
            "explain": (f"m_grouped_fp8_gemm_{kind}", problem), "d": d,
            "ref": a_ref @ b_ref.transpose(1, 2), "ours": ours, "theirs": theirs,
            "their_ref": their_ref}


def _prepare_layout(dtype: str, layout: str, m: int, n: int, k: int) -> dict[str, Any]:
    """dgreg in ``layout`` against dgreg in NT on the same data (both checked): the price of
    making MN-major operands K-major."""
    a, a_sf, b, b_sf, ref = _operands(dtype, m, n, k)
    case = _dense_case(dtype, m, n, k, ref)
    a_t, b_t = layout[0] == "T", layout[1] == "N"  # the operands passed transposed
    passed = dict(layout=layout, a_scale=a_sf.t() if a_t and a_sf is not None else a_sf,
                  b_scale=b_sf.t() if b_t and b_sf is not None else b_sf)
    d_nt = torch.empty_like(case["d"])
    return {**case, "explain": (f"{dtype}_gemm", dgreg.Problem(m, n, k), {"layout": layout}),
            "ours": functools.partial(dgreg.gemm, a.t().contiguous() if a_t else a,
                                      b.t().contiguous() if b_t else b, case["d"], **passed),
            "theirs": functools.partial(dgreg.gemm, a, b, d_nt, a_scale=a_sf, b_scale=b_sf)}


def _shapes(kind: str) -> list[tuple[tuple[Any, ...], float | None]]:
    if kind == "grouped":
        return GROUPED_SHAPES
    if kind == "layouts":
        return [(shape, None) for shape in LAYOUT_SHAPES]
    published = DEEPGEMM_H800 if kind == "fp8" else [None] * len(DENSE_SHAPES)
    return list(zip(DENSE_SHAPES, published, strict=True))


#: suite -> (prepare(*shape), the library compared, the peak to measure)
_SUITES = {"fp8": (_prepare_fp8, "cuBLASLt", "fp8"), "bf16": (_prepare_bf16, "cuBLAS", "bf16"),
           "grouped": (_prepare_grouped, "torch-grouped", "fp8"),
           "layouts": (_prepare_layout, "dgreg NT", "fp8")}


def _label(shape: tuple[Any, ...]) -> str:
    return " ".join(f"{v:>6}" if isinstance(v, int) else f"{v:>10}" for v in shape)


def _config_label(res: Any) -> str:
    """What a bench row ran: the plugin's kernel config, else the chosen kernel, marked where
    it is the fallback (no plugin offers a kernel: a GPU without the arch's plugin)."""
    if res.choice is not None:
        return repr(res.choice.config)
    return ("fallback: " if res.is_fallback else "") + res.chosen.kernel_id


def run_suite(kind: str, shapes: list[tuple[int, ...]] | None = None, *,
              log: Callable[[str], None] = print) -> dict[str, Any]:
    """dgreg against the library of the suite on ``shapes`` (default: the suite's table)."""
    prepare, vendor, peak_kind = _SUITES[kind]
    table = _shapes(kind) if shapes is None else [(shape, None) for shape in shapes]
    published = any(p is not None for _, p in table)
    # Two passes: every shape's kernel times first, then every shape's per-call times (see
    # the module docstring).
    timed = []
    for shape, deepgemm in table:
        case = prepare(*shape)
        ours, theirs = case["ours"], case["theirs"]
        what = "/".join(map(str, shape))
        diff = _checked(case, f"dgreg {what}")
        op, problem, *fields = case["explain"]
        res = dgreg.explain(op, problem, file=None, **(fields[0] if fields else {}))
        config = _config_label(res)
        if res.is_fallback:
            log(f"  dgreg {what}: no plugin kernel on this device, timing the {config}")
        try:
            their_diff = _check(theirs(), case.get("their_ref", case["ref"]), f"{vendor} {what}",
                                case["limit"])
        except (RuntimeError, AssertionError, ValueError, TypeError) as exc:
            theirs, their_diff = None, f"unavailable: {str(exc).splitlines()[0][:160]}"
            log(f"  {vendor} {what}: {their_diff}")
        case.pop("ref"), case.pop("their_ref", None)  # float64, the largest tensors: checked
        names: list[str] = []

        def kernel_us(fn, names=names, ours=ours):
            us, kernels = kernel_time_us(fn)
            if fn is ours:
                names[:] = kernels
            return us

        t_ours, t_theirs = _alternating(ours, theirs, kernel_us)
        timed.append((shape, deepgemm, case, ours, theirs, diff, their_diff, names, t_ours,
                      t_theirs, config))
    peaks = measure_peaks(peak_kind)  # after the kernel times: its loops heat the card too
    device = torch.cuda.get_device_name()
    log(f"device {device}; measured peaks: {peak_kind.upper()} {peaks['peak_tflops']:.0f} TFLOPS "
        f"(8192^3), copy {peaks['peak_gbps']:.0f} GB/s")
    width = len(_label(table[0][0]))
    header = (f"{'shape':>{width}} | {'dgreg us':>8} {'TFLOPS':>7} {'GB/s':>6} {'roof':>5} | "
              f"{vendor + ' us':>16} {'TFLOPS':>7} | {'x ' + vendor:>15} | {'call us':>7} "
              f"{vendor:>13} {'x':>5}" + (f" | {'DG H800':>7}" if published else ""))
    log(header)
    log("-" * len(header))
    rows = []
    for shape, deepgemm, case, ours, theirs, diff, their_diff, names, t_ours, t_theirs, config in timed:
        c_ours, c_theirs = _alternating(ours, theirs, call_time_us)
        flops, nbytes = case["flops"], case["bytes"]
        floor_us = max(flops / (peaks["peak_tflops"] * 1e6), nbytes / (peaks["peak_gbps"] * 1e3))
        row = {
            "shape": list(shape), "calc_diff": diff, "vendor_calc_diff": their_diff,
            "kernel_us": t_ours, "call_us": c_ours, "vendor_kernel_us": t_theirs,
            "vendor_call_us": c_theirs, "tflops": flops / t_ours / 1e6,
            "gbps": nbytes / t_ours / 1e3, "roofline": floor_us / t_ours,
            "vendor_tflops": flops / t_theirs / 1e6, "speedup_kernel": t_theirs / t_ours,
            "speedup_call": c_theirs / c_ours, "kernels": names, "config": config,
        }
        if kind in ("fp8", "bf16"):
            row.update(m=shape[0], n=shape[1], k=shape[2])
        if deepgemm is not None:
            row["deepgemm_h800_tflops"] = deepgemm
        rows.append(row)
        log(f"{_label(shape)} | {t_ours:8.1f} {row['tflops']:7.0f} {row['gbps']:6.0f} "
            f"{row['roofline']:5.0%} | {t_theirs:16.1f} {row['vendor_tflops']:7.0f} | "
            f"{row['speedup_kernel']:14.2f}x | {c_ours:7.1f} {c_theirs:13.1f} "
            f"{row['speedup_call']:4.2f}x" + (f" | {deepgemm:>7}" if deepgemm is not None else ""))

    def geo(key: str) -> float:
        values = [math.log(r[key]) for r in rows if r[key] == r[key] and r[key] > 0]
        return math.exp(statistics.fmean(values)) if values else math.nan

    summary = {"geomean_speedup_kernel": geo("speedup_kernel"),
               "geomean_speedup_call": geo("speedup_call"), "geomean_tflops": geo("tflops")}
    log(f"geometric mean: {summary['geomean_tflops']:.0f} TFLOPS; x {vendor} kernel "
        f"{summary['geomean_speedup_kernel']:.2f}, per call {summary['geomean_speedup_call']:.2f}")
    return {"device": device, "date": time.strftime("%Y-%m-%d"), "torch": torch.__version__,
            "suite": kind, "vendor": vendor, "peaks": peaks, "rows": rows, "summary": summary}


def plot(result: dict[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    labels = ["x".join(map(str, r["shape"])) for r in rows]
    x = range(len(rows))
    fig, ax = plt.subplots(figsize=(12, 4.5))
    ax.bar([i - 0.27 for i in x], [r["tflops"] for r in rows], 0.27, label="dgreg")
    ax.bar(list(x), [r["vendor_tflops"] for r in rows], 0.27, label=result["vendor"])
    if rows[0].get("deepgemm_h800_tflops"):
        ax.bar([i + 0.27 for i in x], [r["deepgemm_h800_tflops"] for r in rows], 0.27,
               label="DeepGEMM (published, H800)")
    ax.set_xticks(list(x), labels, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("TFLOPS (kernel time)")
    ax.set_title(f"dgreg bench {result['suite']} on {result['device']}")
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

