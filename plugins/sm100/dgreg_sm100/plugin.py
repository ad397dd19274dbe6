"""Hook implementations of the sm100 plugin (see dgreg.hookspecs for the contract)."""

from __future__ import annotations

from dgreg import API_VERSION, Candidate, DType, Recipe, hookimpl
from dgreg_sm100 import codegen, heuristics, launch

ARCH = "sm100a"
B200_SMS = 148
#: kernel id -> (operand dtype, grouping as the kernel names it, the operation it serves)
_KERNELS = {
    f"sm100.{op}": (dtype, grouping, op) for op, dtype, grouping in (
        ("fp8_gemm", "fp8", "none"),
        ("bf16_gemm", "bf16", "none"),
        ("m_grouped_fp8_gemm_contiguous", "fp8", "contiguous"),
        ("m_grouped_bf16_gemm_contiguous", "bf16", "contiguous"),
        ("m_grouped_fp8_gemm_masked", "fp8", "masked"),
        ("m_grouped_bf16_gemm_masked", "bf16", "masked"),
        ("k_grouped_fp8_gemm_contiguous", "fp8", "k_grouped"),
        ("k_grouped_bf16_gemm_contiguous", "bf16", "k_grouped"),
    )
}
_DESCRIPTIONS = {
    "none": "persistent tcgen05 GEMM, accumulators in TMEM, all four layouts, CTA pairs",
    "contiguous": "the tcgen05 GEMM over experts' rows stored back to back (MoE)",
    "masked": "the tcgen05 GEMM over [G, M_max] rows, valid counts on the device (MoE decode)",
    "k_grouped": "the tcgen05 GEMM over K slices, FP32 D per group (MoE weight gradients)",
}
STATUS = ("compiled and inspected, not run on hardware: every operation in all its layouts, "
          "FP8 with UE8M0 scales (recipe ue8m0) and BF16")
_FP32_SCALES = ("Blackwell's block-scaled MMA takes UE8M0 (power-of-two) scales, and rounding "
                "FP32 scales to powers of two changes results, so dgreg never does it silently; "
                "quantise with use_ue8m0=True and pass packed scales (recipe ue8m0)")


@hookimpl
def dgreg_api_version() -> int:
    return API_VERSION


@hookimpl
def dgreg_plugin_info() -> dict[str, object]:
    return {
        "archs": [ARCH],
        "description": "GEMM kernels for NVIDIA Blackwell (sm_100a: B200, GB200)",
        "status": STATUS,
    }


def _serves(op: str, dtype: str):
    def supports(spec, device) -> str | None:
        if spec.op != op:
            return f"serves {op} only (got {spec.op})"
        if dtype == "fp8" and spec.recipe != Recipe.UE8M0:
            return f"recipe {spec.recipe.value}: {_FP32_SCALES}"
        return None

    return supports


def _reject_for(dtype: str, grouping: str):
    bk = heuristics.block_k(dtype)

    def reject(spec, problem) -> str | None:
        # Dense and K-grouped kernels TMA-store D, which writes whole 16-byte units: with N
        # not a multiple of them it would write past N into a padded D's spare columns (and a
        # D the call allocates would have rows the TMA cannot address).
        if grouping in ("none", "k_grouped"):
            per16 = 16 // (4 if spec.d_dtype == DType.FP32 else 2)
            if problem.n % per16:
                return (f"N={problem.n} is not a multiple of {per16}: the TMA store of D "
                        f"writes whole 16-byte units")
        # A K block of a group must not read the next group's rows: FP8 groups are whole
        # scale blocks already (the API checks), BF16 groups must be whole K blocks.
        if grouping == "k_grouped" and problem.group_ks is not None:
            odd = [k for k in problem.group_ks if k % bk]
            if odd:
                return (f"group K {odd[0]} is not a multiple of {bk} (a {bk}-row TMA box would "
                        f"read the next group's rows)")
        return None

    return reject


@hookimpl
def dgreg_register_kernels(register, device) -> None:
    if device.arch != ARCH:
        return  # this plugin serves sm100a only
    for kernel_id, (dtype, grouping, op) in _KERNELS.items():
        register(Candidate(kernel_id, supports=_serves(op, dtype),
                           reject=_reject_for(dtype, grouping), priority=100,
                           description=_DESCRIPTIONS[grouping]))


def shape_of(grouping: str, problem) -> heuristics.Shape:
    """The cost model's view of ``problem``."""
    if grouping != "k_grouped":
        return heuristics.Shape(problem.m, problem.n, problem.k, problem.groups,
                                problem.expected_m if grouping == "masked" else None)
    ks = problem.group_ks or (problem.k // problem.groups,) * problem.groups
    busy = [k for k in ks if k]
    mean_k = sum(busy) // len(busy) if busy else 0
    return heuristics.Shape(problem.m, problem.n, mean_k, problem.groups, k_groups=len(busy))


@hookimpl
def dgreg_heuristic(candidate, spec, problem, device):
    if candidate.kernel_id not in _KERNELS:
        return None
    dtype, grouping, _ = _KERNELS[candidate.kernel_id]
    return heuristics.choose(dtype, spec.layout.value, grouping, spec.d_dtype.short,
                             shape_of(grouping, problem), device.sm_count or B200_SMS,
                             device.smem_per_block or heuristics.SMEM_LIMIT)


@hookimpl
def dgreg_generate_source(candidate, spec, config, device):
    if candidate.kernel_id not in _KERNELS:
        return None
    return codegen.gemm_source(config)


@hookimpl
def dgreg_launch_args(candidate, config, call):
    if candidate.kernel_id not in _KERNELS:
        return None
    return launch.gemm_launch(config, call)
