"""Hook implementations of the sm90 plugin (see dgreg.hookspecs for the contract)."""

from __future__ import annotations

from dgreg import API_VERSION, Candidate, hookimpl
from dgreg_sm90 import codegen, heuristics, launch, sass

ARCH = "sm90a"
FP8_1D2D = "sm90.fp8_gemm_1d2d"
BF16 = "sm90.bf16_gemm"
M_GROUPED_FP8 = "sm90.m_grouped_fp8_gemm_contiguous"
M_GROUPED_BF16 = "sm90.m_grouped_bf16_gemm_contiguous"
MASKED_FP8 = "sm90.m_grouped_fp8_gemm_masked"
MASKED_BF16 = "sm90.m_grouped_bf16_gemm_masked"
# kernel id -> (operand dtype, M-grouping: "" / "contiguous" / "masked", the spec it serves)
_KERNELS = {
    FP8_1D2D: ("fp8", "", "fp8_gemm.nt.1d2d.bf16"),
    BF16: ("bf16", "", "bf16_gemm.nt.bf16"),
    M_GROUPED_FP8: ("fp8", "contiguous", "m_grouped_fp8_gemm_contiguous.nt.1d2d.bf16"),
    M_GROUPED_BF16: ("bf16", "contiguous", "m_grouped_bf16_gemm_contiguous.nt.bf16"),
    MASKED_FP8: ("fp8", "masked", "m_grouped_fp8_gemm_masked.nt.1d2d.bf16"),
    MASKED_BF16: ("bf16", "masked", "m_grouped_bf16_gemm_masked.nt.bf16"),
}


@hookimpl
def dgreg_api_version() -> int:
    return API_VERSION


@hookimpl
def dgreg_plugin_info() -> dict[str, object]:
    return {
        "archs": [ARCH],
        "description": "GEMM kernels for NVIDIA Hopper (sm_90a: H100, H200, H800)",
        "status": "NT kernels with BF16 D: dense, M-grouped contiguous and masked, FP8 1d2d "
                  "and BF16; other operations fall back to the torch reference",
    }


def _serves(kernel_id: str):
    wanted = _KERNELS[kernel_id][2]

    def supports(spec, device) -> str | None:
        if spec.name != wanted:
            return f"serves {wanted} only so far (got {spec.name})"
        return None

    return supports


def _reject_for(dtype: str):
    step = 16 if dtype == "fp8" else 8  # elements per 16 bytes

    def reject(spec, problem) -> str | None:
        if problem.k % step and not (problem.m == 1 and problem.n == 1):
            return f"K={problem.k} is not a multiple of {step} (TMA needs 16-byte row strides)"
        return None

    return reject


_DESCRIPTIONS = {
    FP8_1D2D: "persistent warp-specialised wgmma FP8 GEMM, TMA ring, per-128-K promotion with "
              "1x128 / 128x128 scales, split-K for skinny shapes",
    BF16: "persistent warp-specialised wgmma BF16 GEMM, TMA ring",
    M_GROUPED_FP8: "the FP8 kernel over experts' rows stored back to back (MoE)",
    M_GROUPED_BF16: "the BF16 kernel over experts' rows stored back to back (MoE)",
    MASKED_FP8: "the FP8 kernel over [G, M_max] rows, valid counts on the device (MoE decode)",
    MASKED_BF16: "the BF16 kernel over [G, M_max] rows, valid counts on the device (MoE decode)",
}


@hookimpl
def dgreg_register_kernels(register, device) -> None:
    if device.arch != ARCH:
        return  # this plugin serves sm90a only
    for kernel_id, (dtype, _, _) in _KERNELS.items():
        register(Candidate(kernel_id, supports=_serves(kernel_id), reject=_reject_for(dtype),
                           priority=100, description=_DESCRIPTIONS[kernel_id]))


@hookimpl
def dgreg_heuristic(candidate, spec, problem, device):
    if candidate.kernel_id not in _KERNELS:
        return None
    dtype, grouping, _ = _KERNELS[candidate.kernel_id]
    smem = device.smem_per_block or heuristics.SMEM_LIMIT
    m = problem.m
    if grouping == "masked":  # plan for the rows the experts are expected to hold
        m = problem.groups * min(problem.expected_m or problem.m, problem.m)
    return heuristics.choose(m, problem.n, problem.k, device.sm_count or 132, smem, dtype,
                             grouped=grouping != "", masked=grouping == "masked")


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
    return launch.gemm_launch(config, p.m, p.n, p.k, p.groups)


@hookimpl
def dgreg_sass_passes(source, device):
    fp8_entries = (codegen.ENTRIES["fp8"], codegen.GROUPED_ENTRIES["fp8"],
                   codegen.MASKED_ENTRIES["fp8"])
    if source.entry not in fp8_entries:
        return []  # BF16 kernels have no promotion FFMAs
    return [sass.FFMA_INTERLEAVE]
