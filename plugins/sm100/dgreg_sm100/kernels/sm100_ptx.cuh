// PTX wrappers for datacenter Blackwell (sm_100a): mbarriers across a CTA pair, TMA, and the
// fifth-generation tensor core (tcgen05): tensor-memory allocation, copies, MMA, loads.
//
// The including source defines CLUSTER: 1, or 2 for an MMA spanning a CTA pair. It is the
// CTA group of every tcgen05 instruction here, as PTX requires one group per kernel.
#pragma once
#include <cuda.h>
#include <stdint.h>

#if CLUSTER == 2
#define DGREG_CTA_GROUP ".cta_group::2"
#else
#define DGREG_CTA_GROUP ".cta_group::1"
#endif

namespace dgreg_sm100 {

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
    return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ uint32_t cluster_rank() {
    uint32_t rank;
    asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(rank));
    return rank;
}

__device__ __forceinline__ void cluster_sync() {
    asm volatile("barrier.cluster.arrive.release.aligned;\n"
                 "barrier.cluster.wait.acquire.aligned;" ::: "memory");
}

// -- mbarrier --------------------------------------------------------------------------------
__device__ __forceinline__ void mbar_init(uint32_t bar, uint32_t count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" :: "r"(bar), "r"(count) : "memory");
}

__device__ __forceinline__ void mbar_init_fence() {
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
}

// Acquire at cluster scope: some barriers receive arrivals from the peer CTA of the pair.
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
    uint32_t done = 0;
    while (!done) {
        asm volatile("{\n .reg .pred p;\n"
                     " mbarrier.try_wait.parity.acquire.cluster.shared::cta.b64 p, [%1], %2, %3;\n"
                     " selp.u32 %0, 1, 0, p;\n}"
                     : "=r"(done) : "r"(bar), "r"(parity), "r"(0x989680) : "memory");
    }
}

__device__ __forceinline__ void mbar_arrive_expect_tx(uint32_t bar, uint32_t bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" :: "r"(bar), "r"(bytes)
                 : "memory");
}

__device__ __forceinline__ void mbar_arrive(uint32_t bar) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" :: "r"(bar) : "memory");
}

// Arrive on the barrier at the same shared-memory offset in CTA `cta` of the cluster (which
// may be this CTA), releasing this thread's earlier writes at cluster scope.
__device__ __forceinline__ void mbar_arrive_on(uint32_t bar, uint32_t cta) {
    asm volatile("{\n .reg .b32 remote;\n mapa.shared::cluster.u32 remote, %0, %1;\n"
                 " mbarrier.arrive.release.cluster.shared::cluster.b64 _, [remote];\n}"
                 :: "r"(bar), "r"(cta) : "memory");
}

// -- TMA -------------------------------------------------------------------------------------
__device__ __forceinline__ void tma_prefetch(const CUtensorMap* map) {
    asm volatile("prefetch.tensormap [%0];" :: "l"(map) : "memory");
}

// Coordinates are element indices, innermost dimension first.
__device__ __forceinline__ void tma_load_3d(uint32_t dst, const CUtensorMap* map, uint32_t bar,
                                            int c0, int c1, int c2) {
    asm volatile("cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes"
                 " [%0], [%1, {%2, %3, %4}], [%5];"
                 :: "r"(dst), "l"(map), "r"(c0), "r"(c1), "r"(c2), "r"(bar) : "memory");
}

__device__ __forceinline__ void tma_store_3d(const CUtensorMap* map, uint32_t src, int c0, int c1,
                                             int c2) {
    asm volatile("cp.async.bulk.tensor.3d.global.shared::cta.tile.bulk_group [%0, {%1, %2, %3}], [%4];"
                 :: "l"(map), "r"(c0), "r"(c1), "r"(c2), "r"(src) : "memory");
}

__device__ __forceinline__ void bulk_commit() {
    asm volatile("cp.async.bulk.commit_group;" ::: "memory");
}

// Wait until at most N committed bulk stores still read shared memory.
template <int N>
__device__ __forceinline__ void bulk_wait_read() {
    asm volatile("cp.async.bulk.wait_group.read %0;" :: "n"(N) : "memory");
}

