// GEMMs for Hopper, D ([M, N], BF16 or FP32) = C + A ([M, K]) @ B^T ([N, K]), both operands
// K-major in global memory (the plugin transposes MN-major operands before the launch):
// - IS_FP8: A and B in e4m3, one FP32 scale per A row and 128 K; B scales per 128x128 block
//   (1d2d) or, with SFB_ROWS, per B row and 128 K (1d1d);
// - otherwise BF16 operands, accumulated in FP32 by the tensor core across all of K.
//
// Persistent: one CTA per SM walks work units (a BLOCK_M x BLOCK_N tile, or a K slice of one).
// Warpgroups 0..NUM_MATH_WG-1 do the math, the last warpgroup is the TMA producer (one elected
// thread issues the copies). Stages of (A tile, B tile, A scales[, B scales]) form an
// mbarrier ring: full[s] completes when the TMA bytes land, empty[s] when every math warp is
// done with the stage.
//
// FP8: per 128-K block each math warpgroup runs 4 wgmma m64nBLOCK_Nk32 into a fresh partial
// accumulator per 64-row sub-tile, then promotes it into FP32 registers scaled by the A-row
// and B scales: Hopper's FP8 tensor core keeps too few accumulation bits to sum all of K.
// BF16: per 64-K block, 4 wgmma m64nBLOCK_Nk16 accumulate straight into the FP32 registers;
// with INFLIGHT a block's wgmma groups still run while the next block is issued, its stage
// handed back one block later (one stage of the ring less for the TMA). FP8 with INFLIGHT (one
// 64-row sub-tile per math warpgroup, 1d2d, no KPAIR) keeps two partial accumulators: block
// kb's wgmma run while block kb - 1 is promoted, so the tensor core does not drain at every
// promotion. FP8 256-row 1d2d tiles up to 104 columns wide (PAIR) keep a partial per 64-row
// sub-tile: a warpgroup issues both sub-tiles' groups and promotes the first while the second
// runs (the math warps take 240 registers, the producer 24).
//
// GROUPED == 1 (M-grouped contiguous, MoE): A and D hold every expert's rows back to back, B
// is [G, N, K] seen as [G * N, K], and `row_groups` gives each row's expert (-1: padding).
// Experts start on 128-row boundaries, so a 64- or 128-row tile lies in one expert, taken from
// its first row. A 256-row tile covers two 128-row blocks: when they belong to two experts
// the tile is computed twice (two passes, one per expert's B), each pass writing back only
// its expert's rows. Padding rows are never written.
// GROUPED == 2 (M-grouped masked, MoE decode): A and D are [G, M_max, *] seen as
// [G * M_max, *], `row_groups` is masked_m [G] on the device; tiles walk each expert's M_max
// rows and skip those at or past masked_m[g], and only rows below it are written. A's FP8
// scales stay [G, M_max, KB] MN-major (as callers lay them out): expert g's K block kb is row
// g * KB + kb of map_sfa, whose columns are the expert's own rows.
// GROUPED == 3 (K-grouped, MoE weight gradient): A is [M, K_total] and B [N, K_total] with
// group g owning K blocks [row_groups[g], row_groups[g + 1]); D and C are [G, M, N] (group
// stride d_stride_g / c_stride_g). An empty group writes C (or zeros).
//
// MULTICAST (a 2-CTA cluster whose CTAs share one operand tile, TMA-multicast): 1 shares A
// (the pair takes adjacent n-blocks of one m-block), 2 shares B (adjacent m-blocks of one
// n-block). Each CTA loads half of the shared tile into both CTAs' shared memory, so a stage
// is free only when the math warps of both CTAs have released it: every math warp arrives on
// the empty barrier of both. The pair walks the same work units in lockstep; where the peer's
// tile falls outside D (odd block counts) that CTA only loads its half of the shared tile and
// hands its stages back unread. M-grouped kernels take MULTICAST 1 only: both tiles then share
// their rows, hence their expert and whether they are skipped.
//
// KPAIR (FP8, BLOCK_M 64, dense, no multicast): two math warpgroups share one 64-row tile and
// take its K blocks in turn (even blocks the first, odd ones the second), so that one's wgmma
// run while the other waits for its own and promotes. Each stage is then released by one
// warpgroup. At the end of a unit the second adds its totals in through shared memory (XCHG)
// and the first alone reduces split-K partials and writes the tile.
//
// With SPLIT_K > 1 a tile's K blocks are shared by SPLIT_K work units; each writes its FP32
// partial tile to `workspace`, and the last unit to finish a tile (per-tile counters, which
// that unit resets to 0) adds the others' partials and writes the tile.
//
// Epilogues: a BF16 D without C is staged in shared memory (stmatrix) and TMA-stored,
// overlapped with the next tile, when N is a multiple of 8 (`d_tma`; TMA stores write whole
// 16-byte units, and D's rows are then 16-byte aligned); M-grouped kernels do so for tiles
// whose rows are all written (MIXED_STORE). Other tiles are written from the same staging by coalesced 16-byte
// stores of the written rows only (4- or 2-byte ones when N is not a multiple of 8). FP32 D,
// or an accumulator C: each thread adds C and stores its own pairs of columns.
//
// The including source defines: BLOCK_M, BLOCK_N, STAGES, NUM_MATH_WG, M_SUB (64-row sub-tiles
// per math warpgroup), KPAIR, SPLIT_K, MULTICAST, IS_FP8, INFLIGHT, SFB_ROWS, GROUPED,
// OUT_F32, WITH_C (an accumulator C, BF16 or FP32 as `c_f32` says at run time), EPI_ROWS (the
// rows one group of the tile's writers stages and stores, see WG_EPI), KERNEL_NAME, SMEM_REQUESTED and
// `wgmma_tile(float (&)[BLOCK_N / 2], uint64_t, uint64_t, int)` (the wgmma of the dtype).
#pragma once
#include <cuda_bf16.h>
#include <type_traits>
#include "sm90_ptx.cuh"

