"""Hook implementations of the sm90 plugin (see dgreg.hookspecs for the contract)."""

from __future__ import annotations

from dgreg import API_VERSION, Candidate, hookimpl
from dgreg.spec import DType, Recipe
from dgreg_sm90 import codegen, heuristics, launch, sass

ARCH = "sm90a"
# kernel id -> (the operation it serves, operand dtype, grouping in Sm90GemmConfig terms)
_KERNELS = {
    "sm90.fp8_gemm": ("fp8_gemm", "fp8", ""),
    "sm90.bf16_gemm": ("bf16_gemm", "bf16", ""),
    "sm90.m_grouped_fp8_gemm_contiguous": ("m_grouped_fp8_gemm_contiguous", "fp8", "contiguous"),
    "sm90.m_grouped_bf16_gemm_contiguous": ("m_grouped_bf16_gemm_contiguous", "bf16", "contiguous"),
    "sm90.m_grouped_fp8_gemm_masked": ("m_grouped_fp8_gemm_masked", "fp8", "masked"),
    "sm90.m_grouped_bf16_gemm_masked": ("m_grouped_bf16_gemm_masked", "bf16", "masked"),
    "sm90.k_grouped_fp8_gemm_contiguous": ("k_grouped_fp8_gemm_contiguous", "fp8", "k"),
    "sm90.k_grouped_bf16_gemm_contiguous": ("k_grouped_bf16_gemm_contiguous", "bf16", "k"),
}
_TRANSPOSE_NOTE = ("MN-major operands are made K-major by one transposing copy before the "
                   "launch")
_DESCRIPTIONS = {
    "sm90.fp8_gemm": "persistent warp-specialised wgmma FP8 GEMM, TMA ring, per-128-K "
                     "promotion with 1d2d / 1d1d / UE8M0 scales, split-K for skinny shapes, "
                     "BF16 or FP32 D, optional C",
    "sm90.bf16_gemm": "persistent warp-specialised wgmma BF16 GEMM, TMA ring, BF16 or FP32 D, "
                      "optional C",
    "sm90.m_grouped_fp8_gemm_contiguous": "the FP8 kernel over experts' rows stored back to "
                                          "back (MoE)",
    "sm90.m_grouped_bf16_gemm_contiguous": "the BF16 kernel over experts' rows stored back to "
                                           "back (MoE)",
    "sm90.m_grouped_fp8_gemm_masked": "the FP8 kernel over [G, M_max] rows, valid counts on "
                                      "the device (MoE decode)",
    "sm90.m_grouped_bf16_gemm_masked": "the BF16 kernel over [G, M_max] rows, valid counts on "
                                       "the device (MoE decode)",
    "sm90.k_grouped_fp8_gemm_contiguous": "the FP8 1d1d kernel over K slices, FP32 D += "
                                          "(MoE weight gradient)",
    "sm90.k_grouped_bf16_gemm_contiguous": "the BF16 kernel over K slices, FP32 D += (MoE "
                                           "weight gradient)",
}


@hookimpl
def dgreg_api_version() -> int:
    return API_VERSION


@hookimpl
def dgreg_plugin_info() -> dict[str, object]:
    return {
        "archs": [ARCH],
        "description": "GEMM kernels for NVIDIA Hopper (sm_90a: H100, H200, H800)",
        "status": "every operation in specs/ops: dense, M-grouped contiguous and masked, "
                  "K-grouped; FP8 (1d2d, 1d1d, UE8M0 scales) and BF16; BF16 or FP32 D, "
                  "accumulation; all four layouts (" + _TRANSPOSE_NOTE + ")",
    }


def _serves(kernel_id: str):
    wanted = _KERNELS[kernel_id][0]

    def supports(spec, device) -> str | None:
        if spec.op != wanted:
            return f"serves {wanted} only (got {spec.op})"
        return None

    return supports


def _reject_for(dtype: str, grouping: str):
    step = 16 if dtype == "fp8" else 8  # elements per 16 bytes

    def reject(spec, problem) -> str | None:
        if grouping == "k":
            return None  # the operands are re-laid out K-major with 16-byte aligned rows
        if problem.k % step and not (problem.m == 1 and problem.n == 1):
            return f"K={problem.k} is not a multiple of {step} (TMA needs 16-byte row strides)"
        return None

    return reject


@hookimpl
def dgreg_register_kernels(register, device) -> None:
    if device.arch != ARCH:
        return  # this plugin serves sm90a only
    for kernel_id, (_, dtype, grouping) in _KERNELS.items():
        register(Candidate(kernel_id, supports=_serves(kernel_id),
                           reject=_reject_for(dtype, grouping), priority=100,
                           description=_DESCRIPTIONS[kernel_id]))


@hookimpl
def dgreg_heuristic(candidate, spec, problem, device):
    if candidate.kernel_id not in _KERNELS:
        return None
    _, dtype, grouping = _KERNELS[candidate.kernel_id]
    smem = device.smem_per_block or heuristics.SMEM_LIMIT
    m, k, batch = problem.m, problem.k, 1
    if grouping == "masked":  # plan for the rows the experts are expected to hold
        m = problem.groups * min(problem.expected_m or problem.m, problem.m)
    elif grouping == "k":  # the groups' mean K
        batch = problem.groups
        k = max(1, -(-problem.k // problem.groups))
    return heuristics.choose(
        m, problem.n, k, device.sm_count or 132, smem, dtype,
        grouped=grouping in ("contiguous", "masked"), masked=grouping == "masked",
        k_grouped=grouping == "k", sfb_rows=spec.recipe in (Recipe.R1D1D, Recipe.UE8M0),
        out_f32=spec.d_dtype == DType.FP32, with_c=spec.accumulate, batch=batch)


@hookimpl
def dgreg_generate_source(candidate, spec, config, device):
    if candidate.kernel_id not in _KERNELS:
        return None
    return codegen.gemm_source(config, "sm_90a")


@hookimpl
def dgreg_launch_args(candidate, config, call):
    if candidate.kernel_id not in _KERNELS:
        return None
    p = call.problem
    return launch.gemm_launch(config, p.m, p.n, p.k, p.groups, p.group_ks,
                              ue8m0=call.spec.recipe == Recipe.UE8M0)


@hookimpl
def dgreg_sass_passes(source, device):
    if "_fp8_" not in source.entry:
        return []  # BF16 kernels have no promotion FFMAs
    return [sass.FFMA_INTERLEAVE]