__device__ __forceinline__ void bulk_wait_all() {
    asm volatile("cp.async.bulk.wait_group 0;" ::: "memory");
}

// Makes this thread's generic-proxy shared-memory writes visible to the async proxy (TMA
// stores, tcgen05.cp, tcgen05.mma).
__device__ __forceinline__ void fence_async_shared() {
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
}

// -- tensor memory ---------------------------------------------------------------------------
// One whole warp allocates; the base address (lane 0, first column) lands in `slot`. In a CTA
// pair one warp of each CTA takes part and both get the same columns.
__device__ __forceinline__ void tmem_alloc(uint32_t slot, uint32_t columns) {
    asm volatile("tcgen05.alloc" DGREG_CTA_GROUP ".sync.aligned.shared::cta.b32 [%0], %1;"
                 :: "r"(slot), "r"(columns) : "memory");
    asm volatile("tcgen05.relinquish_alloc_permit" DGREG_CTA_GROUP ".sync.aligned;" ::: "memory");
}

__device__ __forceinline__ void tmem_dealloc(uint32_t base, uint32_t columns) {
    asm volatile("tcgen05.dealloc" DGREG_CTA_GROUP ".sync.aligned.b32 %0, %1;"
                 :: "r"(base), "r"(columns) : "memory");
}

// Order tcgen05 operations around thread synchronisation (mbarrier waits and arrivals).
__device__ __forceinline__ void tc_fence_before() {
    asm volatile("tcgen05.fence::before_thread_sync;" ::: "memory");
}
__device__ __forceinline__ void tc_fence_after() {
    asm volatile("tcgen05.fence::after_thread_sync;" ::: "memory");
}

// 32 lanes x 128 bits from shared memory, repeated into each warp's 32-lane quarter of TMEM:
// the layout the block-scaled MMA reads scale factors from (4 columns per 128 rows).
__device__ __forceinline__ void tmem_copy_scales(uint32_t taddr, uint64_t desc) {
    asm volatile("tcgen05.cp" DGREG_CTA_GROUP ".32x128b.warpx4 [%0], %1;"
                 :: "r"(taddr), "l"(desc) : "memory");
}

// D (TMEM, FP32) (+)= A (smem) x B (smem), BF16 operands.
__device__ __forceinline__ void mma_bf16(uint32_t d, uint64_t a, uint64_t b, uint32_t idesc,
                                         uint32_t accumulate) {
    asm volatile("{\n .reg .pred p;\n setp.ne.b32 p, %4, 0;\n"
                 " tcgen05.mma" DGREG_CTA_GROUP ".kind::f16 [%0], %1, %2, %3, p;\n}"
                 :: "r"(d), "l"(a), "l"(b), "r"(idesc), "r"(accumulate) : "memory");
}

// D (TMEM, FP32) (+)= (A * SFA) x (B * SFB): e4m3 operands scaled by the hardware with UE8M0
// scale factors read from TMEM; the instruction descriptor picks the byte of each scale word.
__device__ __forceinline__ void mma_fp8_block_scaled(uint32_t d, uint64_t a, uint64_t b,
                                                     uint32_t idesc, uint32_t accumulate,
                                                     uint32_t sfa, uint32_t sfb) {
    asm volatile("{\n .reg .pred p;\n setp.ne.b32 p, %4, 0;\n"
                 " tcgen05.mma" DGREG_CTA_GROUP ".kind::mxf8f6f4.block_scale"
                 " [%0], %1, %2, %3, [%5], [%6], p;\n}"
                 :: "r"(d), "l"(a), "l"(b), "r"(idesc), "r"(accumulate), "r"(sfa), "r"(sfb)
                 : "memory");
}

