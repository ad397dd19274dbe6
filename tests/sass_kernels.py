"""Small kernels whose SASS has long FFMA runs, for testing SASS passes on real cubins."""

from __future__ import annotations

from dgreg import KernelSource

FFMA_RUN = r"""
// A promotion-like FFMA run: fin[i] += acc[i] * scale, with one shared scale register.
extern "C" __global__ void ffma_run(float* __restrict__ out, const float* __restrict__ in,
                                    const float* __restrict__ scales) {
    float acc[64], fin[64];
    const float* src = in + blockIdx.x * 128;
    #pragma unroll
    for (int i = 0; i < 64; ++i) { acc[i] = src[i]; fin[i] = src[64 + i]; }
    for (int step = 0; step < 4; ++step) {
        const float scale = scales[step];
        #pragma unroll
        for (int i = 0; i < 64; ++i) fin[i] = fmaf(acc[i], scale, fin[i]);
        #pragma unroll
        for (int i = 0; i < 64; ++i) acc[i] = acc[i] * 1.5f;
    }
    #pragma unroll
    for (int i = 0; i < 64; ++i) out[blockIdx.x * 64 + i] = fin[i];
}
"""

NO_FFMA = r"""
extern "C" __global__ void copy(int* out, const int* in) { out[threadIdx.x] = in[threadIdx.x] + 1; }
"""


def ffma_run_source(arch: str = "sm_90a") -> KernelSource:
    return KernelSource(FFMA_RUN, "ffma_run", arch)


def no_ffma_source(arch: str = "sm_90a") -> KernelSource:
    return KernelSource(NO_FFMA, "copy", arch)
