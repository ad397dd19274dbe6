"""The JIT toolchain shared by plugins: compile (nvcc/NVRTC), cache, load, launch, TMA.

Compilation and caching need no GPU; loading and launching need ``cuda-bindings`` and a GPU.
"""

from __future__ import annotations

from dgreg.jit.builder import BuiltKernel, build, build_source, is_capturing
from dgreg.jit.cache import CacheEntry, KernelCache
from dgreg.jit.compiler import PtxasReport, compile_source, compiler_id, find_nvcc, gencode_flag

__all__ = [
    "BuiltKernel",
    "CacheEntry",
    "KernelCache",
    "PtxasReport",
    "build",
    "build_source",
    "compile_source",
    "compiler_id",
    "find_nvcc",
    "gencode_flag",
    "is_capturing",
]
