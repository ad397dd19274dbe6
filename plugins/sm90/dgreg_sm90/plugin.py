"""Hook implementations of the sm90 plugin (see dgreg.hookspecs for the contract)."""

from __future__ import annotations

from dgreg import API_VERSION, Candidate, hookimpl
from dgreg_sm90 import codegen, heuristics, launch, sass

ARCH = "sm90a"
FP8_1D2D = "sm90.fp8_gemm_1d2d"
BF16 = "sm90.bf16_gemm"
_DTYPE = {FP8_1D2D: "fp8", BF16: "bf16"}


@hookimpl
def dgreg_api_version() -> int:
    return API_VERSION


@hookimpl
def dgreg_plugin_info() -> dict[str, object]:
    return {
        "archs": [ARCH],
        "description": "GEMM kernels for NVIDIA Hopper (sm_90a: H100, H200, H800)",
        "status": "dense NT kernels: FP8 1d2d and BF16 (BF16 D); other operations fall back to "
                  "the torch reference",
    }


def _fp8_supports(spec, device) -> str | None:
    if spec.name != "fp8_gemm.nt.1d2d.bf16":
        return f"serves fp8_gemm.nt.1d2d.bf16 only so far (got {spec.name})"
    return None


def _bf16_supports(spec, device) -> str | None:
    if spec.name != "bf16_gemm.nt.bf16":
        return f"serves bf16_gemm.nt.bf16 only so far (got {spec.name})"
    return None


def _fp8_reject(spec, problem) -> str | None:
    if problem.k % 16 and not (problem.m == 1 and problem.n == 1):
        return f"K={problem.k} is not a multiple of 16 (TMA needs 16-byte row strides)"
    return None


def _bf16_reject(spec, problem) -> str | None:
    if problem.k % 8 and not (problem.m == 1 and problem.n == 1):
        return f"K={problem.k} is not a multiple of 8 (TMA needs 16-byte row strides)"
    return None


@hookimpl
def dgreg_register_kernels(register, device) -> None:
    if device.arch != ARCH:
        return  # this plugin serves sm90a only
    register(Candidate(FP8_1D2D, supports=_fp8_supports, reject=_fp8_reject, priority=100,
                       description="persistent warp-specialised wgmma FP8 GEMM, TMA ring, "
                                   "per-128-K promotion with 1x128 / 128x128 scales"))
    register(Candidate(BF16, supports=_bf16_supports, reject=_bf16_reject, priority=100,
                       description="persistent warp-specialised wgmma BF16 GEMM, TMA ring"))


@hookimpl
def dgreg_heuristic(candidate, spec, problem, device):
    if candidate.kernel_id not in _DTYPE:
        return None
    smem = device.smem_per_block or heuristics.SMEM_LIMIT
    return heuristics.choose(problem.m, problem.n, problem.k, device.sm_count or 132, smem,
                             _DTYPE[candidate.kernel_id])


@hookimpl
def dgreg_generate_source(candidate, spec, config, device):
    if candidate.kernel_id not in _DTYPE:
        return None
    return codegen.gemm_source(config, "sm_90a")


@hookimpl
def dgreg_launch_args(candidate, config, call):
    if candidate.kernel_id not in _DTYPE:
        return None
    p = call.problem
    return launch.gemm_launch(config, p.m, p.n, p.k)


@hookimpl
def dgreg_sass_passes(source, device):
    if source.entry != codegen.ENTRIES["fp8"]:  # BF16 kernels have no promotion FFMAs
        return []
    return [sass.FFMA_INTERLEAVE]
