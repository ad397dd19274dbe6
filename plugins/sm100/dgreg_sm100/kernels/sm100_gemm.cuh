// GEMMs for datacenter Blackwell: D = (C +) A @ B^T with the accumulator in tensor memory.
//
// Operands are FP8 e4m3 scaled by the hardware (IS_FP8: kind::mxf8f6f4.block_scale with one
// UE8M0 scale per row and 128 K on both sides, packed four K blocks per int32) or BF16
// (kind::f16). A and B may each be K-major or MN-major (A_K_MAJOR, B_K_MAJOR).
//
// The MMA's "X" operand (its M side, 128 rows per CTA, lanes of the accumulator) is A, or B
// when SWAP_AB; "Y" (its N side, UMMA_N columns of the accumulator) is the other. Swapping
// lets a few rows of A ride as the narrow N side of the MMA.
//
// Persistent: every CTA (or CTA pair, CLUSTER == 2) walks tiles of TILE_M x TILE_N. Warps:
//   0    TMA producer: X, Y tiles and (FP8) their scale words into a ring of STAGES stages;
//   1    barrier set-up, then the MMA issuer (one thread, leader CTA of the pair only);
//   2    TMEM allocation, then the scale transposer: rearranges each stage's scale words into
//        the 32 x 16-byte image tcgen05.cp expects, and tells the leader the stage is ready;
//   3    idle;
//   4-7  epilogue: tcgen05.ld from TMEM (warp w reads lanes 32 (w % 4) ..), optional C, and a
//        TMA store through swizzled shared memory (or direct stores for M-grouped tiles,
//        whose padding rows must stay untouched).
// Two TMEM accumulators alternate, so the MMA of tile t + 1 overlaps the epilogue of tile t.
// With CLUSTER == 2 one MMA of M = 256 spans the pair: each CTA loads its 128 rows of X and
// half of Y, holds its half of the accumulator, and the leader issues every tcgen05 op.
//
// GROUPING: 0 dense; 1 M-grouped contiguous (A rows of every expert back to back, B [G, N, K],
// per-row expert ids or, with `psum`, prefix-sum ends); 2 M-grouped masked (A [G, M_max, K],
// masked_m [G] on the device); 3 K-grouped (A [sum K, M], B [sum K, N], D [G, M, N],
// `grouped_layout` holds G + 1 K offsets).
//
// The including source defines IS_FP8, A_K_MAJOR, B_K_MAJOR, SWAP_AB, GROUPING, D_FP32,
// BLOCK_M, BLOCK_N, CLUSTER, STAGES, KERNEL_NAME and SMEM_REQUESTED.
#pragma once
#include <cuda_bf16.h>
#include "sm100_ptx.cuh"