// One arrival on `bar` once every tcgen05 operation this thread issued before has completed;
// in a CTA pair the arrival reaches the barrier at the same offset in both CTAs.
__device__ __forceinline__ void tmem_commit(uint32_t bar) {
#if CLUSTER == 2
    asm volatile("tcgen05.commit.cta_group::2.mbarrier::arrive::one.shared::cluster"
                 ".multicast::cluster.b64 [%0], %1;"
                 :: "r"(bar), "h"(static_cast<uint16_t>(3)) : "memory");
#else
    asm volatile("tcgen05.commit.cta_group::1.mbarrier::arrive::one.shared::cluster.b64 [%0];"
                 :: "r"(bar) : "memory");
#endif
}

// 32 TMEM lanes x N 32-bit columns: thread t of the warp gets lane (quarter base + t),
// columns taddr .. taddr + N - 1. Only the warp's own 32-lane quarter (warp id % 4) is
// reachable. The registers are valid after tmem_wait_load().
template <int N>
__device__ __forceinline__ void tmem_load(uint32_t taddr, uint32_t (&r)[N]) {
    static_assert(N == 16 || N == 32, "32x32b loads of 16 or 32 columns");
    if constexpr (N == 16) {
        asm volatile("tcgen05.ld.sync.aligned.32x32b.x16.b32"
                     " {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15}, [%16];"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]), "=r"(r[4]), "=r"(r[5]),
                       "=r"(r[6]), "=r"(r[7]), "=r"(r[8]), "=r"(r[9]), "=r"(r[10]), "=r"(r[11]),
                       "=r"(r[12]), "=r"(r[13]), "=r"(r[14]), "=r"(r[15])
                     : "r"(taddr));
    } else {
        asm volatile("tcgen05.ld.sync.aligned.32x32b.x32.b32"
                     " {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15,"
                     " %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31},"
                     " [%32];"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]), "=r"(r[4]), "=r"(r[5]),
                       "=r"(r[6]), "=r"(r[7]), "=r"(r[8]), "=r"(r[9]), "=r"(r[10]), "=r"(r[11]),
                       "=r"(r[12]), "=r"(r[13]), "=r"(r[14]), "=r"(r[15]), "=r"(r[16]), "=r"(r[17]),
                       "=r"(r[18]), "=r"(r[19]), "=r"(r[20]), "=r"(r[21]), "=r"(r[22]), "=r"(r[23]),
                       "=r"(r[24]), "=r"(r[25]), "=r"(r[26]), "=r"(r[27]), "=r"(r[28]), "=r"(r[29]),
                       "=r"(r[30]), "=r"(r[31])
                     : "r"(taddr));
    }
}

__device__ __forceinline__ void tmem_wait_load() {
    asm volatile("tcgen05.wait::ld.sync.aligned;" ::: "memory");
}

// -- shared-memory matrix descriptors (tcgen05 form: bits 46-48 hold the fixed value 0b001) ---
constexpr uint64_t DESC_VERSION = uint64_t(1) << 46;
constexpr uint64_t DESC_SWIZZLE_128B = uint64_t(2) << 61;

// A tile laid out with the 128-byte swizzle. `lbo` / `sbo` in bytes: K-major tiles step 1024
// bytes per 8 rows (sbo) and have one swizzle atom along K (lbo unused); MN-major tiles step
// 1024 bytes per 8 K rows (sbo) and `lbo` bytes from one 128-byte MN atom to the next. The
// tile must start 1024-byte aligned, so the base-offset field stays 0.
__device__ __forceinline__ uint64_t umma_desc(uint32_t addr, uint32_t lbo, uint32_t sbo) {
    return static_cast<uint64_t>((addr >> 4) & 0x3FFF) |
           static_cast<uint64_t>((lbo >> 4) & 0x3FFF) << 16 |
           static_cast<uint64_t>((sbo >> 4) & 0x3FFF) << 32 | DESC_VERSION | DESC_SWIZZLE_128B;
}

// 32 rows x 16 bytes of scale words, rows 16 bytes apart, 8-row groups 128 bytes apart, no swizzle.
__device__ __forceinline__ uint64_t scale_desc(uint32_t addr) {
    return static_cast<uint64_t>((addr >> 4) & 0x3FFF) | static_cast<uint64_t>(128 >> 4) << 32 |
           DESC_VERSION;
}

}  // namespace dgreg_sm100
