"""A tiny JIT plugin: a naive BF16 GEMM kernel (one thread per output), compiled through the
whole hook pipeline (heuristic -> source -> compile -> cache -> load -> launch_args -> launch).
It exists to test the JIT path end to end, and as the smallest example of a JIT plugin."""

from __future__ import annotations

import ctypes

import attrs

from dgreg import API_VERSION, Candidate, ConfigChoice, KernelSource, LaunchSpec, hookimpl

KERNEL_ID = "toy.bf16_gemm_naive"

SOURCE = r"""
#include <cuda_bf16.h>

extern "C" __global__ void __launch_bounds__(TILE * TILE)
toy_bf16_gemm_nt(const __nv_bfloat16* __restrict__ a, const __nv_bfloat16* __restrict__ b,
                 __nv_bfloat16* __restrict__ d, int m, int n, int k,
                 long long lda, long long ldb, long long ldd) {
    const int row = blockIdx.y * TILE + threadIdx.y;
    const int col = blockIdx.x * TILE + threadIdx.x;
    if (row >= m || col >= n) return;
    float acc = 0.0f;
    for (int i = 0; i < k; ++i)
        acc += __bfloat162float(a[row * lda + i]) * __bfloat162float(b[col * ldb + i]);
    d[row * ldd + col] = __float2bfloat16(acc);
}
"""


def toy_source(arch: str = "sm_90a", tile: int = 16) -> KernelSource:
    """The kernel for ``tile`` x ``tile`` thread blocks, compiled for ``arch``."""
    return KernelSource(f"#define TILE {tile}\n{SOURCE}", "toy_bf16_gemm_nt", arch)


@attrs.frozen
class ToyConfig:
    tile: int


def _supports(spec, device) -> str | None:
    if spec.name != "bf16_gemm.nt.bf16":
        return f"serves bf16_gemm.nt.bf16 only (got {spec.name})"
    return None


def _args(call) -> tuple:
    p = call.problem
    return (call.a.data_ptr(), call.b.data_ptr(), call.d.data_ptr(), p.m, p.n, p.k,
            call.a.stride(0), call.b.stride(0), call.d.stride(0))


_ARG_TYPES = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
              ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_longlong)


class ToyJitPlugin:
    def __init__(self, arch: str = "sm90a") -> None:
        self.arch = arch
        self.source_calls = 0
        self.launch_arg_calls = 0
        self.packed = 0  # pack calls
        self.reusable = True  # marks its arguments reusable (LaunchSpec.reusable)

    @hookimpl
    def dgreg_api_version(self) -> int:
        return API_VERSION

    @hookimpl
    def dgreg_register_kernels(self, register, device) -> None:
        if device.arch == self.arch:
            register(Candidate(KERNEL_ID, supports=_supports, priority=100,
                               description="naive BF16 GEMM, one thread per output"))

    @hookimpl
    def dgreg_heuristic(self, candidate, spec, problem, device):
        if candidate.kernel_id != KERNEL_ID:
            return None
        return ConfigChoice(ToyConfig(16), {"threads": 256})

    @hookimpl
    def dgreg_generate_source(self, candidate, spec, config, device):
        if candidate.kernel_id != KERNEL_ID:
            return None
        self.source_calls += 1
        return toy_source("sm_" + device.arch[2:], config.tile)

    @hookimpl
    def dgreg_launch_args(self, candidate, config, call):
        if candidate.kernel_id != KERNEL_ID:
            return None
        self.launch_arg_calls += 1
        p, t = call.problem, config.tile
        def pack(call) -> tuple:
            self.packed += 1
            return _args(call)

        return LaunchSpec(grid=(-(-p.n // t), -(-p.m // t), 1), block=(t, t, 1), pack=pack,
                          arg_types=_ARG_TYPES,
                          reusable=(lambda call: True) if self.reusable else None)
