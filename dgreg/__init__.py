"""dgreg: FP8 and BF16 GEMMs for NVIDIA GPUs, served by a registry of per-architecture plugins.

``import dgreg`` is cheap and touches no CUDA library: the torch-facing modules (the API,
the DeepGEMM-compatible names, the layout helpers) load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from dgreg.device import Device
from dgreg.dispatch import Resolution, explain, get_num_sms, resolve, set_num_sms, use
from dgreg.errors import (
    CacheError,
    CaptureError,
    CompileError,
    DgregError,
    DuplicateKernelError,
    FallbackWarning,
    InvalidArgumentError,
    NoKernelError,
    PluginError,
    SpecFileError,
    UnsupportedDeviceError,
    UnsupportedSpecError,
)
from dgreg.hookspecs import API_VERSION, hookimpl
from dgreg.kernel import (
    Binary,
    Candidate,
    ConfigChoice,
    KernelKey,
    KernelSource,
    LaunchSpec,
    SassPass,
)
from dgreg.spec import DType, GemmSpec, Grouping, Layout, Problem, Recipe, spec_for

__version__ = "0.1.0"

_LAZY: dict[str, str] = {
    # generic API
    "gemm": "dgreg.api",
    "m_grouped_gemm_contiguous": "dgreg.api",
    "m_grouped_gemm_masked": "dgreg.api",
    "k_grouped_gemm_contiguous": "dgreg.api",
    "GemmCall": "dgreg.call",
    # layout and testing utilities
    **{name: "dgreg.layout" for name in (
        "align", "calc_diff", "ceil_div", "ceil_to_ue8m0", "get_col_major_tma_aligned_tensor",
        "get_k_alignment_for_contiguous_layout", "get_m_alignment_for_contiguous_layout",
        "get_mk_alignment_for_contiguous_layout", "get_mn_major_tma_aligned_packed_ue8m0_tensor",
        "get_mn_major_tma_aligned_tensor", "get_tma_aligned_size", "pack_ue8m0_to_int",
        "per_block_cast_to_fp8", "per_channel_cast_to_fp8", "per_token_cast_to_fp8",
        "unpack_ue8m0_from_int")},
    # DeepGEMM-compatible names
    **{name: "dgreg.compat" for name in (
        "bf16_gemm_nn", "bf16_gemm_nt", "bf16_gemm_tn", "bf16_gemm_tt",
        "bf16_m_grouped_gemm_nt_masked", "fp8_gemm_nn", "fp8_gemm_nt", "fp8_gemm_tn",
        "fp8_gemm_tt", "fp8_m_grouped_gemm_nt_masked", "gemm_fp8_fp8_bf16_nt",
        "k_grouped_bf16_gemm_tn_contiguous", "k_grouped_fp8_gemm_tn_contiguous",
        "m_grouped_bf16_gemm_nn_contiguous", "m_grouped_bf16_gemm_nt_contiguous",
        "m_grouped_bf16_gemm_nt_masked", "m_grouped_fp8_gemm_nn_contiguous",
        "m_grouped_fp8_gemm_nt_contiguous", "m_grouped_fp8_gemm_nt_masked",
        "m_grouped_gemm_fp8_fp8_bf16_nt_contiguous", "m_grouped_gemm_fp8_fp8_bf16_nt_masked")},
}

__all__ = [
    "API_VERSION",
    "Binary",
    "CacheError",
    "Candidate",
    "CaptureError",
    "CompileError",
    "ConfigChoice",
    "DType",
    "Device",
    "DgregError",
    "DuplicateKernelError",
    "FallbackWarning",
    "GemmSpec",
    "Grouping",
    "InvalidArgumentError",
    "KernelKey",
    "KernelSource",
    "LaunchSpec",
    "Layout",
    "NoKernelError",
    "PluginError",
    "Problem",
    "Recipe",
    "Resolution",
    "SassPass",
    "SpecFileError",
    "UnsupportedDeviceError",
    "UnsupportedSpecError",
    "explain",
    "get_num_sms",
    "hookimpl",
    "resolve",
    "set_num_sms",
    "spec_for",
    "use",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'dgreg' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