namespace dgreg_sm90 {

constexpr int ROW_BYTES = 128;  // one 128B swizzle atom of K per tile row
constexpr int BLOCK_K = ROW_BYTES / (IS_FP8 ? 1 : 2);  // K elements per block
constexpr int K_STEPS = 4;  // wgmma per block: k32 (FP8) or k16 (BF16), 32 bytes each
constexpr int RASTER_M = 8;  // m-blocks per band of the tile order (see unit_work)
// B tiles read by at most this many m-blocks are loaded with an L2 evict-first policy: those
// m-blocks run at about the same time (they sit in one band), so the lines are not needed
// again, and under the policy they make room for each other rather than pushing out (and
// writing back) whatever L2 held before the launch. Measured on an H200 at M <= 128: FP8
// 0.5-12%, BF16 1-18%.
constexpr int B_ONCE_BLOCKS = 4;
constexpr int MATH_THREADS = NUM_MATH_WG * 128;
constexpr int THREADS = MATH_THREADS + 128;
constexpr int WG_ROWS = 64 * M_SUB;
// warpgroups that release each stage, and the threads that write a tile (see KPAIR)
constexpr int STAGE_WG = KPAIR ? 1 : NUM_MATH_WG;
constexpr int EPI_THREADS = STAGE_WG * 128;
// EPI_ROWS < BLOCK_M (the config's epilogue_rows): each of the two math warpgroups writes its
// own rows of the tile (its own rows of the staging, named barrier and TMA store), so that
// neither waits for the other: one's epilogue runs while the other's last wgmma do, or its
// next tile's first. Otherwise the tile's writers form one group.
constexpr bool WG_EPI = EPI_ROWS < BLOCK_M;
constexpr int EPI_GROUP = WG_EPI ? 128 : EPI_THREADS;  // the threads of one group
static_assert(!WG_EPI || (EPI_ROWS == WG_ROWS && NUM_MATH_WG == 2 && !KPAIR && SPLIT_K == 1),
              "per-warpgroup epilogues: two math warpgroups on an unsplit tile, each its rows");
static_assert(WG_EPI || EPI_ROWS == BLOCK_M, "one group writes the whole tile");
constexpr int ACC = BLOCK_N / 2;  // accumulator floats per thread per 64-row sub-tile
constexpr uint32_t A_BYTES = BLOCK_M * ROW_BYTES;
constexpr uint32_t B_BYTES = BLOCK_N * ROW_BYTES;
constexpr uint32_t SFA_BYTES = IS_FP8 ? BLOCK_M * 4 : 0;
constexpr uint32_t SFB_BYTES = SFB_ROWS ? BLOCK_N * 4 : 0;  // TMA bytes per stage
// 1d1d: the stage's per-row B scales (TMA wants 128-byte aligned smem). 1d2d with one 64-row
// sub-tile per warpgroup (SFB_RING): the up to three B block scales of the tile's columns for
// the stage's K block, copied in by the producer, so that the math warps, whose wgmma for the
// block are short, find them in shared memory (measured on an H200: 0-6% faster at M <= 128).
// 256-row tiles load them from global memory as they start the block: the first sub-tile's
// wgmma covers that load, and a copy in the ring made their 3-stage rings 2-9% slower.
constexpr bool SFB_RING = IS_FP8 && !SFB_ROWS && M_SUB == 1;
// two partials per warpgroup, one per 64-row sub-tile (see the header): 2 x BLOCK_N / 2 totals
// and as many partial sums fit in 240 registers up to 104 columns (112 spilled on an H200 build)
constexpr bool PAIR = IS_FP8 && M_SUB == 2 && !SFB_ROWS && !KPAIR && BLOCK_N <= 104;
constexpr uint32_t SFB_STRIDE = SFB_ROWS ? (SFB_BYTES + 127) / 128 * 128 : SFB_RING ? 16 : 0;
constexpr uint32_t STAGE_TX = A_BYTES + B_BYTES + SFA_BYTES + SFB_BYTES;
constexpr int CLUSTER = MULTICAST ? 2 : 1;
// rows of the A and B tiles each CTA loads (half of the shared one)
constexpr int A_LOAD_ROWS = MULTICAST == 1 ? BLOCK_M / 2 : BLOCK_M;
constexpr int B_LOAD_ROWS = MULTICAST == 2 ? BLOCK_N / 2 : BLOCK_N;
// what a CTA whose tile lies outside D receives per stage: the peer's shared tile
constexpr uint32_t SHARED_TX = MULTICAST == 1 ? A_BYTES : B_BYTES;
// shared memory layout, every A/B tile 1024-byte aligned for the 128B swizzle
constexpr uint32_t OFF_A = 0;
constexpr uint32_t OFF_B = OFF_A + STAGES * A_BYTES;
constexpr uint32_t OFF_SFA = OFF_B + STAGES * B_BYTES;
constexpr uint32_t OFF_SFB = OFF_SFA + STAGES * SFA_BYTES;
// The BF16 output tile without C is staged in shared memory, then stored by TMA,
// asynchronously (overlapped with the next tile), or, where the TMA may not store it, by the
// threads with coalesced 16-byte stores of the rows they own. One staging layout serves both:
// with BLOCK_N a multiple of 64, 64-column chunks under the 128B swizzle (the 16-byte unit u of
// row r sits at u ^ (r % 8), so the 8 rows of one stmatrix matrix hit different banks), one
// TMA box per chunk; otherwise the rows packed back to back, one box for the tile (the 8 rows
// of a matrix start 2 * BLOCK_N bytes apart: no bank conflict when BLOCK_N / 8 is odd, 2- or
// 4-way ones otherwise). FP32 output or an accumulator C go straight from registers.
constexpr bool EPI_DIRECT = OUT_F32 || WITH_C;
constexpr bool D_SWIZZLED = BLOCK_N % 64 == 0;
// Tiles the TMA may store: all, if N is a multiple of 8 (`d_tma`, a launch argument);
// M-grouped tiles only if every row is written (not padding, past masked_m or another
// expert's): the others take the threads' stores.
constexpr bool MIXED_STORE = !EPI_DIRECT && GROUPED != 0;
constexpr uint32_t D_BYTES = EPI_DIRECT ? 0 : BLOCK_M * BLOCK_N * 2;
constexpr uint32_t OFF_D = (OFF_SFB + STAGES * SFB_STRIDE + 1023) / 1024 * 1024;
// where the 16-byte unit `unit` of the staged tile's row `row` sits, from OFF_D
__device__ __forceinline__ uint32_t d_staged(int row, int unit) {
    if constexpr (D_SWIZZLED)
        return (unit / 8) * (BLOCK_M * 128) + row * 128 + ((unit % 8) ^ (row % 8)) * 16;
    return row * (BLOCK_N * 2) + unit * 16;
}
constexpr uint32_t OFF_X = OFF_D + D_BYTES;  // KPAIR: the second warpgroup's totals
constexpr uint32_t X_BYTES = KPAIR ? BLOCK_M * BLOCK_N * 4 : 0;
constexpr uint32_t OFF_BAR = OFF_X + X_BYTES;
constexpr uint32_t OFF_FLAG = OFF_BAR + 2 * STAGES * 8;
constexpr uint32_t SMEM_BYTES = OFF_FLAG + 16;
static_assert(BLOCK_M == STAGE_WG * WG_ROWS,
              "each math warpgroup owns WG_ROWS rows (KPAIR: the same ones)");
static_assert(!KPAIR || (IS_FP8 && BLOCK_M == 64 && NUM_MATH_WG == 2 && GROUPED == 0 &&
                         MULTICAST == 0),
              "KPAIR: FP8, one 64-row tile for two warpgroups, dense, no cluster");
static_assert(BLOCK_N % 8 == 0 && BLOCK_N <= 256, "wgmma N is a multiple of 8 up to 256");
static_assert(SFA_BYTES % 16 == 0, "TMA boxes are multiples of 16 bytes");
static_assert(!(GROUPED == 1 || GROUPED == 2) || SPLIT_K == 1, "M-grouped GEMMs are not split");
static_assert(!SFB_ROWS || IS_FP8, "per-row B scales are an FP8 recipe");
static_assert(!INFLIGHT || STAGES >= 3, "INFLIGHT: a ring of 3 or more");
static_assert(!INFLIGHT || !IS_FP8 || (M_SUB == 1 && !KPAIR && !SFB_ROWS && BLOCK_N <= 128),
              "FP8 INFLIGHT: one sub-tile per warpgroup, 1d2d, no KPAIR, two partials of "
              "at most 64 registers");
static_assert(GROUPED != 3 || OUT_F32, "K-grouped GEMMs write FP32");
static_assert(MULTICAST >= 0 && MULTICAST <= 2, "MULTICAST: 0, 1 (A) or 2 (B)");
static_assert(MULTICAST != 2 || GROUPED == 0, "M-grouped pairs share A: their rows and expert");
static_assert(MULTICAST != 2 || GROUPED != 3, "K-grouped pairs share A");
// each half starts on a 1024-byte boundary, where the 128B swizzle pattern restarts
static_assert(A_LOAD_ROWS % 8 == 0 && B_LOAD_ROWS % 8 == 0, "half tiles of whole swizzle atoms");
static_assert(SMEM_BYTES + 1023 <= SMEM_REQUESTED, "the launch must cover the layout and its alignment");

// 1d2d promotion of one 64-row sub-tile's partial sums `p` into its totals `t`: this thread's
// rows carry A scales a0 and a1; 8-column chunks j < F take B block scale b0, chunks up to S
// b1, the rest b2. With F and S compile-time, the scale products are formed once per call and
// each column costs one FFMA (a run-time split cost a select and two multiplies per chunk
// and made tiles that straddle scale blocks 7-35% slower on an H200; a switch on the split
// inside the K loop was slower still).
template <int F, int S>
__device__ __forceinline__ void promote_split(float (&t)[ACC], const float (&p)[ACC], float a0,
                                              float a1, float b0, float b1, float b2) {
    const float x0[3] = {a0 * b0, a0 * b1, a0 * b2}, x1[3] = {a1 * b0, a1 * b1, a1 * b2};
    #pragma unroll
    for (int j = 0; j < BLOCK_N / 8; ++j) {
        const int blk = j < F ? 0 : (j < S ? 1 : 2);
        t[4 * j + 0] = fmaf(p[4 * j + 0], x0[blk], t[4 * j + 0]);
        t[4 * j + 1] = fmaf(p[4 * j + 1], x0[blk], t[4 * j + 1]);
        t[4 * j + 2] = fmaf(p[4 * j + 2], x1[blk], t[4 * j + 2]);
        t[4 * j + 3] = fmaf(p[4 * j + 3], x1[blk], t[4 * j + 3]);
    }
}

// A tile's split as types: its first `first` 8-column chunks lie in its first 128-column B scale
// block, chunks up to `second` in the next. The K loop is instantiated once per split the tile
// width allows (SPLIT_FIRSTS, listed by the code generator: tile starts are multiples of
// BLOCK_N) and chosen once per tile, so the promotion has no run-time choice in it.
template <int F>
struct Split {
    static constexpr int first = F;
    static constexpr int second = BLOCK_N / 8 < F + 16 ? BLOCK_N / 8 : F + 16;
};

#if OUT_F32
typedef float out_t;
#else
typedef __nv_bfloat16 out_t;
#endif

// Element access for the direct epilogue, in FP32 or BF16 (pairs: 8- or 4-byte aligned).
__device__ __forceinline__ float2 load_pair(const float* p) { return *reinterpret_cast<const float2*>(p); }
__device__ __forceinline__ float2 load_pair(const __nv_bfloat16* p) {
    return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(p));
}
__device__ __forceinline__ float load_one(const float* p) { return *p; }
__device__ __forceinline__ float load_one(const __nv_bfloat16* p) { return __bfloat162float(*p); }
__device__ __forceinline__ void store_pair(float* p, float x, float y) {
    *reinterpret_cast<float2*>(p) = make_float2(x, y);
}
__device__ __forceinline__ void store_pair(__nv_bfloat16* p, float x, float y) {
    *reinterpret_cast<__nv_bfloat162*>(p) = __floats2bfloat162_rn(x, y);
}
// two floats as the bits of a BF16 pair, the first in the low half (the lower address)
__device__ __forceinline__ uint32_t bf16x2_bits(float x, float y) {
    const __nv_bfloat162 v = __floats2bfloat162_rn(x, y);
    return *reinterpret_cast<const uint32_t*>(&v);
}
__device__ __forceinline__ void store_one(float* p, float x) { *p = x; }
__device__ __forceinline__ void store_one(__nv_bfloat16* p, float x) { *p = __float2bfloat16_rn(x); }