namespace dgreg_sm100 {

constexpr int ES = IS_FP8 ? 1 : 2;  // operand bytes per element
constexpr int BLOCK_K = 128 / ES;   // 128 bytes of K per tile row: one 128B swizzle atom
constexpr int UMMA_K = 32 / ES;     // K of one MMA instruction: 32 bytes
constexpr int K_STEPS = BLOCK_K / UMMA_K;
constexpr int ATOM = 128 / ES;      // elements in one 128-byte row of a swizzle atom
constexpr bool X_K_MAJOR = SWAP_AB ? B_K_MAJOR : A_K_MAJOR;
constexpr bool Y_K_MAJOR = SWAP_AB ? A_K_MAJOR : B_K_MAJOR;
constexpr int X_ROWS = 128;  // per CTA: lanes of the accumulator
constexpr int UMMA_M = X_ROWS * CLUSTER;
constexpr int UMMA_N = SWAP_AB ? BLOCK_M : BLOCK_N;
constexpr int Y_ROWS = UMMA_N / CLUSTER;  // Y rows each CTA loads
constexpr int TILE_M = SWAP_AB ? BLOCK_M : BLOCK_M * CLUSTER;
constexpr int TILE_N = BLOCK_N;
static_assert(SWAP_AB ? (BLOCK_N == X_ROWS && CLUSTER == 1) : BLOCK_M == X_ROWS, "tile shape");
static_assert(SWAP_AB || UMMA_N % 32 == 0, "the epilogue stores 32 columns of D per step");
static_assert(UMMA_N % 16 == 0 && UMMA_N >= 16 && UMMA_N <= 256, "MMA N: a multiple of 16 up to 256");
static_assert(Y_ROWS % 8 == 0, "swizzle atoms hold 8 rows");
static_assert(X_K_MAJOR || (X_ROWS * ES) % 128 == 0, "MN-major tiles are whole 128-byte atoms");
static_assert(Y_K_MAJOR || (Y_ROWS * ES) % 128 == 0, "MN-major tiles are whole 128-byte atoms");
static_assert(GROUPING == 0 || CLUSTER == 1, "a CTA pair shares one tile of the dense GEMM");

// shared memory: the operand ring, scale words, epilogue staging, barriers
constexpr uint32_t X_BYTES = X_ROWS * 128;
constexpr uint32_t Y_BYTES = Y_ROWS * 128;
constexpr int SF_X_WORDS = IS_FP8 ? X_ROWS : 0;  // one int32 of 4 UE8M0 bytes per row
constexpr int SF_Y_WORDS = IS_FP8 ? (UMMA_N + 127) / 128 * 128 : 0;  // whole 128-row chunks
constexpr uint32_t SF_TX_BYTES = (SF_X_WORDS + (IS_FP8 ? UMMA_N : 0)) * 4;
constexpr bool TMA_STORE = GROUPING == 0 || GROUPING == 3;
constexpr int D_ES = D_FP32 ? 4 : 2;
constexpr int EPI = UMMA_N % 32 == 0 ? 32 : 16;  // accumulator columns per epilogue step
constexpr int CHUNKS = UMMA_N / EPI;
// Staged output tile of one warp and step: 32 columns of D, rows swizzled like the TMA map
// (128B swizzle for FP32 rows of 128 bytes, 64B swizzle for BF16 rows of 64 bytes).
constexpr int STORE_ROWS = SWAP_AB ? EPI : 32;
constexpr uint32_t STORE_BYTES = STORE_ROWS * 32 * D_ES;
constexpr uint32_t OFF_X = 0;
constexpr uint32_t OFF_Y = OFF_X + STAGES * X_BYTES;
constexpr uint32_t OFF_SFX = OFF_Y + STAGES * Y_BYTES;
constexpr uint32_t OFF_SFY = OFF_SFX + STAGES * SF_X_WORDS * 4;
constexpr uint32_t OFF_CD = (OFF_SFY + STAGES * SF_Y_WORDS * 4 + 1023) / 1024 * 1024;
constexpr uint32_t OFF_BAR = OFF_CD + (TMA_STORE ? 4 * 2 * STORE_BYTES : 0);
constexpr uint32_t OFF_SLOT = OFF_BAR + (3 * STAGES + 4) * 8;
constexpr uint32_t SMEM_BYTES = OFF_SLOT + 16;
static_assert(SMEM_BYTES + 1023 <= SMEM_REQUESTED, "the launch covers the layout and its alignment");
static_assert(X_BYTES % 1024 == 0 && Y_BYTES % 1024 == 0, "tiles stay 1024-byte aligned");

// tensor memory: two accumulators of UMMA_N columns, then the scale words of X and Y
constexpr uint32_t SFX_COL = 2 * UMMA_N;
constexpr uint32_t SFY_COL = SFX_COL + SF_X_WORDS / 32;
constexpr uint32_t TMEM_USED = SFY_COL + SF_Y_WORDS / 32;
constexpr uint32_t TMEM_COLS = TMEM_USED <= 32 ? 32 : TMEM_USED <= 64 ? 64 : TMEM_USED <= 128 ? 128
                             : TMEM_USED <= 256 ? 256 : 512;  // a power of two from 32
static_assert(TMEM_USED <= 512, "TMEM holds 512 columns");

// Instruction descriptor (PTX ISA "Instruction descriptor"): operand types, majors (bit 15 X,
// bit 16 Y: 1 = MN-major), N >> 3 at bit 17, M >> 4 at bit 24. Block-scaled: bit 23 selects
// UE8M0 scales; the scale byte ids go to bits 4-5 (Y) and 29-30 (X) per MMA. Kind f16: FP32
// accumulator (bit 4), BF16 A and B (bits 7 and 10).
constexpr uint32_t IDESC = (IS_FP8 ? (1u << 23) : ((1u << 4) | (1u << 7) | (1u << 10))) |
                           (X_K_MAJOR ? 0u : 1u << 15) | (Y_K_MAJOR ? 0u : 1u << 16) |
                           (static_cast<uint32_t>(UMMA_N >> 3) << 17) |
                           (static_cast<uint32_t>(UMMA_M >> 4) << 24);

// Offsets of a stage's scale words: X's 128 rows, and chunk `i` of 128 rows of Y.
__device__ __forceinline__ uint32_t sfx_offset(int stage) { return OFF_SFX + stage * SF_X_WORDS * 4; }
__device__ __forceinline__ uint32_t sfy_offset(int stage, int i = 0) {
    return OFF_SFY + stage * SF_Y_WORDS * 4 + i * 512;
}

__device__ __forceinline__ uint32_t scale_ids(int kb) {
    const uint32_t id = static_cast<uint32_t>(kb & 3);  // byte of the word: K block within 4
    return (id << 4) | (id << 29);
}

// Descriptor of a stage's tile and the byte step between the MMAs of one K block.
template <bool K_MAJOR>
__device__ __forceinline__ uint64_t tile_desc(uint32_t addr) {
    return K_MAJOR ? umma_desc(addr, 0, 1024) : umma_desc(addr, BLOCK_K * 128, 1024);
}
template <bool K_MAJOR>
constexpr uint32_t k_step_bytes() { return K_MAJOR ? 32 : UMMA_K * 128; }

// One tile of ROWS rows x BLOCK_K from a 3-D map: [G, rows, K] (K-major) or [G, K, rows]
// (MN-major, one TMA box per 128-byte atom of rows, atoms BLOCK_K * 128 bytes apart).
template <bool K_MAJOR, int ROWS>
__device__ __forceinline__ void load_tile(uint32_t dst, const CUtensorMap* map, uint32_t bar,
                                          int row, int k, int g) {
    if constexpr (K_MAJOR) {
        tma_load_3d(dst, map, bar, k, row, g);
    } else {
        #pragma unroll
        for (int a = 0; a < ROWS * ES / 128; ++a)
            tma_load_3d(dst + a * BLOCK_K * 128, map, bar, row + a * ATOM, k, g);
    }
}

// In place: word (lane, j) of the 32 x 16-byte image holds row 32 j + lane of a 128-row chunk.
// Lanes start at different j (lane / 8) so neither the reads nor the writes share a bank.
__device__ __forceinline__ void transpose_scales(uint32_t* chunk, int lane) {
    uint32_t v[4];
    #pragma unroll
    for (int i = 0; i < 4; ++i) v[i] = chunk[32 * ((i + lane / 8) & 3) + lane];
    __syncwarp();
    #pragma unroll
    for (int i = 0; i < 4; ++i) chunk[lane * 4 + ((i + lane / 8) & 3)] = v[i];
}

// -- tiles -----------------------------------------------------------------------------------
struct Tile {
    int g;        // expert (M-grouped) or K group (K-grouped); 0 otherwise
    int row0;     // first row of A (within its group for the masked layout)
    int n0;       // first column of D
    int k0;       // first K element (K-grouped)
    int num_kb;   // K blocks; 0 (an empty K group): D = C, or zeros, without an MMA
    int row_end;  // rows at or past this are not written
};

struct Problem {
    int m, n, k, groups;  // m: rows of A (M_max per group when masked)
    const int* layout;    // per-row ids / prefix-sum ends / masked_m / K offsets
    int psum;
};

__device__ __forceinline__ int ceil_div(int a, int b) { return (a + b - 1) / b; }

__device__ __forceinline__ int num_tiles(const Problem& p) {
    const int n_blocks = ceil_div(p.n, TILE_N);
    if constexpr (GROUPING == 2 || GROUPING == 3) return p.groups * ceil_div(p.m, TILE_M) * n_blocks;
    return ceil_div(p.m, TILE_M) * n_blocks;
}

// Every role walks the same tiles and skips the same ones (false: nothing to compute).
__device__ __forceinline__ bool tile_at(int t, const Problem& p, Tile& tile) {
    const int m_blocks = ceil_div(p.m, TILE_M) * (GROUPING == 2 ? p.groups : 1);
    int mb = t % m_blocks, nb = t / m_blocks;
    tile.g = 0;
    tile.k0 = 0;
    tile.num_kb = ceil_div(p.k, BLOCK_K);
    tile.row_end = p.m;
    if constexpr (GROUPING == 3) {  // tiles of group 0, then group 1, ...
        const int per_group = ceil_div(p.m, TILE_M) * ceil_div(p.n, TILE_N);
        tile.g = t / per_group;
        mb = (t % per_group) % m_blocks;
        nb = (t % per_group) / m_blocks;
        tile.k0 = __ldg(p.layout + tile.g);
        tile.num_kb = (__ldg(p.layout + tile.g + 1) - tile.k0) / BLOCK_K;
    }
    tile.n0 = nb * TILE_N;
    tile.row0 = mb * TILE_M;
    if constexpr (GROUPING == 1) {
        if (p.psum) {  // group g owns rows [align(ends[g - 1], 128), ends[g])
            int lo = 0, hi = p.groups;  // g = how many ends are <= row0
            while (lo < hi) {
                const int mid = (lo + hi) / 2;
                if (__ldg(p.layout + mid) <= tile.row0) lo = mid + 1; else hi = mid;
            }
            tile.g = lo;
            if (lo == p.groups) return false;
            const int start = lo ? (__ldg(p.layout + lo - 1) + 127) / 128 * 128 : 0;
            if (tile.row0 < start) return false;  // padding after the previous group
            tile.row_end = __ldg(p.layout + lo);
        } else {
            tile.g = __ldg(p.layout + tile.row0);  // a tile never spans two experts' blocks
            if (tile.g < 0) return false;
        }
    } else if constexpr (GROUPING == 2) {
        const int per = ceil_div(p.m, TILE_M);
        tile.g = mb / per;
        tile.row0 = (mb % per) * TILE_M;
        tile.row_end = min(__ldg(p.layout + tile.g), p.m);
        if (tile.row0 >= tile.row_end) return false;
    }
    return true;
}

// Whether row `row` of D is written by the tile (M-grouped layouts leave padding untouched).
__device__ __forceinline__ bool row_written(const Tile& tile, const Problem& p, int row) {
    if (row >= tile.row_end) return false;
    if constexpr (GROUPING == 1) {
        if (!p.psum) return __ldg(p.layout + row) >= 0;
    }
    return true;
}

__device__ __forceinline__ void arrive_on_leader(uint32_t bar) {
    if constexpr (CLUSTER == 1) mbar_arrive(bar); else mbar_arrive_on(bar, 0);
}

// C may be D itself: each element is read before the same thread's step stores it.
__device__ __forceinline__ float load_c(const void* c, int c_fp32, long long offset) {
    return c_fp32 ? static_cast<const float*>(c)[offset]
                  : __bfloat162float(static_cast<const __nv_bfloat16*>(c)[offset]);
}

__device__ __forceinline__ void store_d(void* d, long long offset, float v) {
    if constexpr (D_FP32) static_cast<float*>(d)[offset] = v;
    else static_cast<__nv_bfloat16*>(d)[offset] = __float2bfloat16_rn(v);
}

// Byte offset of 16-byte unit `unit` of staging row `row` under the map's swizzle.
__device__ __forceinline__ uint32_t staged(int row, int unit) {
    const int mix = D_FP32 ? (row & 7) : ((row >> 1) & 3);
    return row * (32 * D_ES) + ((unit ^ mix) * 16);
}

extern "C" __global__ void __launch_bounds__(256, 1)
KERNEL_NAME(const __grid_constant__ CUtensorMap map_x,    // X: [G, rows, K] or [G, K, rows]
            const __grid_constant__ CUtensorMap map_y,    // Y: likewise
            const __grid_constant__ CUtensorMap map_sfx,  // X scales: int32 [G, K / 512, rows]
            const __grid_constant__ CUtensorMap map_sfy,  // Y scales
            const __grid_constant__ CUtensorMap map_d,    // D: [G, M, N], box [1, rows, 32]
            void* d, long long ldd, long long d_stride_g,
            const void* c, long long ldc, long long c_stride_g, int c_fp32,
            int m, int n, int k, int groups, const int* __restrict__ grouped_layout, int psum) {
    extern __shared__ uint8_t smem_raw[];
    // align the dynamic window by hand (the launch asks for 1024 spare bytes)
    const uint32_t raw = smem_addr(smem_raw);
    const uint32_t base = (raw + 1023u) & ~1023u;
    uint8_t* smem = smem_raw + (base - raw);
    const uint32_t bar_full = base + OFF_BAR, bar_empty = bar_full + STAGES * 8;
    const uint32_t bar_ready = bar_empty + STAGES * 8;  // leader: operands (and scales) of a stage
    const uint32_t bar_tmem_full = bar_ready + STAGES * 8, bar_tmem_empty = bar_tmem_full + 16;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const uint32_t rank = CLUSTER == 1 ? 0 : cluster_rank();
    const Problem p{m, n, k, groups, grouped_layout, psum};
    const int tiles = num_tiles(p);
    const int first = blockIdx.x / CLUSTER, step = gridDim.x / CLUSTER;

    if constexpr (CLUSTER == 2) cluster_sync();  // the peer runs before anything touches it
    if (warp == 0 && lane == 0) {
        tma_prefetch(&map_x);
        tma_prefetch(&map_y);
        if constexpr (IS_FP8) {
            tma_prefetch(&map_sfx);
            tma_prefetch(&map_sfy);
        }
        if constexpr (TMA_STORE) tma_prefetch(&map_d);
    } else if (warp == 1 && lane == 0) {
        for (int s = 0; s < STAGES; ++s) {
            mbar_init(bar_full + s * 8, 1);
            mbar_init(bar_empty + s * 8, 1);  // one tcgen05.commit per stage
            mbar_init(bar_ready + s * 8, CLUSTER);  // one relay arrival per CTA
        }
        for (int a = 0; a < 2; ++a) {
            mbar_init(bar_tmem_full + a * 8, 1);
            mbar_init(bar_tmem_empty + a * 8, 4 * CLUSTER);  // every epilogue warp of the pair
        }
        mbar_init_fence();
    } else if (warp == 2) {
        tmem_alloc(base + OFF_SLOT, TMEM_COLS);
    }
    tc_fence_before();
    if constexpr (CLUSTER == 2) cluster_sync(); else __syncthreads();
    tc_fence_after();
    const uint32_t tmem_base = *reinterpret_cast<volatile uint32_t*>(smem + OFF_SLOT);

    if (warp == 0) {  // ---------------- TMA producer ----------------
        if (lane == 0) {
            int stage = 0, fills = 0;
            uint32_t phase = 0;
            for (int t = first; t < tiles; t += step) {
                Tile tile;
                if (!tile_at(t, p, tile)) continue;
                const int a_g = GROUPING == 2 ? tile.g : 0;
                const int b_g = GROUPING == 1 || GROUPING == 2 ? tile.g : 0;
                const int x_row = SWAP_AB ? tile.n0 : tile.row0 + rank * X_ROWS;
                const int y_row = SWAP_AB ? tile.row0 : tile.n0 + rank * Y_ROWS;
                const int y_sf_row = SWAP_AB ? tile.row0 : tile.n0;  // all UMMA_N rows, every CTA
                const int x_g = SWAP_AB ? b_g : a_g, y_g = SWAP_AB ? a_g : b_g;
                for (int kb = 0; kb < tile.num_kb; ++kb, ++fills) {
                    const uint32_t full = bar_full + stage * 8;
                    const bool scales = IS_FP8 && kb % 4 == 0;  // a word holds 4 K blocks
                    mbar_wait(bar_empty + stage * 8, phase ^ 1);
                    mbar_arrive_expect_tx(full, X_BYTES + Y_BYTES + (scales ? SF_TX_BYTES : 0));
                    const int kk = tile.k0 + kb * BLOCK_K;
                    load_tile<X_K_MAJOR, X_ROWS>(base + OFF_X + stage * X_BYTES, &map_x, full,
                                                 x_row, kk, x_g);
                    load_tile<Y_K_MAJOR, Y_ROWS>(base + OFF_Y + stage * Y_BYTES, &map_y, full,
                                                 y_row, kk, y_g);
                    if (scales) {
                        const int word = kk / (4 * BLOCK_K);
                        tma_load_3d(base + sfx_offset(stage), &map_sfx, full, x_row, word, x_g);
                        tma_load_3d(base + sfy_offset(stage), &map_sfy, full, y_sf_row, word, y_g);
                    }
                    if (++stage == STAGES) { stage = 0; phase ^= 1; }
                }
            }
            // Drain: the last commits (multicast by the leader of a pair) must have landed
            // before this CTA's shared memory goes away.
            for (int f = max(fills, STAGES); f < fills + STAGES; ++f)  // releases of fills f - STAGES
                mbar_wait(bar_empty + (f % STAGES) * 8, ((f / STAGES) & 1) ^ 1);
        }
        __syncwarp();
    } else if (warp == 1) {  // ---------------- MMA issuer ----------------
        if (lane == 0 && rank == 0) {
            int stage = 0, used = 0;
            uint32_t phase = 0;
            for (int t = first; t < tiles; t += step) {
                Tile tile;
                if (!tile_at(t, p, tile) || tile.num_kb == 0) continue;
                const int acc = used & 1;
                mbar_wait(bar_tmem_empty + acc * 8, ((used >> 1) & 1) ^ 1);
                ++used;
                tc_fence_after();
                const uint32_t d_tmem = tmem_base + acc * UMMA_N;
                for (int kb = 0; kb < tile.num_kb; ++kb) {
                    mbar_wait(bar_ready + stage * 8, phase);
                    tc_fence_after();
                    if (IS_FP8 && kb % 4 == 0) {  // this stage brought the next 4 blocks' scales
                        tmem_copy_scales(tmem_base + SFX_COL, scale_desc(base + sfx_offset(stage)));
                        #pragma unroll
                        for (int i = 0; i < SF_Y_WORDS / 128; ++i)
                            tmem_copy_scales(tmem_base + SFY_COL + 4 * i,
                                             scale_desc(base + sfy_offset(stage, i)));
                    }
                    const uint64_t dx = tile_desc<X_K_MAJOR>(base + OFF_X + stage * X_BYTES);
                    const uint64_t dy = tile_desc<Y_K_MAJOR>(base + OFF_Y + stage * Y_BYTES);
                    #pragma unroll
                    for (int s = 0; s < K_STEPS; ++s) {
                        const uint64_t ax = dx + (s * k_step_bytes<X_K_MAJOR>() >> 4);
                        const uint64_t ay = dy + (s * k_step_bytes<Y_K_MAJOR>() >> 4);
                        const uint32_t accumulate = kb > 0 || s > 0;
                        if constexpr (IS_FP8)
                            mma_fp8_block_scaled(d_tmem, ax, ay, IDESC | scale_ids(kb),
                                                 accumulate, tmem_base + SFX_COL,
                                                 tmem_base + SFY_COL);
                        else
                            mma_bf16(d_tmem, ax, ay, IDESC, accumulate);
                    }
                    tmem_commit(bar_empty + stage * 8);  // the stage may be refilled
                    if (++stage == STAGES) { stage = 0; phase ^= 1; }
                }
                tmem_commit(bar_tmem_full + acc * 8);  // the accumulator is complete
            }
            // Drain: wait for the epilogues (of both CTAs) to release the last accumulators.
            for (int i = max(used, 2); i < used + 2; ++i)  // releases of uses i - 2
                mbar_wait(bar_tmem_empty + (i & 1) * 8, ((i >> 1) & 1) ^ 1);
        }
        __syncwarp();
    } else if (warp == 2) {  // ---------------- scale transposer and stage relay ----------------
        int stage = 0;
        uint32_t phase = 0;
        for (int t = first; t < tiles; t += step) {
            Tile tile;
            if (!tile_at(t, p, tile)) continue;
            for (int kb = 0; kb < tile.num_kb; ++kb) {
                mbar_wait(bar_full + stage * 8, phase);
                if (IS_FP8 && kb % 4 == 0) {
                    transpose_scales(reinterpret_cast<uint32_t*>(smem + sfx_offset(stage)), lane);
                    #pragma unroll
                    for (int i = 0; i < SF_Y_WORDS / 128; ++i)
                        transpose_scales(reinterpret_cast<uint32_t*>(smem + sfy_offset(stage, i)), lane);
                    fence_async_shared();  // tcgen05.cp reads them through the async proxy
                }
                __syncwarp();
                if (lane == 0) arrive_on_leader(bar_ready + stage * 8);
                if (++stage == STAGES) { stage = 0; phase ^= 1; }
            }
        }
    } else if (warp >= 4) {  // ---------------- epilogue ----------------
        const int q = warp % 4;  // TMEM lane quarter this warp may read
        const uint32_t tmem_quarter = tmem_base + (static_cast<uint32_t>(32 * q) << 16);
        int used = 0, buffer = 0;
        for (int t = first; t < tiles; t += step) {
            Tile tile;
            if (!tile_at(t, p, tile)) continue;
            const bool has_acc = tile.num_kb > 0;
            const int acc = used & 1;
            if (has_acc) {
                mbar_wait(bar_tmem_full + acc * 8, (used >> 1) & 1);
                ++used;
                tc_fence_after();
            }
            const int dg = GROUPING == 3 ? tile.g : 0;
            const long long d_group = GROUPING == 2 || GROUPING == 3 ? tile.g * d_stride_g : 0;
            const long long c_group = GROUPING == 3 ? tile.g * c_stride_g : 0;
            const int warp_row0 = tile.row0 + rank * X_ROWS + 32 * q;  // without swap: its 32 rows
            #pragma unroll 1
            for (int chunk = 0; chunk < CHUNKS; ++chunk) {
                uint32_t r[EPI];
                if (has_acc) {
                    tmem_load<EPI>(tmem_quarter + acc * UMMA_N + chunk * EPI, r);
                    tmem_wait_load();
                    if (chunk == CHUNKS - 1) {  // every column of the accumulator is in registers
                        tc_fence_before();
                        __syncwarp();
                        if (lane == 0) arrive_on_leader(bar_tmem_empty + acc * 8);
                    }
                } else {
                    #pragma unroll
                    for (int j = 0; j < EPI; ++j) r[j] = 0;
                }
                // element j of this lane is D[row(j), col(j)]
                const int row_base = SWAP_AB ? tile.row0 + chunk * EPI : warp_row0 + lane;
                const int col_base = SWAP_AB ? tile.n0 + 32 * q + lane : tile.n0 + chunk * EPI;
                float v[EPI];
                #pragma unroll
                for (int j = 0; j < EPI; ++j) {
                    const int row = SWAP_AB ? row_base + j : row_base;
                    const int col = SWAP_AB ? col_base : col_base + j;
                    v[j] = __uint_as_float(r[j]);
                    if (c != nullptr && row < m && col < n)
                        v[j] += load_c(c, c_fp32, c_group + row * ldc + col);
                }
                if constexpr (TMA_STORE) {
                    const uint32_t stage_buf = OFF_CD + (q * 2 + buffer) * STORE_BYTES;
                    if (lane == 0) bulk_wait_read<1>();  // the store of two steps ago left this buffer
                    __syncwarp();
                    if constexpr (SWAP_AB) {  // lane = column, j = row
                        #pragma unroll
                        for (int j = 0; j < EPI; ++j) {
                            uint8_t* at = smem + stage_buf + staged(j, lane * D_ES / 16) + (lane * D_ES) % 16;
                            if constexpr (D_FP32) *reinterpret_cast<float*>(at) = v[j];
                            else *reinterpret_cast<__nv_bfloat16*>(at) = __float2bfloat16_rn(v[j]);
                        }
                    } else {  // lane = row, j = column: whole 16-byte units
                        #pragma unroll
                        for (int u = 0; u < EPI * D_ES / 16; ++u) {
                            uint4 packed;
                            if constexpr (D_FP32) {
                                packed = make_uint4(__float_as_uint(v[4 * u]), __float_as_uint(v[4 * u + 1]),
                                                    __float_as_uint(v[4 * u + 2]),
                                                    __float_as_uint(v[4 * u + 3]));
                            } else {
                                __nv_bfloat162 h[4];
                                #pragma unroll
                                for (int i = 0; i < 4; ++i)
                                    h[i] = __floats2bfloat162_rn(v[8 * u + 2 * i], v[8 * u + 2 * i + 1]);
                                packed = *reinterpret_cast<uint4*>(h);
                            }
                            *reinterpret_cast<uint4*>(smem + stage_buf + staged(lane, u)) = packed;
                        }
                    }
                    fence_async_shared();  // generic-proxy writes, read next by the TMA store
                    __syncwarp();
                    if (lane == 0) {
                        const int col0 = SWAP_AB ? tile.n0 + 32 * q : tile.n0 + chunk * EPI;
                        const int row0 = SWAP_AB ? tile.row0 + chunk * EPI : warp_row0;
                        tma_store_3d(&map_d, base + stage_buf, col0, row0, dg);  // clipped at M and N
                        bulk_commit();
                    }
                    buffer ^= 1;
                } else {  // M-grouped: only the rows of an expert are written
                    #pragma unroll
                    for (int j = 0; j < EPI; ++j) {
                        const int row = SWAP_AB ? row_base + j : row_base;
                        const int col = SWAP_AB ? col_base : col_base + j;
                        if (col < n && row_written(tile, p, row))
                            store_d(d, d_group + row * ldd + col, v[j]);
                    }
                }
            }
        }
        if constexpr (TMA_STORE) {
            if (lane == 0) bulk_wait_all();  // shared memory must outlive the last store
        }
        __syncwarp();
    }

    tc_fence_before();
    if constexpr (CLUSTER == 2) cluster_sync(); else __syncthreads();
    if (warp == 2) {
        tc_fence_after();
        tmem_dealloc(tmem_base, TMEM_COLS);
    }
}

}  // namespace dgreg_sm100
