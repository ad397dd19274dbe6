"""A small TMA kernel for testing the JIT on a GPU: bulk-tensor load a tile into shared memory
(completing on an mbarrier), scale it, bulk-tensor store it back. Element-wise work does not
care where a swizzle put each element, so load and store with the same swizzle round-trip."""

from __future__ import annotations

from dgreg import KernelSource

TEMPLATE = r"""
#include <cuda.h>
#include <cuda_bf16.h>
#include <stdint.h>

// Box: BOX_INNER x BOX_MID (x BOX_OUTER for rank 3) elements, innermost first.
constexpr int TILE_ELEMS = BOX_INNER * BOX_MID * BOX_OUTER;
constexpr uint32_t TILE_BYTES = TILE_ELEMS * sizeof(__nv_bfloat16);

__device__ __forceinline__ void wait_phase(uint32_t bar, uint32_t phase) {
    uint32_t done = 0;
    while (!done) {
        asm volatile("{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
                     " selp.u32 %0, 1, 0, p;\n}" : "=r"(done) : "r"(bar), "r"(phase) : "memory");
    }
}

extern "C" __global__ void __launch_bounds__(128, 1)
tma_scale(const __grid_constant__ CUtensorMap src, const __grid_constant__ CUtensorMap dst,
          float factor) {
    // 128B swizzling repeats every 1024 bytes: the tile must start 1024-byte aligned.
    extern __shared__ __align__(1024) uint8_t smem[];
    __shared__ __align__(8) uint64_t bar_storage;
    const uint32_t tile = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
    const uint32_t bar = static_cast<uint32_t>(__cvta_generic_to_shared(&bar_storage));
    const int x = blockIdx.x * BOX_INNER, y = blockIdx.y * BOX_MID, z = blockIdx.z * BOX_OUTER;
    if (threadIdx.x == 0) {
        asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" :: "r"(bar));
        // make the initialised barrier visible to the async (TMA) proxy
        asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;"
                     :: "r"(bar), "r"(TILE_BYTES) : "memory");
#if RANK == 2
        asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes"
                     " [%0], [%1, {%2, %3}], [%4];"
                     :: "r"(tile), "l"(&src), "r"(x), "r"(y), "r"(bar) : "memory");
#else
        asm volatile("cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes"
                     " [%0], [%1, {%2, %3, %4}], [%5];"
                     :: "r"(tile), "l"(&src), "r"(x), "r"(y), "r"(z), "r"(bar) : "memory");
#endif
    }
    wait_phase(bar, 0);
    __nv_bfloat16* values = reinterpret_cast<__nv_bfloat16*>(smem);
    for (int i = threadIdx.x; i < TILE_ELEMS; i += blockDim.x)
        values[i] = __float2bfloat16(__bfloat162float(values[i]) * factor);
    // generic-proxy writes must be fenced before the async proxy (TMA store) reads them
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
    __syncthreads();
    if (threadIdx.x == 0) {
#if RANK == 2
        asm volatile("cp.async.bulk.tensor.2d.global.shared::cta.bulk_group [%0, {%1, %2}], [%3];"
                     :: "l"(&dst), "r"(x), "r"(y), "r"(tile) : "memory");
#else
        asm volatile("cp.async.bulk.tensor.3d.global.shared::cta.bulk_group"
                     " [%0, {%1, %2, %3}], [%4];"
                     :: "l"(&dst), "r"(x), "r"(y), "r"(z), "r"(tile) : "memory");
#endif
        asm volatile("cp.async.bulk.commit_group;" ::: "memory");
        asm volatile("cp.async.bulk.wait_group.read 0;" ::: "memory");
    }
}
"""


def tma_scale_source(arch: str, rank: int, box: tuple[int, ...]) -> KernelSource:
    """``box`` outermost first: (mid, inner) or (outer, mid, inner)."""
    outer, mid, inner = ((1, *box) if rank == 2 else box)
    defines = f"#define RANK {rank}\n#define BOX_INNER {inner}\n#define BOX_MID {mid}\n" \
              f"#define BOX_OUTER {outer}\n"
    return KernelSource(defines + TEMPLATE, "tma_scale", arch)