// What one work unit computes. `group` is the expert (M-grouped, K-grouped) or 0; m0 the
// first row in A and D as seen 2-D; b_row the first row of B's tile; K blocks [kb_begin,
// kb_end) (global block indices).
struct Work {
    int tile, m_blk, n_blk, group, m0, b_row, kb_begin, kb_end;
    int second;  // GROUPED == 1, 256-row tiles: the expert of a second pass, or -1
    int rows;    // GROUPED == 2: the expert's valid rows (masked_m)
    bool valid;  // MULTICAST: false where this CTA's tile of the pair lies outside D
};

// Returns false for a unit with nothing to compute (a tile of padding or masked rows): with
// MULTICAST, for both CTAs of the pair alike. A unit is a tile (or a K slice of one); with
// MULTICAST a pair of tiles, this CTA's being number `rank`: the tile grid is walked in slots
// of m_slots x n_slots, a slot holding the pair's two n-blocks (1) or m-blocks (2).
__device__ __forceinline__ bool unit_work(int unit, int rank, int m_slots, int n_slots,
                                          int m_blocks, int n_blocks, int k_blocks,
                                          int m, int n, int m_per_group, const int* row_groups,
                                          Work& w) {
    const int slot = unit / SPLIT_K;
    w.tile = slot * CLUSTER + rank;  // split-K partials: a distinct index per tile
    const int split = unit % SPLIT_K;
    int t = slot, kb0 = 0, kb1 = k_blocks;
    w.group = 0;
    w.second = -1;
    if constexpr (GROUPED == 3) {
        w.group = t / (m_slots * n_slots);
        t %= m_slots * n_slots;
        kb0 = __ldg(row_groups + w.group);
        kb1 = __ldg(row_groups + w.group + 1);
    }
    // Tiles go m-fastest within bands of RASTER_M m-blocks, band after band: the CTAs running
    // at once share a few A row blocks and a few B column blocks, which stay in L2 (plain
    // m-fastest order over a tall A streams all of A from HBM once per B column block).
    constexpr int BAND = MULTICAST == 2 ? RASTER_M / 2 : RASTER_M;  // in slots
    const int band = t / (BAND * n_slots), in_band = t % (BAND * n_slots);
    const int band_rows = min(BAND, m_slots - band * BAND);
    w.m_blk = band * BAND + in_band % band_rows;
    w.n_blk = in_band / band_rows;
    if constexpr (MULTICAST == 1) w.n_blk = 2 * w.n_blk + rank;
    if constexpr (MULTICAST == 2) w.m_blk = 2 * w.m_blk + rank;
    w.valid = CLUSTER == 1 || (w.m_blk < m_blocks && w.n_blk < n_blocks);
    w.kb_begin = kb0 + split * (kb1 - kb0) / SPLIT_K;
    w.kb_end = kb0 + (split + 1) * (kb1 - kb0) / SPLIT_K;
    w.b_row = w.n_blk * BLOCK_N;
    if constexpr (GROUPED == 2) {
        const int per = (m_per_group + BLOCK_M - 1) / BLOCK_M;
        w.group = w.m_blk / per;
        const int local = (w.m_blk % per) * BLOCK_M;
        w.m0 = w.group * m_per_group + local;
        w.b_row += w.group * n;
        w.rows = __ldg(row_groups + w.group);
        return local < w.rows;
    } else if constexpr (GROUPED == 1) {
        w.m0 = w.m_blk * BLOCK_M;
        w.group = __ldg(row_groups + w.m0);
        if constexpr (BLOCK_M > 128) {  // the second 128-row block may be another expert's
            const int other = w.m0 + 128 < m ? __ldg(row_groups + w.m0 + 128) : -1;
            if (w.group < 0) w.group = other;
            else if (other >= 0 && other != w.group) w.second = other;
        }
        w.b_row += w.group * n;
        return w.group >= 0;
    } else {
        w.m0 = w.m_blk * BLOCK_M;
        return true;
    }
}

// Turns a two-expert 256-row tile's work to its second expert.
__device__ __forceinline__ void next_pass(Work& w, int n) {
    w.group = w.second;
    w.b_row = w.n_blk * BLOCK_N + w.group * n;
}

// Whether global row `row` (of A and D as seen 2-D) is written back.
__device__ __forceinline__ bool row_written(int row, int m, const Work& w, int m_per_group,
                                            const int* row_groups) {
    if (row >= m) return false;
    if constexpr (GROUPED == 1) return __ldg(row_groups + row) == w.group;  // this pass's expert
    if constexpr (GROUPED == 2) {  // rows past masked_m stay untouched
        const int local = row - w.group * m_per_group;
        return local < m_per_group && local < w.rows;
    }
    return true;
}

// Hands a ring stage back to the producer: one arrival per math warp (MULTICAST: on the
// barrier of each CTA of the pair, since both producers write into this stage).
__device__ __forceinline__ void release_stage(uint32_t bar_empty, int stage, int lane) {
    __syncwarp();
    if constexpr (CLUSTER == 1) {
        if (lane == 0) mbar_arrive(bar_empty + stage * 8);
    } else {
        if (lane < CLUSTER) mbar_arrive_on(bar_empty + stage * 8, lane);
    }
}

// Keeps the compiler from moving accesses of these accumulators across wgmma ops.
template <int ROWS, int COLS>
__device__ __forceinline__ void fence_accumulators(float (&acc)[ROWS][COLS]) {
    #pragma unroll
    for (int s = 0; s < ROWS; ++s)
        #pragma unroll
        for (int i = 0; i < COLS; ++i) fence_operand(acc[s][i]);
}

extern "C" __global__ void __launch_bounds__(THREADS, 1)
KERNEL_NAME(const __grid_constant__ CUtensorMap map_a,    // [M, K], box [BM, 128 bytes]
            const __grid_constant__ CUtensorMap map_b,    // [(G *) N, K], box [BN, 128 bytes]
            const __grid_constant__ CUtensorMap map_sfa,  // [(G *) KB, M_pad] f32, box [1, BM]
            const __grid_constant__ CUtensorMap map_sfb,  // SFB_ROWS: [(G *) KB, N_pad] f32, box [1, BN]
            const __grid_constant__ CUtensorMap map_d,    // d_tma: [M, N] bf16, box [EPI_ROWS, 64 or BN]
            const float* __restrict__ sfb, long long sfb_stride_n, long long sfb_stride_k,
            long long sfb_stride_g,  // 1d2d B scales [(G,) NB, KB], copied into the ring
            out_t* d, long long ldd, long long d_stride_g,
            const void* c, long long ldc, long long c_stride_g, int c_f32,  // c may alias d
            int d_tma,  // BF16 D without C, N a multiple of 8: map_d is valid
            int m, int n, int k, int groups, int m_per_group,
            const int* __restrict__ row_groups,  // see GROUPED in the file comment
            float* __restrict__ workspace, int* __restrict__ counters) {
    extern __shared__ uint8_t smem_raw[];
    // align the dynamic window by hand (the launch asks for 1024 spare bytes)
    const uint32_t raw = smem_addr(smem_raw);
    const uint32_t base = (raw + 1023u) & ~1023u;
    uint8_t* smem = smem_raw + (base - raw);
    const uint32_t bar_full = base + OFF_BAR, bar_empty = bar_full + STAGES * 8;

    const int m_blocks = GROUPED == 2
        ? (m / m_per_group) * ((m_per_group + BLOCK_M - 1) / BLOCK_M)
        : (m + BLOCK_M - 1) / BLOCK_M;
    const int n_blocks = (n + BLOCK_N - 1) / BLOCK_N;
    const int m_slots = MULTICAST == 2 ? (m_blocks + 1) / 2 : m_blocks;
    const int n_slots = MULTICAST == 1 ? (n_blocks + 1) / 2 : n_blocks;
    const int units = m_slots * n_slots * SPLIT_K * (GROUPED == 3 ? groups : 1);
    const int k_blocks = (k + BLOCK_K - 1) / BLOCK_K;
    // 256-row tiles: the warpgroup taken from lane 0, which ptxas then knows is the same across
    // the warp, so that the math warps' shared addresses and wgmma descriptors stay in uniform
    // registers (the K block 12 instructions shorter, none of them R2UR). Measured on an H200
    // (benchmarks/NOTES.md, "A warp-uniform warpgroup"): 0.2-4.8% faster with 256-row tiles,
    // but up to 5% slower with some 64- and 128-row ones, which keep the plain division.
    const int warpgroup = M_SUB == 2 ? __shfl_sync(0xffffffffu, threadIdx.x / 128, 0)
                                     : static_cast<int>(threadIdx.x / 128);
    const int rank = CLUSTER == 1 ? 0 : static_cast<int>(cluster_rank());

    if (threadIdx.x == MATH_THREADS) {
        tma_prefetch(&map_a);
        tma_prefetch(&map_b);
        if constexpr (IS_FP8) tma_prefetch(&map_sfa);
        if constexpr (SFB_ROWS) tma_prefetch(&map_sfb);
        if (!EPI_DIRECT && d_tma) tma_prefetch(&map_d);
        for (int s = 0; s < STAGES; ++s) {
            mbar_init(bar_full + s * 8, 1);
            // one arrival per math warp that releases stages (of both CTAs of a pair)
            mbar_init(bar_empty + s * 8, STAGE_WG * 4 * CLUSTER);
        }
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    }
    if constexpr (CLUSTER == 2) cluster_sync(); else __syncthreads();

    const int last_block = (n + 127) / 128 - 1;  // 1d2d: the last B scale block
    if (warpgroup == NUM_MATH_WG) {  // ---------------- TMA producer ----------------
        regs_dealloc<PAIR ? 24 : 40>();
        if (threadIdx.x == MATH_THREADS) {
        int stage = 0;
        uint32_t phase = 0;
        // the m-blocks that read each B tile: those of the whole A, or of one expert (masked;
        // contiguous M-grouped layouts give no bound, their experts' sizes vary)
        const int b_readers = GROUPED == 2 ? (m_per_group + BLOCK_M - 1) / BLOCK_M : m_blocks;
        const bool b_once = MULTICAST != 2 && GROUPED != 1 && b_readers <= B_ONCE_BLOCKS;
        const uint64_t evict_first = l2_evict_first();
        for (int unit = blockIdx.x / CLUSTER; unit < units; unit += gridDim.x / CLUSTER) {
            Work w;
            if (!unit_work(unit, rank, m_slots, n_slots, m_blocks, n_blocks, k_blocks, m, n,
                           m_per_group, row_groups, w))
                continue;  // a tile of padding rows
            for (int pass = 0; pass < (w.second >= 0 ? 2 : 1); ++pass) {
                if (pass == 1) next_pass(w, n);
                for (int kb = w.kb_begin; kb < w.kb_end; ++kb) {
                    const uint32_t full = bar_full + stage * 8;
                    mbar_wait(bar_empty + stage * 8, phase ^ 1);
                    if (SFB_RING && w.valid) {
                        // 1d2d B scales: copied with the stage, so that the math warps find them
                        // in shared memory instead of waiting on a global load each K block
                        const float* col = sfb + w.group * sfb_stride_g + kb * sfb_stride_k;
                        const int nb0 = w.n_blk * BLOCK_N / 128;
                        const uint32_t dst = base + OFF_SFB + stage * SFB_STRIDE;
                        cp_async_4(dst, col + nb0 * sfb_stride_n);
                        cp_async_4(dst + 4, col + min(nb0 + 1, last_block) * sfb_stride_n);
                        if constexpr (BLOCK_N > 128)
                            cp_async_4(dst + 8, col + min(nb0 + 2, last_block) * sfb_stride_n);
                        cp_async_arrive(full);  // before the arrival below, which may end the phase
                    }
                    mbar_arrive_expect_tx(full, w.valid ? STAGE_TX : SHARED_TX);
                    if constexpr (MULTICAST == 1)  // this CTA's half of the pair's A tile
                        tma_load_2d_multicast(base + OFF_A + stage * A_BYTES + rank * A_LOAD_ROWS * ROW_BYTES,
                                              &map_a, full, kb * BLOCK_K, w.m0 + rank * A_LOAD_ROWS, 3);
                    else if (w.valid)
                        tma_load_2d(base + OFF_A + stage * A_BYTES, &map_a, full, kb * BLOCK_K, w.m0);
                    if constexpr (MULTICAST == 2)  // this CTA's half of the pair's B tile
                        tma_load_2d_multicast(base + OFF_B + stage * B_BYTES + rank * B_LOAD_ROWS * ROW_BYTES,
                                              &map_b, full, kb * BLOCK_K, w.b_row + rank * B_LOAD_ROWS, 3);
                    else if (w.valid && b_once)
                        tma_load_2d_hint(base + OFF_B + stage * B_BYTES, &map_b, full, kb * BLOCK_K,
                                         w.b_row, evict_first);
                    else if (w.valid)
                        tma_load_2d(base + OFF_B + stage * B_BYTES, &map_b, full, kb * BLOCK_K, w.b_row);
                    if (!w.valid) {
                        if (++stage == STAGES) { stage = 0; phase ^= 1; }
                        continue;
                    }
                    if constexpr (IS_FP8) {  // masked: [G, M_max, KB], expert g's rows g * KB + kb
                        const int row = GROUPED == 2 ? w.group * k_blocks + kb : kb;
                        tma_load_2d(base + OFF_SFA + stage * SFA_BYTES, &map_sfa, full,
                                    GROUPED == 2 ? w.m0 - w.group * m_per_group : w.m0, row);
                    }
                    if constexpr (SFB_ROWS) {  // M-grouped: expert g's scales are rows g * KB + kb
                        const int row = GROUPED == 1 || GROUPED == 2 ? w.group * k_blocks + kb : kb;
                        tma_load_2d(base + OFF_SFB + stage * SFB_STRIDE, &map_sfb, full,
                                    w.n_blk * BLOCK_N, row);
                    }
                    if (++stage == STAGES) { stage = 0; phase ^= 1; }
                }
            }
        }
        }
        if constexpr (CLUSTER == 2) {
            __syncwarp();
            cluster_sync();  // the peer may still arrive on this CTA's barriers
        }
        return;
    }

    // ---------------- math warpgroups ----------------
    regs_alloc<PAIR ? 240 : 232>();
    const int tid = threadIdx.x % 128, warp = tid / 32, lane = tid % 32;
    const int row_in_wg = warp * 16 + lane / 4;  // rows row_in_wg and row_in_wg + 8 of each sub-tile
    const int wg_row0 = KPAIR ? 0 : warpgroup * WG_ROWS;  // the warpgroup's first row in the tile
    // the thread's epilogue group: its warpgroup (WG_EPI) or every writer; the group's first
    // row, named barrier, and thread number (0 issues and awaits the group's TMA stores)
    const int epi_row0 = WG_EPI ? wg_row0 : 0;
    const int epi_bar = WG_EPI ? 4 + warpgroup : 1;
    const int epi_tid = WG_EPI ? tid : static_cast<int>(threadIdx.x);
    const float* sfa_smem = reinterpret_cast<const float*>(smem + OFF_SFA);
    float total[M_SUB][ACC];
    float part[ACC];  // FP8: the partial sums of one 128-K block (unused for BF16)
    float part2[INFLIGHT ? 2 : 1][ACC];  // FP8 INFLIGHT: two blocks' partial sums
    int stage = 0;
    uint32_t phase = 0;

    for (int unit = blockIdx.x / CLUSTER; unit < units; unit += gridDim.x / CLUSTER) {
        Work w;
        if (!unit_work(unit, rank, m_slots, n_slots, m_blocks, n_blocks, k_blocks, m, n,
                       m_per_group, row_groups, w))
            continue;  // the producer skips it too
        const int passes = w.second >= 0 ? 2 : 1;
        for (int pass = 0; pass < passes; ++pass) {  // `continue` below: this pass is done
            if (pass == 1) next_pass(w, n);
            if (CLUSTER == 2 && !w.valid) {  // the peer's tile only: hand the stages back
                for (int kb = w.kb_begin; kb < w.kb_end; ++kb) {
                    mbar_wait(bar_full + stage * 8, phase);
                    release_stage(bar_empty, stage, lane);
                    if (++stage == STAGES) { stage = 0; phase ^= 1; }
                }
                continue;
            }
            const int m0 = w.m0, n0 = w.n_blk * BLOCK_N;
            // M-grouped contiguous: the expert of each row this thread stores, loaded before
            // the K loop so that the epilogue's check of the tile's rows does not wait on them
            int row_expert[M_SUB][2];
            if constexpr (MIXED_STORE && GROUPED == 1) {
                #pragma unroll
                for (int s = 0; s < M_SUB; ++s)
                    #pragma unroll
                    for (int h = 0; h < 2; ++h) {
                        const int row = m0 + wg_row0 + s * 64 + row_in_wg + 8 * h;
                        row_expert[s][h] = row < m ? __ldg(row_groups + row) : -1;
                    }
            }
            #pragma unroll
            for (int s = 0; s < M_SUB; ++s)
                #pragma unroll
                for (int i = 0; i < ACC; ++i) total[s][i] = 0.0f;

            if constexpr (!IS_FP8) {
                int held = -1;  // INFLIGHT: the stage whose wgmma groups may still be running
                for (int kb = w.kb_begin; kb < w.kb_end; ++kb) {
                    mbar_wait(bar_full + stage * 8, phase);
                    const uint32_t a_tile = base + OFF_A + stage * A_BYTES + wg_row0 * ROW_BYTES;
                    const uint32_t b_tile = base + OFF_B + stage * B_BYTES;
                    #pragma unroll
                    for (int s = 0; s < M_SUB; ++s) {
                        if constexpr (!INFLIGHT) {  // (in flight: chained wgmma need no fence)
                            #pragma unroll
                            for (int i = 0; i < ACC; ++i) fence_operand(total[s][i]);
                        }
                        wgmma_fence();
                        #pragma unroll
                        for (int kk = 0; kk < K_STEPS; ++kk)
                            wgmma_tile(total[s], gmma_desc_k128b(a_tile + s * 64 * ROW_BYTES) + 2 * kk,
                                       gmma_desc_k128b(b_tile) + 2 * kk, 1);
                        wgmma_commit();
                    }
                    if constexpr (INFLIGHT) {
                        // this block's groups keep running while the next stage is awaited;
                        // the previous block's are done once at most M_SUB groups are pending
                        wgmma_wait<M_SUB>();
                        if (held >= 0) release_stage(bar_empty, held, lane);
                        held = stage;
                    } else {
                        wgmma_wait<0>();
                        fence_accumulators(total);
                        release_stage(bar_empty, stage, lane);
                    }
                    if (++stage == STAGES) { stage = 0; phase ^= 1; }
                }
                if constexpr (INFLIGHT) {
                    wgmma_wait<0>();
                    fence_accumulators(total);
                    if (held >= 0) release_stage(bar_empty, held, lane);
                }
            } else {
            // 1d2d: a tile may straddle two 128-wide B scale blocks, or three when BLOCK_N > 128:
            // its first S::first 8-column chunks use block n0 / 128 (scale sb0), chunks up to
            // S::second the next one (sb1), the rest the one after (sb2).
            const float* group_sfb = sfb + w.group * sfb_stride_g;
            const int nb0 = n0 / 128;
            const int nb1 = min(nb0 + 1, last_block);
            const int nb2 = min(nb0 + 2, last_block);
            auto k_loop = [&](auto split) {
            using S = decltype(split);
            if constexpr (INFLIGHT) {
                // K blocks alternate between the partials part2[0] and part2[1]: one block's
                // wgmma stay in flight while the other's are promoted. The first block is
                // issued before the loop, so every wait in it leaves exactly one group running
                // (a wait whose depth depended on the iteration made ptxas serialise the wgmma).
                float sc[2][4];  // per partial: this thread's two A-row scales, B scales 0 and 1
                int held[2];     // the stage each partial's block reads
                auto issue = [&](auto slot) {
                    constexpr int P = decltype(slot)::value;
                    mbar_wait(bar_full + stage * 8, phase);
                    const float* ring =
                        reinterpret_cast<const float*>(smem + OFF_SFB + stage * SFB_STRIDE);
                    const float* sfa = sfa_smem + stage * BLOCK_M + wg_row0;
                    sc[P][0] = sfa[row_in_wg];
                    sc[P][1] = sfa[row_in_wg + 8];
                    sc[P][2] = ring[0];
                    sc[P][3] = ring[1];
                    const uint32_t a_tile = base + OFF_A + stage * A_BYTES + wg_row0 * ROW_BYTES;
                    const uint32_t b_tile = base + OFF_B + stage * B_BYTES;
                    #pragma unroll
                    for (int i = 0; i < ACC; ++i) fence_operand(part2[P][i]);
                    wgmma_fence();
                    #pragma unroll
                    for (int kk = 0; kk < K_STEPS; ++kk)
                        wgmma_tile(part2[P], gmma_desc_k128b(a_tile) + 2 * kk,
                                   gmma_desc_k128b(b_tile) + 2 * kk, kk > 0);
                    wgmma_commit();
                    held[P] = stage;
                    if (++stage == STAGES) { stage = 0; phase ^= 1; }
                };
                // waits until at most `pending` groups run (the other partial's), hands the
                // block's stage back and promotes it
                auto retire = [&](auto slot, auto pending) {
                    constexpr int P = decltype(slot)::value;
                    wgmma_wait<decltype(pending)::value>();
                    #pragma unroll
                    for (int i = 0; i < ACC; ++i) fence_operand(part2[P][i]);
                    release_stage(bar_empty, held[P], lane);
                    promote_split<S::first, S::second>(total[0], part2[P], sc[P][0], sc[P][1],
                                                       sc[P][2], sc[P][3], sc[P][3]);
                };
                using Zero = std::integral_constant<int, 0>;
                using One = std::integral_constant<int, 1>;
                const int blocks = w.kb_end - w.kb_begin;
                if (blocks > 0) {
                    issue(Zero{});
                    int done = 1;
                    for (; done + 1 < blocks; done += 2) {
                        issue(One{});
                        retire(Zero{}, One{});
                        issue(Zero{});
                        retire(One{}, One{});
                    }
                    if (done < blocks) {
                        issue(One{});
                        retire(Zero{}, One{});
                        retire(One{}, Zero{});
                    } else {
                        retire(Zero{}, Zero{});
                    }
                }
                return;
            }
            // 1d2d B scales read from global memory (256-row tiles): the first scale block's for
            // K block kb, stepped along K, and the next blocks' at fixed offsets from it
            const float* sfb_kb = group_sfb + nb0 * sfb_stride_n + w.kb_begin * sfb_stride_k;
            const long long sfb_off1 = (nb1 - nb0) * sfb_stride_n, sfb_off2 = (nb2 - nb0) * sfb_stride_n;
            if constexpr (PAIR) {
                // both sub-tiles' groups in flight: the first is promoted while the second runs
                // (measured on an H200: 8-10% faster than one group at a time, within 3% of
                // the same tile with no promotion at all)
                float pair_part[2][ACC];
                for (int kb = w.kb_begin; kb < w.kb_end; ++kb, sfb_kb += sfb_stride_k) {
                    const float sb0 = __ldg(sfb_kb), sb1 = __ldg(sfb_kb + sfb_off1);
                    mbar_wait(bar_full + stage * 8, phase);
                    const uint32_t a_tile = base + OFF_A + stage * A_BYTES + wg_row0 * ROW_BYTES;
                    const uint32_t b_tile = base + OFF_B + stage * B_BYTES;
                    const float* sfa = sfa_smem + stage * BLOCK_M + wg_row0;
                    float sa[2][2];
                    #pragma unroll
                    for (int s = 0; s < 2; ++s) {
                        sa[s][0] = sfa[s * 64 + row_in_wg];
                        sa[s][1] = sfa[s * 64 + row_in_wg + 8];
                    }
                    #pragma unroll
                    for (int s = 0; s < 2; ++s) {
                        #pragma unroll
                        for (int i = 0; i < ACC; ++i) fence_operand(pair_part[s][i]);
                        wgmma_fence();
                        #pragma unroll
                        for (int kk = 0; kk < K_STEPS; ++kk)
                            wgmma_tile(pair_part[s], gmma_desc_k128b(a_tile + s * 64 * ROW_BYTES) + 2 * kk,
                                       gmma_desc_k128b(b_tile) + 2 * kk, kk > 0);
                        wgmma_commit();
                    }
                    wgmma_wait<1>();
                    #pragma unroll
                    for (int i = 0; i < ACC; ++i) fence_operand(pair_part[0][i]);
                    promote_split<S::first, S::second>(total[0], pair_part[0], sa[0][0], sa[0][1],
                                                       sb0, sb1, sb1);
                    wgmma_wait<0>();
                    #pragma unroll
                    for (int i = 0; i < ACC; ++i) fence_operand(pair_part[1][i]);
                    release_stage(bar_empty, stage, lane);
                    promote_split<S::first, S::second>(total[1], pair_part[1], sa[1][0], sa[1][1],
                                                       sb0, sb1, sb1);
                    if (++stage == STAGES) { stage = 0; phase ^= 1; }
                }
                return;
            }
            for (int kb = w.kb_begin; kb < w.kb_end; ++kb, sfb_kb += sfb_stride_k) {
                if (KPAIR && ((kb - w.kb_begin) & 1) != warpgroup) {  // the other warpgroup's block
                    if (++stage == STAGES) { stage = 0; phase ^= 1; }
                    continue;
                }
                float sb0 = 0.0f, sb1 = 0.0f, sb2 = 0.0f;
                if constexpr (!SFB_ROWS && !SFB_RING) {
                    sb0 = __ldg(sfb_kb);
                    sb1 = __ldg(sfb_kb + sfb_off1);
                    sb2 = BLOCK_N > 128 ? __ldg(sfb_kb + sfb_off2) : sb1;
                }
                mbar_wait(bar_full + stage * 8, phase);
                if constexpr (SFB_RING) {
                    const float* ring =
                        reinterpret_cast<const float*>(smem + OFF_SFB + stage * SFB_STRIDE);
                    sb0 = ring[0];
                    sb1 = ring[1];
                    sb2 = BLOCK_N > 128 ? ring[2] : sb1;
                }
                const uint32_t a_tile = base + OFF_A + stage * A_BYTES + wg_row0 * ROW_BYTES;
                const uint32_t b_tile = base + OFF_B + stage * B_BYTES;
                const float* sfa = sfa_smem + stage * BLOCK_M + wg_row0;
                // 1d1d: this K block's per-column B scales (columns 8 j + 2 (lane % 4) + {0, 1})
                const float* sfb_cols = reinterpret_cast<const float*>(smem + OFF_SFB + stage * SFB_STRIDE) +
                                        2 * (lane % 4);
                float sa[M_SUB][2];
                #pragma unroll
                for (int s = 0; s < M_SUB; ++s) {
                    sa[s][0] = sfa[s * 64 + row_in_wg];
                    sa[s][1] = sfa[s * 64 + row_in_wg + 8];
                }
                #pragma unroll
                for (int s = 0; s < M_SUB; ++s) {
                    #pragma unroll
                    for (int i = 0; i < ACC; ++i) fence_operand(part[i]);
                    wgmma_fence();
                    #pragma unroll
                    for (int kk = 0; kk < K_STEPS; ++kk) {
                        // stepping 32 bytes of K inside the 128-byte swizzle atom: +2 in the address field
                        const uint64_t da = gmma_desc_k128b(a_tile + s * 64 * ROW_BYTES) + 2 * kk;
                        const uint64_t db = gmma_desc_k128b(b_tile) + 2 * kk;
                        wgmma_tile(part, da, db, kk > 0);
                    }
                    wgmma_commit();
                    wgmma_wait<0>();
                    #pragma unroll
                    for (int i = 0; i < ACC; ++i) fence_operand(part[i]);
                    // the stage's smem is no longer read (1d1d: after the promotion reads its B
                    // scales): hand it back
                    if (!SFB_ROWS && s == M_SUB - 1) release_stage(bar_empty, stage, lane);
                    // promotion: accumulator i is row (i % 4) / 2 * 8 + row_in_wg, column 8 * (i / 4) + ...
                    if constexpr (SFB_ROWS) {
                        #pragma unroll
                        for (int j = 0; j < BLOCK_N / 8; ++j) {
                            const float2 sb = *reinterpret_cast<const float2*>(sfb_cols + 8 * j);
                            total[s][4 * j + 0] = fmaf(part[4 * j + 0], sa[s][0] * sb.x, total[s][4 * j + 0]);
                            total[s][4 * j + 1] = fmaf(part[4 * j + 1], sa[s][0] * sb.y, total[s][4 * j + 1]);
                            total[s][4 * j + 2] = fmaf(part[4 * j + 2], sa[s][1] * sb.x, total[s][4 * j + 2]);
                            total[s][4 * j + 3] = fmaf(part[4 * j + 3], sa[s][1] * sb.y, total[s][4 * j + 3]);
                        }
                    } else {
                        promote_split<S::first, S::second>(total[s], part, sa[s][0], sa[s][1],
                                                           sb0, sb1, sb2);
                    }
                }
                if constexpr (SFB_ROWS) release_stage(bar_empty, stage, lane);
                if (++stage == STAGES) { stage = 0; phase ^= 1; }
            }
            };
            if constexpr (SFB_ROWS) {
                k_loop(Split<BLOCK_N / 8>{});  // (per-column scales: no split)
            } else {
                switch (min(BLOCK_N, 128 - n0 % 128) / 8) {
#define DGREG_SPLIT_CASE(F) case F: k_loop(Split<F>{}); break;
                    SPLIT_FIRSTS(DGREG_SPLIT_CASE)
#undef DGREG_SPLIT_CASE
                    default: __trap();  // a split the generator did not list: never a wrong answer
                }
            }
            }

            if constexpr (KPAIR) {  // the second warpgroup's totals join the first's
                float* xchg = reinterpret_cast<float*>(smem + OFF_X);
                if (warpgroup == 1) {
                    #pragma unroll
                    for (int i = 0; i < ACC; ++i) xchg[i * 128 + tid] = total[0][i];
                    named_barrier(2, MATH_THREADS);  // written
                    named_barrier(3, MATH_THREADS);  // read: free for the next unit
                    continue;
                }
                named_barrier(2, MATH_THREADS);
                #pragma unroll
                for (int i = 0; i < ACC; ++i) total[0][i] += xchg[i * 128 + tid];
                named_barrier(3, MATH_THREADS);
            }

            if constexpr (SPLIT_K > 1) {
                // Partial tiles live in the workspace in the accumulator's own thread layout, so
                // each thread later reads back exactly what the other units' threads wrote.
                float* tile_ws = workspace + static_cast<size_t>(w.tile) * SPLIT_K * (BLOCK_M * BLOCK_N);
                const int split = unit % SPLIT_K;
                // float4 number q of math thread T sits at q * EPI_THREADS + T: coalesced
                const int me = warpgroup * 128 + tid;
                float4* mine = reinterpret_cast<float4*>(tile_ws + split * (BLOCK_M * BLOCK_N)) + me;
                #pragma unroll
                for (int s = 0; s < M_SUB; ++s)
                    #pragma unroll
                    for (int i = 0; i < ACC; i += 4)
                        __stcg(mine + (s * ACC + i) / 4 * EPI_THREADS,
                               make_float4(total[s][i], total[s][i + 1], total[s][i + 2], total[s][i + 3]));
                __threadfence();  // publish the partial before counting this unit as done
                named_barrier(1, EPI_THREADS);
                volatile int* flag = reinterpret_cast<volatile int*>(smem + OFF_FLAG);
                if (threadIdx.x == 0) {
                    const int done = atomicAdd(counters + w.tile, 1);
                    const int last = done == SPLIT_K - 1;
                    if (last) counters[w.tile] = 0;  // ready for the next launch
                    *flag = last;
                }
                named_barrier(1, EPI_THREADS);
                if (!*flag) continue;
                __threadfence();  // see every other unit's partial
                #pragma unroll 1
                for (int other = 0; other < SPLIT_K; ++other) {
                    if (other == split) continue;
                    const float4* theirs =
                        reinterpret_cast<const float4*>(tile_ws + other * (BLOCK_M * BLOCK_N)) + me;
                    #pragma unroll
                    for (int s = 0; s < M_SUB; ++s)
                        #pragma unroll
                        for (int i = 0; i < ACC; i += 4) {
                            const float4 v = __ldcg(theirs + (s * ACC + i) / 4 * EPI_THREADS);
                            total[s][i] += v.x;
                            total[s][i + 1] += v.y;
                            total[s][i + 2] += v.z;
                            total[s][i + 3] += v.w;
                        }
                }
            }

            if constexpr (EPI_DIRECT) {
                // Each thread owns pairs of adjacent columns: a quad of lanes writes 8 columns of a
                // row, so every 32-byte sector of FP32 output is written whole.
                // pairs of columns are 8-byte (FP32) or 4-byte (BF16) aligned only with even
                // strides: a D or C the call allocates with an odd N has odd row strides
                const bool pairs = ((ldd | d_stride_g | ldc | c_stride_g) & 1) == 0;
                out_t* d_tile = d + w.group * d_stride_g;
                const long long c_group = w.group * c_stride_g;
                #pragma unroll
                for (int s = 0; s < M_SUB; ++s)
                    #pragma unroll
                    for (int h = 0; h < 2; ++h) {
                        const int row = m0 + wg_row0 + s * 64 + row_in_wg + 8 * h;
                        if (!row_written(row, m, w, m_per_group, row_groups)) continue;
                        out_t* d_row = d_tile + row * ldd;
                        const long long c_row = c_group + row * ldc;  // in elements
                        #pragma unroll
                        for (int j = 0; j < BLOCK_N / 8; ++j) {
                            const int col = n0 + 8 * j + 2 * (lane % 4);
                            if (col >= n) continue;
                            float v0 = total[s][4 * j + 2 * h], v1 = total[s][4 * j + 2 * h + 1];
                            if (col + 1 < n && pairs) {
                                if constexpr (WITH_C) {
                                    const float2 cv = c_f32
                                        ? load_pair(static_cast<const float*>(c) + c_row + col)
                                        : load_pair(static_cast<const __nv_bfloat16*>(c) + c_row + col);
                                    v0 += cv.x;
                                    v1 += cv.y;
                                }
                                store_pair(d_row + col, v0, v1);
                            } else {  // the last column of an odd N, or pairs not aligned
                                #pragma unroll
                                for (int e = 0; e < 2; ++e) {
                                    if (col + e >= n) break;
                                    float v = e ? v1 : v0;
                                    if constexpr (WITH_C)
                                        v += c_f32 ? load_one(static_cast<const float*>(c) + c_row + col + e)
                                                   : load_one(static_cast<const __nv_bfloat16*>(c) + c_row + col + e);
                                    store_one(d_row + col + e, v);
                                }
                            }
                        }
                    }
                continue;
            } else {
            // Every row of the group's part is written: the TMA may store it. The M-grouped
            // checks end in a warp vote: a branch on a value ptxas cannot prove warp-uniform
            // (it depends on the thread's warpgroup, or comes from the barrier's asm) made it
            // keep the unit loop's stage, phase and shared addresses per thread, and move each
            // wgmma descriptor through R2UR: 15 more instructions a K block, 2-7% of these
            // kernels' time on an H200.
            bool whole = d_tma;
            if constexpr (MIXED_STORE && GROUPED == 2) {  // the part's rows all below masked_m
                const int local = m0 + epi_row0 - w.group * m_per_group;
                whole = __all_sync(0xffffffffu,
                                   whole && local + EPI_ROWS <= min(m_per_group, w.rows));
            } else if constexpr (MIXED_STORE) {  // each thread checks the rows it holds, then all agree
                bool mine = whole;
                #pragma unroll
                for (int s = 0; s < M_SUB; ++s)
                    #pragma unroll
                    for (int h = 0; h < 2; ++h) mine &= row_expert[s][h] == w.group;
                whole = __all_sync(0xffffffffu, barrier_and(epi_bar, EPI_GROUP, mine));
            }
            // the previous tile's TMA store, or its threads' stores, must have read the staging
            if (epi_tid == 0) tma_store_wait_read();
            named_barrier(epi_bar, EPI_GROUP);
            // stmatrix: each staged 16-byte unit is one 8-element row of an 8x8 matrix. An x4
            // writes the warp's 16 rows of two 8-column chunks (matrices: chunk j rows 0-7,
            // rows 8-15, chunk j + 1 rows 0-7, rows 8-15), an x2 the last chunk of an odd count.
            constexpr int CHUNKS_N = BLOCK_N / 8;
            #pragma unroll
            for (int s = 0; s < M_SUB; ++s) {
                const int my_row = wg_row0 + s * 64 + warp * 16 + (lane / 8 % 2) * 8 + lane % 8;
                #pragma unroll
                for (int j = 0; j + 1 < CHUNKS_N; j += 2)
                    stmatrix_x4(base + OFF_D + d_staged(my_row, j + lane / 16),
                                bf16x2_bits(total[s][4 * j], total[s][4 * j + 1]),
                                bf16x2_bits(total[s][4 * j + 2], total[s][4 * j + 3]),
                                bf16x2_bits(total[s][4 * j + 4], total[s][4 * j + 5]),
                                bf16x2_bits(total[s][4 * j + 6], total[s][4 * j + 7]));
                if constexpr (CHUNKS_N % 2) {
                    constexpr int j = CHUNKS_N - 1;
                    stmatrix_x2(base + OFF_D + d_staged(my_row, j),
                                bf16x2_bits(total[s][4 * j], total[s][4 * j + 1]),
                                bf16x2_bits(total[s][4 * j + 2], total[s][4 * j + 3]));
                }
            }
            if (whole) {
                fence_async_shared();  // generic-proxy writes, read next by the TMA (async proxy)
                named_barrier(epi_bar, EPI_GROUP);
                if (epi_tid == 0) {  // boxes of EPI_ROWS rows (map_d's)
                    if constexpr (D_SWIZZLED) {
                        #pragma unroll
                        for (int chunk = 0; chunk < BLOCK_N / 64; ++chunk)
                            tma_store_2d(&map_d, base + OFF_D + d_staged(epi_row0, chunk * 8),
                                         n0 + chunk * 64, m0 + epi_row0);
                    } else {
                        tma_store_2d(&map_d, base + OFF_D + d_staged(epi_row0, 0), n0, m0 + epi_row0);
                    }
                    tma_store_commit();
                }
                continue;  // out-of-bounds rows and columns are clipped by the TMA unit
            }
            // the threads write the tile's written rows with coalesced 16-byte stores (direct
            // 4-byte stores from the accumulator layout would touch each 32-byte sector twice)
            named_barrier(epi_bar, EPI_GROUP);
            constexpr int CHUNKS = BLOCK_N / 8;  // 16-byte units per row
            for (int idx = epi_tid; idx < EPI_ROWS * CHUNKS; idx += EPI_GROUP) {
                const int row = epi_row0 + idx / CHUNKS, chunk = idx % CHUNKS;
                const int grow = m0 + row, gcol = n0 + chunk * 8;
                if (gcol >= n || !row_written(grow, m, w, m_per_group, row_groups)) continue;
                const uint8_t* src = smem + OFF_D + d_staged(row, chunk);
                out_t* dst = d + grow * ldd + gcol;  // BF16 here
                if (gcol + 8 <= n && d_tma) {  // d_tma: 16-byte aligned rows of whole units
                    *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(src);
                } else {  // N not a multiple of 8: pairs where they are 4-byte aligned
                    const out_t* staged = reinterpret_cast<const out_t*>(src);
                    const int count = min(8, n - gcol);
                    int col = 0;
                    if (ldd % 2 == 0)
                        for (; col + 1 < count; col += 2)
                            *reinterpret_cast<__nv_bfloat162*>(dst + col) =
                                *reinterpret_cast<const __nv_bfloat162*>(staged + col);
                    for (; col < count; ++col) dst[col] = staged[col];
                }
            }
            }
        }
    }
    if constexpr (!EPI_DIRECT) {
        if (epi_tid == 0) tma_store_wait_all();  // smem must outlive the group's last store
    }
    if constexpr (CLUSTER == 2) cluster_sync();  // the peer may still arrive on this CTA's barriers
}

}  // namespace dgreg_sm90
