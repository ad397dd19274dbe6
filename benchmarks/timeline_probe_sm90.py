"""Where an sm90 FP8 kernel's time goes: the same config timed with parts of the kernel taken
out or changed, and one launch traced with timestamps per CTA (base and the variants in
`_CORRECT` are checked against the reference before they are timed; the others give wrong
results and are timed only).

    DGREG_ARCH=h200 python benchmarks/timeline_probe_sm90.py --prebuild .jitcache   # CPU
    DGREG_PLUGINS=sm90 python benchmarks/timeline_probe_sm90.py [--variants ...] [--json F] > log
    python benchmarks/timeline_probe_sm90.py --parse log

Variants of ``sm90_gemm.cuh``: base; nomath (the math warps wait for each stage and hand it
back at once: the TMA stream alone, then the epilogue; wrong results); noload (the producer
arrives on each stage without loading it: the math alone); empty (both); nopromo (the 1d2d
promotion never runs: the wgmma groups, their waits and the ring alone); nowait (256-row
tiles wait for their wgmma once per K block, not per 64-row sub-tile; the promotion left out
as in nopromo); n64 (each m64n128k32 wgmma issued as two m64n64k32); halves (256 x 128 tiles:
four m64n64 groups a block in two partials, three promotions under the next group; see
`_HALVES_LOOP`); halfpromo and selfpromo (half the promotion's FFMAs; all of them fed from the
totals); nohint (B tiles loaded without the L2 evict-first policy); trace (base with
``printf`` of %globaltimer at the kernel's start, after the barrier set-up, at the producer's
first and last issue, at the math warps' first full stage, the end of their K loop and the end
of the kernel, and the cycles each side spent waiting on the ring). Host-side variants of the
base kernel: promo128 and promo0 (the tensor maps' L2 promotion 128 bytes or none, not 256);
readflush (the L2 flush before each call reads 256 MiB instead of writing it: the bench's
flush leaves L2 full of dirty lines, which the kernel's loads evict to HBM). burstN (N = 2,
4, ...): the producer issues its stages in runs of N consecutive K blocks (at most half the
ring). pfN, pfhN, pfaN, lpfN, lpaN, bpfN, wpfN, wpaN, wpuN: B (and A) prefetched into L2 in
various ways (see `_prefetch`, `_l2_prefetch`, `_warp_prefetch`); variants compose with "+"
(nomath+wpf4). keepbase: the shared window's base kept in a register. onefence: the split-K
hand-off with one fence per CTA. krot, krot1: each unit walks its K blocks in a rotated order
(see `_krot`). noa, nob: the producer leaves A's (B's) tiles out (with nomath: the other
operand's stream alone). ``--warm-trace`` traces each shape once more right after the first
traced launch, with nothing flushed in between. ``--config`` runs one forced config on every
shape.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

from sm90_forced import forced_plan, patch_kernel, prebuild, write_json

import dgreg

_WAIT_FULL = ("                mbar_wait(bar_full + stage * 8, phase);\n"
              "                if constexpr (SFB_RING) {")
_EXPECT = "mbar_arrive_expect_tx(full, w.valid ? STAGE_TX : SHARED_TX);"
# the producer's K loop as the kernel spells it: the loop's head (indented by the caller), the
# stage's full barrier, the wait for a free stage
_K_LOOP = "for (int kb = w.kb_begin; kb < w.kb_end; ++kb) {\n"
_STAGE_FULL = "                    const uint32_t full = bar_full + stage * 8;\n"
_WAIT_EMPTY = "                    mbar_wait(bar_empty + stage * 8, phase ^ 1);\n"
_NOMATH = [(_WAIT_FULL, "                mbar_wait(bar_full + stage * 8, phase);\n"
            "                if (true) { release_stage(bar_empty, stage, lane);"
            " if (++stage == STAGES) { stage = 0; phase ^= 1; } continue; }\n"
            "                if constexpr (SFB_RING) {")]
_NOLOAD = [(_EXPECT, "mbar_arrive(full); if (true) { if (++stage == STAGES) { stage = 0; "
            "phase ^= 1; } continue; }")]
_TRACE = [
    ('extern "C" __global__ void __launch_bounds__',
     "__device__ __forceinline__ unsigned long long probe_gt() {\n"
     '    unsigned long long t; asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t)); return t;\n'
     '}\nextern "C" __global__ void __launch_bounds__'),
    ("    uint8_t* smem = smem_raw + (base - raw);\n",
     "    uint8_t* smem = smem_raw + (base - raw);\n"
     "    const unsigned long long probe_t0 = probe_gt();\n"
     "    const long long probe_c0 = clock64();\n"),
    ("    if constexpr (CLUSTER == 2) cluster_sync(); else __syncthreads();\n",
     "    if constexpr (CLUSTER == 2) cluster_sync(); else __syncthreads();\n"
     "    const unsigned long long probe_t1 = probe_gt();\n"),
    ("        int stage = 0;\n        uint32_t phase = 0;\n",
     "        int stage = 0;\n        uint32_t phase = 0;\n"
     "        unsigned long long probe_first = 0, probe_last = 0, probe_t3 = 0, probe_t4 = 0;\n"
     "        long long probe_wait = 0;\n        int probe_n = 0;\n"),
    ("        regs_dealloc<PAIR ? 24 : 40>();\n",
     "        regs_dealloc<PAIR ? 24 : 40>();\n        const unsigned long long probe_t2 = probe_gt();\n"),
    (_WAIT_EMPTY,
     "                    { if (probe_t3 == 0) probe_t3 = probe_gt(); const long long c_ = clock64();"
     " mbar_wait(bar_empty + stage * 8, phase ^ 1); probe_wait += clock64() - c_;"
     " if (probe_t4 == 0) probe_t4 = probe_gt(); }\n"),
    (_EXPECT, _EXPECT + "\n                    probe_last = probe_gt();"
     " if (probe_n++ == 0) probe_first = probe_last;"),
    ("        }\n        if constexpr (CLUSTER == 2) {\n            __syncwarp();",
     '        printf("TLP %d %llu %llu %llu %llu %lld %d %llu %llu %llu\\n", blockIdx.x, probe_t0,'
     " probe_t1, probe_first, probe_last, probe_wait, probe_n, probe_t2, probe_t3, probe_t4);\n"
     "        }\n        if constexpr (CLUSTER == 2) {\n            __syncwarp();"),
    ("    float part[ACC];  // FP8: the partial sums of one 128-K block (unused for BF16)\n",
     "    float part[ACC];  // FP8: the partial sums of one 128-K block (unused for BF16)\n"
     "    unsigned long long probe_full = 0, probe_loop = 0;\n"
     "    long long probe_fwait = 0;\n    int probe_units = 0;\n"),
    (_WAIT_FULL,
     "                { const long long c_ = clock64(); mbar_wait(bar_full + stage * 8, phase);"
     " probe_fwait += clock64() - c_; if (probe_full == 0) probe_full = probe_gt(); }\n"
     "                if constexpr (SFB_RING) {"),
    ("            if constexpr (KPAIR) {  // the second warpgroup's totals join the first's",
     "            probe_loop = probe_gt();\n            ++probe_units;\n"
     "            if constexpr (KPAIR) {  // the second warpgroup's totals join the first's"),
    ("        if (epi_tid == 0) tma_store_wait_all();  // smem must outlive the group's last store\n"
     "    }\n",
     "        if (epi_tid == 0) tma_store_wait_all();  // smem must outlive the group's last store\n"
     "    }\n    if (threadIdx.x % 128 == 0)\n"
     '        printf("TLM %d %d %llu %llu %llu %llu %llu %lld %d %lld\\n", blockIdx.x, threadIdx.x,'
     " probe_t0, probe_t1, probe_full, probe_loop, probe_gt(), probe_fwait, probe_units,"
     " clock64() - probe_c0);\n"),
]
_NOHINT = [("const bool b_once = MULTICAST != 2", "const bool b_once = false && MULTICAST != 2")]


def _burst(n: int) -> list[tuple[str, str]]:
    """burstN: the producer issues its stages in runs of N consecutive K blocks (at most half
    the ring): before the first of a run it waits until the run's last stage is free, so
    that the N loads of a B row's adjacent 128-byte pieces reach the memory system together."""
    wait = _WAIT_EMPTY
    return [(wait,
             f"                    constexpr int BURST_ = {n} < STAGES / 2 ? {n} : (STAGES / 2 > 0 ? STAGES / 2 : 1);\n"
             "                    if ((kb - w.kb_begin) % BURST_ == 0) {\n"
             "                        const int s2_ = stage + min(BURST_, w.kb_end - kb) - 1;\n"
             "                        mbar_wait(bar_empty + (s2_ % STAGES) * 8, (phase ^ (s2_ >= STAGES ? 1u : 0u)) ^ 1);\n"
             "                    }\n" + wait)]


def _krot(consecutive: bool) -> list[tuple[str, str]]:
    """krot (krot1): each work unit walks its K blocks in a rotated order, starting at block
    (unit % grid) * blocks / grid of its range (krot1: unit % blocks), so that the CTAs
    running at once read different K blocks of A (and B columns at different offsets) rather
    than all the same one; the producer and the math warps agree on the order, the results
    stay correct (only the FP32 summation order changes)."""
    rot = ("(unit % (int)gridDim.x) % nb_" if consecutive else
           "(int)((long long)(unit % (int)gridDim.x) * nb_ / (int)gridDim.x)")
    head = _K_LOOP
    def rotated(indent: str) -> str:
        return (f"for (int kb_i = w.kb_begin; kb_i < w.kb_end; ++kb_i) {{\n"
                f"{indent}const int nb_ = w.kb_end - w.kb_begin;\n"
                f"{indent}const int kb = w.kb_begin + (kb_i - w.kb_begin + {rot}) % nb_;\n")
    producer = _STAGE_FULL
    math = ("                if (KPAIR && ((kb - w.kb_begin) & 1) != warpgroup) {"
            "  // the other warpgroup's block\n")
    # the math loop steps its B-scale pointer along K: in rotated order each block's is formed
    # from the first block's (an inner pointer of the same name)
    math_head = "for (int kb = w.kb_begin; kb < w.kb_end; ++kb, sfb_kb += sfb_stride_k) {\n"
    indent = " " * 16
    math_rotated = (f"const float* const sfb0_ = sfb_kb;\n{indent}" + rotated(indent) +
                    f"{indent}const float* sfb_kb = sfb0_ + (kb - w.kb_begin) * sfb_stride_k;\n")
    return [(head + producer, rotated(" " * 20) + producer),
            (math_head + math, math_rotated +
             math.replace("((kb - w.kb_begin) & 1)", "((kb_i - w.kb_begin) & 1)"))]


def _skip_operand(operand: str) -> list[tuple[str, str]]:
    """noa / nob: the producer leaves A's (B's) tiles out of every stage (dense, no cluster;
    wrong results): with nomath, the stream of the other operand alone."""
    expect = (_EXPECT, _EXPECT.replace("STAGE_TX :", f"STAGE_TX - {operand}_BYTES :"))
    if operand == "A":
        return [expect, ("                    else if (w.valid)\n"
                         "                        tma_load_2d(base + OFF_A",
                         "                    else if (false)\n"
                         "                        tma_load_2d(base + OFF_A")]
    return [expect, ("else if (w.valid && b_once)", "else if (false)"),
            ("                    else if (w.valid)\n                        tma_load_2d(base + OFF_B",
             "                    else if (false)\n                        tma_load_2d(base + OFF_B")]


def _prefetch(n: int, hinted: bool = False, with_a: bool = False) -> list[tuple[str, str]]:
    """pfN (pfhN, pfaN): the producer prefetches B's tiles (and A's, pfa) into L2 up to N K
    blocks ahead of the ring (``cp.async.bulk.prefetch.tensor``: no shared memory, no
    barrier), so that HBM sees more of the stream in flight than the ring holds; pfh under the
    evict-first policy of the B loads."""
    hint = ".L2::cache_hint" if hinted else ""
    arg = ", %3" if hinted else ""
    pol = ', "l"(evict_first)' if hinted else ""
    one = (f'asm volatile("cp.async.bulk.prefetch.tensor.2d.L2.global.tile{hint} [%0, {{%1, %2}}]{arg};"'
           f' :: "l"(&map_b), "r"(kq_ * BLOCK_K), "r"(w.b_row){pol} : "memory");')
    if with_a:
        one += (' asm volatile("cp.async.bulk.prefetch.tensor.2d.L2.global.tile [%0, {%1, %2}];"'
                ' :: "l"(&map_a), "r"(kq_ * BLOCK_K), "r"(w.m0) : "memory");')
    loop, head = " " * 16 + _K_LOOP, _STAGE_FULL
    return [(loop + head,
             f"                if (w.valid) for (int p_ = 0; p_ < {n}; ++p_) {{ const int kq_ = "
             f"w.kb_begin + STAGES + p_; if (kq_ < w.kb_end) {{ {one} }} }}\n" + loop + head +
             f"                    if (w.valid) {{ const int kq_ = kb + STAGES + {n}; "
             f"if (kq_ < w.kb_end) {{ {one} }} }}\n")]


# the lanes' prefetches of one chunk: line p_ of row r_ of the tile's B, pieces_ lines per row
# from K block kq_, one 128-byte line per lane and turn (rows in order, a row's lines together)
_LINE_PREFETCHES = (
    "for (int i_ = lane_; i_ < rows_ * pieces_; i_ += 32) { const int r_ = i_ / pieces_,"
    " p_ = i_ % pieces_; asm volatile(\"prefetch.global.L2 [%0];\" :: \"l\"(b_ + "
    "(long long)(w.b_row + r_) * ldc + (long long)(kq_ + p_) * 128) : \"memory\"); }")


def _l2_prefetch(pf: int, ahead: bool = False, bulk: bool = False) -> list[tuple[str, str]]:
    """lpfN (lpaN, bpfN): the producer's first warp, all 32 lanes, prefetches B into L2 in
    chunks of N K blocks per row (N * 128 contiguous bytes of each of the tile's rows), so that
    HBM sees a row's adjacent 128-byte pieces together instead of one piece per stage, one
    stage time apart. lpf: the chunk starting at the K block whose stage is being issued
    (the ring's own blocks, at most N - 1 of them ahead of it); lpa: the chunk STAGES blocks
    ahead (beyond the ring); bpf: as lpf, one ``cp.async.bulk.prefetch.L2`` per row (the TMA
    unit) instead of one ``prefetch.global.L2`` per 128-byte line. B's address and row stride
    come in the kernel's C arguments (dense BF16-D calls have no C; `_with_b_pointer`)."""
    lead = ("        if (threadIdx.x == MATH_THREADS) {\n        int stage = 0;\n")
    wait = _WAIT_EMPTY
    kq = "kb + STAGES" if ahead else "kb"
    body = _LINE_PREFETCHES
    if bulk:
        body = ("for (int r_ = lane_; r_ < rows_; r_ += 32) asm volatile("
                '"cp.async.bulk.prefetch.L2.global [%0], %1;" :: "l"(b_ + (long long)(w.b_row + r_) * ldc'
                ' + (long long)kq_ * 128), "r"(pieces_ * 128) : "memory");')
    return [(lead, "        if (threadIdx.x < MATH_THREADS + 32) {\n"
                   "        const bool leader_ = threadIdx.x == MATH_THREADS;\n"
                   "        const int lane_ = threadIdx.x % 32;\n"
                   "        const uint8_t* b_ = static_cast<const uint8_t*>(c);\n"
                   "        int stage = 0;\n"),
            (wait, wait +
             f"                    {{ const int kq_ = {kq}; if (w.valid && kq_ < w.kb_end && "
             f"(kq_ - w.kb_begin) % {pf} == 0) {{ const int rows_ = min(BLOCK_N, n - w.b_row);"
             f" const int pieces_ = min({pf}, w.kb_end - kq_); {body} }} }}\n"
             "                    if (!leader_) { if (++stage == STAGES) { stage = 0; phase ^= 1; }"
             " continue; }\n")]


def _warp_prefetch(pf: int, mode: str) -> list[tuple[str, str]]:
    """wpfN, wpaN, wpuN: as lpfN / lpaN, from the producer warpgroup's second warp, so that
    the TMA thread's warp does not diverge. The TMA thread counts the stages it has issued in
    shared memory; the prefetch warp walks the same units and K blocks and prefetches the chunk
    starting at block number i (of this CTA's walk) once the count reaches i - 1 (wpf: the
    chunk's own blocks, wpa: the chunk STAGES blocks further on). wpu: at each unit's start,
    the whole unit's B in chunks of N K blocks, in K order, unpaced."""
    end = "        }\n        if constexpr (CLUSTER == 2) {\n            __syncwarp();"
    line = _LINE_PREFETCHES
    rows = "const int rows_ = min(BLOCK_N, n - w.b_row);"
    if mode == "u":
        loop = (f"for (int kq_ = w.kb_begin; kq_ < w.kb_end; kq_ += {pf}) {{ {rows}"
                f" const int pieces_ = min({pf}, w.kb_end - kq_); {line} }}")
    else:
        shift = "STAGES" if mode == "a" else "0"
        loop = (f"for (int kb = w.kb_begin; kb < w.kb_end; ++kb, ++walked_) {{"
                f" const int kq_ = kb + {shift}; if (kq_ < w.kb_end && (kq_ - w.kb_begin) % {pf} == 0) {{"
                " while (*issued_ < walked_ - 1) __nanosleep(32);"
                f" {rows} const int pieces_ = min({pf}, w.kb_end - kq_); {line} }} }}")
    body = ("        } else if (threadIdx.x >= MATH_THREADS + 32 && threadIdx.x < MATH_THREADS + 64) {\n"
            "        const int lane_ = threadIdx.x % 32;\n"
            "        const uint8_t* b_ = static_cast<const uint8_t*>(c);\n"
            "        volatile int* issued_ = reinterpret_cast<volatile int*>(smem + OFF_FLAG + 8);\n"
            "        int walked_ = 0;\n"
            "        for (int unit = blockIdx.x / CLUSTER; unit < units; unit += gridDim.x / CLUSTER) {\n"
            "            Work w;\n"
            "            if (!unit_work(unit, rank, m_slots, n_slots, m_blocks, n_blocks, k_blocks, m, n,"
            " m_per_group, row_groups, w)) continue;\n"
            f"            {loop}\n        }}\n")
    count = [("        int stage = 0;\n        uint32_t phase = 0;\n",
              "        int stage = 0;\n        uint32_t phase = 0;\n        int count_ = 0;\n"),
             (_EXPECT, _EXPECT + " *reinterpret_cast<volatile int*>(smem + OFF_FLAG + 8) = ++count_;"),
             # the count starts at 0 before any thread reads it
             ("            mbar_init(bar_empty + s * 8, STAGE_WG * 4 * CLUSTER);\n        }\n",
              "            mbar_init(bar_empty + s * 8, STAGE_WG * 4 * CLUSTER);\n        }\n"
              "        *reinterpret_cast<volatile int*>(smem + OFF_FLAG + 8) = 0;\n")]
    return ([] if mode == "u" else count) + [(end, body + end)]


def _with_b_pointer() -> None:
    """Dense calls pass B's address and row stride (bytes) in the kernel's C arguments, for the
    L2 prefetch variants (the kernels without C never read them)."""
    import attrs
    from dgreg_sm90 import launch

    original = launch.gemm_launch
    if getattr(original, "with_b_pointer", False):
        return

    def gemm_launch(*args, **kwargs):
        spec = original(*args, **kwargs)
        inner = spec.pack

        def pack(call):
            packed = list(inner(call))
            packed[12], packed[13] = call.b.data_ptr(), call.b.stride(0) * call.b.element_size()
            return tuple(packed)
        return attrs.evolve(spec, pack=pack)

    gemm_launch.with_b_pointer = True
    launch.gemm_launch = gemm_launch


# onefence: the split-K hand-off with one GPU-scope fence, by the thread that counts, after the
# CTA barrier (and, in the last unit, after the count), instead of one in every thread before
# the count and after it (measured on an H200: no change, 0-1%; not adopted)
_ONEFENCE = [("                __threadfence();  // publish the partial before counting this unit as done\n"
              "                named_barrier(1, EPI_THREADS);\n",
              "                named_barrier(1, EPI_THREADS);\n"),
             ("                    const int done = atomicAdd(counters + w.tile, 1);\n",
              "                    __threadfence();\n"
              "                    const int done = atomicAdd(counters + w.tile, 1);\n"),
             ("                    if (last) counters[w.tile] = 0;  // ready for the next launch\n",
              "                    if (last) { counters[w.tile] = 0; __threadfence(); }\n"),
             ("                if (!*flag) continue;\n                __threadfence();  // see every other unit's partial\n",
              "                if (!*flag) continue;\n")]
# nopromo: the 1d2d promotion kept in the code but never run (a branch on an A scale no input
# has), so that the K loop is the wgmma groups, their waits and the ring alone (wrong results)
_NOPROMO = [("                        promote_split<S::first, S::second>(total[s], part, sa[s][0], sa[s][1],\n",
             "                        if (sa[s][0] == -1.5e38f) promote_split<S::first, S::second>(total[s], part, sa[s][0], sa[s][1],\n")]
# keepbase: the shared window's base made opaque to the compiler after it is computed, so that
# it stays in a register instead of being recomputed from %cluster_ctaid-derived values in every
# K block (ncu put 2.6% of a 256 x 128 kernel's samples there)
_KEEPBASE = [("    const uint32_t base = (raw + 1023u) & ~1023u;\n",
              "    uint32_t base = (raw + 1023u) & ~1023u;\n    asm volatile(\"\" : \"+r\"(base));\n")]
# noregs: no setmaxnreg (one math warpgroup: 256 threads may hold 255 registers each anyway)
_NOREGS = [("        regs_dealloc<PAIR ? 24 : 40>();\n", "\n"), ("    regs_alloc<PAIR ? 240 : 232>();\n", "\n")]
# nowait: a 256-row tile's two sub-tiles chained on one accumulator, so that each warpgroup
# waits for its wgmma once per K block instead of once per 64-row sub-tile, and only the last
# sub-tile's promotion kept in the code, behind nopromo's branch (so not composed with nopromo;
# wrong results): what the per-sub-tile wait costs the tensor core
_NOWAIT = [("                        wgmma_tile(part, da, db, kk > 0);\n",
            "                        wgmma_tile(part, da, db, kk > 0 || s > 0);\n"),
           ("                    wgmma_commit();\n                    wgmma_wait<0>();\n"
            "                    #pragma unroll\n                    for (int i = 0; i < ACC; ++i) fence_operand(part[i]);\n",
            "                    wgmma_commit();\n                    if (s == M_SUB - 1) wgmma_wait<0>();\n"
            "                    #pragma unroll\n                    for (int i = 0; i < ACC; ++i) fence_operand(part[i]);\n"),
           ("                        promote_split<S::first, S::second>(total[s], part, sa[s][0], sa[s][1],\n",
            "                        if (s == M_SUB - 1 && sa[s][0] == -1.5e38f) promote_split<S::first, S::second>(total[s], part, sa[s][0], sa[s][1],\n")]


def _with_m64n64() -> tuple[str, str]:
    """The patch that adds the m64n64 wgmma wrapper (an overload of the tile's own, on a
    32-register accumulator) to a 128-column tile's kernel."""
    from dgreg_sm90 import codegen
    anchor = "// 1d2d promotion of one 64-row sub-tile's partial sums"
    return (anchor, "static_assert(BLOCK_N == 128, \"m64n64 halves of 128-column tiles\");\n"
            + codegen.wgmma_tile(64) + anchor)


def _n64() -> list[tuple[str, str]]:
    """n64: each m64n128k32 wgmma of a 128-column tile issued as two m64n64k32 on the halves
    of its accumulator and of the B tile (right results; A read from shared memory twice as
    often): whether the wgmma's shared-memory reads bound the tensor core."""
    half = "*reinterpret_cast<float (*)[32]>(&part[{}])"
    return [_with_m64n64(),
            ("                        wgmma_tile(part, da, db, kk > 0);\n",
             f"                        wgmma_tile({half.format(0)}, da, db, kk > 0);\n"
             f"                        wgmma_tile({half.format(32)}, da,"
             " gmma_desc_k128b(b_tile + 64 * ROW_BYTES) + 2 * kk, kk > 0);\n")]


# halves: a 256 x 128 FP8 tile's K loop as four m64n64 groups per warpgroup and block (each
# 64-row sub-tile's two 64-column halves), in two 32-register partials taken in turn, so that
# three of the four promotions run while the warpgroup's next group is in flight (the registers
# of today's one 64-register partial; right results). (Keeping the next block's first group in
# flight over the last promotion made ptxas serialise every wgmma, C7514.)
_HALVES_LOOP = r"""
            if constexpr (M_SUB == 2 && BLOCK_N == 128 && IS_FP8 && !SFB_ROWS && !KPAIR) {
            static_assert(S::first == 16, "halves: one B scale block per tile");
            float pa[32], pb[32];
            auto issue = [&](float (&acc)[32], uint32_t a_tile, uint32_t b_tile) {
                #pragma unroll
                for (int i = 0; i < 32; ++i) fence_operand(acc[i]);
                wgmma_fence();
                #pragma unroll
                for (int kk = 0; kk < K_STEPS; ++kk)
                    wgmma_tile(acc, gmma_desc_k128b(a_tile) + 2 * kk, gmma_desc_k128b(b_tile) + 2 * kk,
                               kk > 0);
                wgmma_commit();
            };
            auto promote = [&](float (&t)[ACC], float (&acc)[32], int h, float x0, float x1) {
                #pragma unroll
                for (int i = 0; i < 32; ++i) fence_operand(acc[i]);
                #pragma unroll
                for (int j = 0; j < 8; ++j) {
                    t[h * 32 + 4 * j + 0] = fmaf(acc[4 * j + 0], x0, t[h * 32 + 4 * j + 0]);
                    t[h * 32 + 4 * j + 1] = fmaf(acc[4 * j + 1], x0, t[h * 32 + 4 * j + 1]);
                    t[h * 32 + 4 * j + 2] = fmaf(acc[4 * j + 2], x1, t[h * 32 + 4 * j + 2]);
                    t[h * 32 + 4 * j + 3] = fmaf(acc[4 * j + 3], x1, t[h * 32 + 4 * j + 3]);
                }
            };
            for (int kb = w.kb_begin; kb < w.kb_end; ++kb, sfb_kb += sfb_stride_k) {
                const float sb = __ldg(sfb_kb);
                mbar_wait(bar_full + stage * 8, phase);
                const float* sfa = sfa_smem + stage * BLOCK_M + wg_row0;
                const float x00 = sfa[row_in_wg] * sb, x01 = sfa[row_in_wg + 8] * sb;
                const float x10 = sfa[64 + row_in_wg] * sb, x11 = sfa[64 + row_in_wg + 8] * sb;
                const uint32_t a_tile = base + OFF_A + stage * A_BYTES + wg_row0 * ROW_BYTES;
                const uint32_t b_tile = base + OFF_B + stage * B_BYTES;
                issue(pa, a_tile, b_tile);
                issue(pb, a_tile, b_tile + 64 * ROW_BYTES);
                wgmma_wait<1>();
                promote(total[0], pa, 0, x00, x01);
                issue(pa, a_tile + 64 * ROW_BYTES, b_tile);
                wgmma_wait<1>();
                promote(total[0], pb, 1, x00, x01);
                issue(pb, a_tile + 64 * ROW_BYTES, b_tile + 64 * ROW_BYTES);
                wgmma_wait<1>();
                promote(total[1], pa, 0, x10, x11);
                wgmma_wait<0>();
                release_stage(bar_empty, stage, lane);
                promote(total[1], pb, 1, x10, x11);
                if (++stage == STAGES) { stage = 0; phase ^= 1; }
            }
            return;
            }
"""
_SFB_OFF = ("            const long long sfb_off1 = (nb1 - nb0) * sfb_stride_n,"
            " sfb_off2 = (nb2 - nb0) * sfb_stride_n;\n")


def _halves() -> list[tuple[str, str]]:
    return [_with_m64n64(), (_SFB_OFF, _SFB_OFF + _HALVES_LOOP)]


# halfpromo: the 1d2d promotion of the first half of each sub-tile's columns only; selfpromo:
# every promotion FFMA kept but fed from the totals instead of the wgmma's partial sums, but
# for the first chunk's (else ptxas drops the wgmma as dead); both wrong results: whether the
# promotion costs by its FFMAs' count or by reading the wgmma's registers
_HALFPROMO = [("    for (int j = 0; j < BLOCK_N / 8; ++j) {\n        const int blk = j < F",
               "    for (int j = 0; j < BLOCK_N / 16; ++j) {\n        const int blk = j < F")]
_SELFPROMO = [(f"fmaf(p[4 * j + {i}], ", f"fmaf(j ? t[4 * j + {i}] : p[{i}], ") for i in range(4)]


_PATCHES = {"base": [], "nomath": _NOMATH, "noload": _NOLOAD, "empty": _NOMATH + _NOLOAD,
            "trace": _TRACE, "nohint": _NOHINT, "onefence": _ONEFENCE, "noregs": _NOREGS,
            "nopromo": _NOPROMO, "keepbase": _KEEPBASE, "nowait": _NOWAIT,
            "halfpromo": _HALFPROMO, "selfpromo": _SELFPROMO}
# variants that change the host's tensor maps, not the kernel: L2 promotion of every TMA load
_PROMOTION = {"promo128": 128, "promo0": 0}
TIMED = ("base", "nohint", "readflush")
# variants whose results are right (checked against the reference before they are timed)
_CORRECT = {"base", "nohint", "readflush", "onefence", "noregs", "krot", "krot1", "promo128",
            "promo0", "keepbase", "n64", "halves"}
# (shape, forced config: "" for the heuristics' pick)
RUNS = [(("fp8", m, n, k), "") for m in (64, 128) for n, k in
        ((2112, 7168), (24576, 1536), (32768, 512), (7168, 16384), (4096, 7168), (7168, 2048))]
RUNS += [(("fp8", 4096, 2112, 7168), "")]
# M = 4096: the picks, and 256 x 128 tiles over exactly 8 waves (8448 columns)
RUNS += [(("fp8", 4096, n, k), "") for n, k in ((4096, 7168), (7168, 16384), (7168, 2048))]
RUNS += [(("fp8", 4096, 8448, 7168), "block_m=256,block_n=128,stages=3,split_k=1,kpair=0,"
          "inflight=0,multicast=0")]


_PREFETCHES = ("lpf", "lpa", "bpf", "wpf", "wpa", "wpu")
# variants of the host's side only (the base kernel): the flush, or the maps' L2 promotion
_HOST_ONLY = ("readflush", *_PROMOTION)


def _variant_patches(part: str) -> list[tuple[str, str]]:
    """The kernel patches of one variant name (see the module's docstring)."""
    if part[:3] in _PREFETCHES:
        _with_b_pointer()
        if part[0] == "w":
            return _warp_prefetch(int(part[3:]), part[2])
        return _l2_prefetch(int(part[3:]), part[:3] == "lpa", part[:3] == "bpf")
    if part.startswith("burst"):
        return _burst(int(part[5:]))
    if part.startswith("pf"):
        kind = part[2] if part[2] in "ha" else ""
        return _prefetch(int(part[2 + len(kind):]), kind == "h", kind == "a")
    if part in ("krot", "krot1"):
        return _krot(part == "krot1")
    if part in ("noa", "nob"):
        return _skip_operand(part[2].upper())
    if part == "n64":
        return _n64()
    if part == "halves":
        return _halves()
    if part in _PATCHES:
        return _PATCHES[part]
    if part in _HOST_ONLY:
        return []
    raise SystemExit(f"unknown variant {part!r}")


def use(variant: str) -> None:
    """Make the sm90 code generator emit ``variant`` of the kernel (its own cache key; parts
    joined by "+" compose) and the host build its tensor maps with the variant's L2
    promotion."""
    from dgreg.jit import tma

    parts = variant.split("+")
    promotion = [_PROMOTION[part] for part in parts if part in _PROMOTION]
    tma.tensor_map.__kwdefaults__["l2_promotion"] = promotion[-1] if promotion else 256
    patches = [patch for part in parts for patch in _variant_patches(part)]
    patch_kernel(f"timeline probe variant {variant}", patches)


def pinned(shape: tuple, forced: str) -> str:
    """The forced config string of a run (the pick spelled out when ``forced`` is empty), so
    that every variant runs the same tile."""
    if forced:
        return forced
    _, m, n, k = shape
    cfg = forced_plan(f"{shape[0]}_gemm", dgreg.Problem(m, n, k), "").choice.config
    return (f"block_m={cfg.block_m},block_n={cfg.block_n},stages={cfg.stages},"
            f"split_k={cfg.split_k},kpair={int(cfg.kpair)},inflight={int(cfg.inflight)},"
            f"multicast={cfg.multicast or 0}")


def summarise(log: str) -> None:
    """Per traced launch, in us from the first CTA's start: the medians (and last) over CTAs."""
    med = statistics.median
    for block in log.split("TLBEGIN ")[1:]:
        head, _, body = block.partition("\n")
        body = body.split("TLEND")[0]
        prod = [list(map(int, ln.split()[1:])) for ln in body.splitlines() if ln.startswith("TLP ")]
        math = [list(map(int, ln.split()[1:])) for ln in body.splitlines() if ln.startswith("TLM ")]
        if not math:
            continue
        t0 = min(r[2] for r in math)
        rate = {r[0]: r[9] / max(r[6] - r[2], 1) for r in math if r[1] == 0}  # cycles per ns
        full = [r for r in math if r[4]]
        print(f"{head}: {len(prod)} CTAs, span {(max(r[6] for r in math) - t0) / 1e3:.2f} us, "
              f"starts over {(max(r[2] for r in math) - t0) / 1e3:.2f} us, "
              f"{med(rate.values()):.2f} cycles/ns")
        print(f"  set-up {med(r[3] - r[2] for r in math) / 1e3:.2f}; producer first issue "
              f"{med(r[3] - t0 for r in prod) / 1e3:.2f}, last "
              f"{med(r[4] - t0 for r in prod) / 1e3:.2f} (max {max(r[4] - t0 for r in prod) / 1e3:.2f}),"
              f" waits {med(r[5] / rate.get(r[0], 1.8) for r in prod) / 1e3:.2f} us over "
              f"{med(r[6] for r in prod)} stages")
        if prod and len(prod[0]) > 9:  # the producer's own clock, from its CTA's start
            print(f"  producer (from its CTA's start): registers released "
                  f"{med(r[7] - r[1] for r in prod) / 1e3:.2f}, first ring wait "
                  f"{med(r[8] - r[1] for r in prod) / 1e3:.2f} to "
                  f"{med(r[9] - r[1] for r in prod) / 1e3:.2f}, first issue "
                  f"{med(r[3] - r[1] for r in prod) / 1e3:.2f}")
        print(f"  math first stage {med(r[4] - t0 for r in full) / 1e3:.2f}, K loop end "
              f"{med(r[5] - t0 for r in full) / 1e3:.2f} (max {max(r[5] - t0 for r in full) / 1e3:.2f}),"
              f" end {med(r[6] - t0 for r in math) / 1e3:.2f} (max {max(r[6] - t0 for r in math) / 1e3:.2f}),"
              f" waits on full stages {med(r[7] / rate.get(r[0], 1.8) for r in full) / 1e3:.2f} us,"
              f" units {med(r[8] for r in math)}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prebuild", metavar="DIR")
    parser.add_argument("--variants", default=",".join(TIMED), help="timed variants, base first")
    parser.add_argument("--dtype", choices=("fp8", "bf16"), default="fp8",
                        help="the dtype of the shapes (bf16: timed only, no trace)")
    parser.add_argument("--shapes", help="these shapes instead of the runs': MxNxK,...")
    parser.add_argument("--config", help="this forced config (DGREG_SM90_CONFIG's form) on "
                        "every shape instead of the runs' own")
    parser.add_argument("--warm-trace", action="store_true",
                        help="trace each shape a second time right after the first (no flush)")
    parser.add_argument("--json")
    parser.add_argument("--parse", metavar="LOG", help="summarise the traces in a run's output")
    args = parser.parse_args()
    if args.parse:
        with open(args.parse) as f:
            summarise(f.read())
        return 0
    timed = args.variants.split(",")
    runs = [((args.dtype, *shape[1:]), forced) for shape, forced in RUNS]
    if args.shapes:  # the runs' own shapes keep their forced config; others take the pick
        wanted = [tuple(map(int, s.split("x"))) for s in args.shapes.split(",")]
        known = {tuple(shape[1:]): (shape, forced) for shape, forced in runs}
        runs = [known.get(mnk, ((args.dtype, *mnk), "")) for mnk in wanted]
    runs = [(shape, pinned(shape, args.config or forced)) for shape, forced in runs]
    if ({"nomath", "noload", "empty"} & {part for v in timed for part in v.split("+")} and
            any("kpair=1" in forced for _, forced in runs)):
        raise SystemExit("the nomath, noload and empty variants do not cover kpair configs")
    if args.prebuild:
        for variant in (*timed, "trace") if args.dtype == "fp8" else timed:
            if variant in _PROMOTION:
                continue  # the base kernel
            use(variant)
            prebuild(((f"{s[0]}_gemm", dgreg.Problem(*s[1:]), f) for s, f in runs), args.prebuild)
        return 0
    import torch

    from dgreg.bench import _SUITES, _checked, _flush, kernel_time_us

    scratch = torch.empty(256 * 2**20 // 4, dtype=torch.int32, device="cuda")

    def read_flush() -> None:
        scratch.sum(dtype=torch.int64)

    rows = []
    for shape, forced in runs:
        dtype, m, n, k = shape
        case = _SUITES[dtype][0](m, n, k)
        times: dict[str, list[float]] = {}
        for _ in range(2):
            for variant in timed:
                use(variant)
                forced_plan(f"{dtype}_gemm", dgreg.Problem(m, n, k), forced)
                if all(part in _CORRECT for part in variant.split("+")):
                    _checked(case, f"{shape} {forced}")
                flush = read_flush if variant == "readflush" else _flush
                us, _ = kernel_time_us(case["ours"], flush=flush,
                                       kernel=lambda name: name.startswith("sm90"))
                times.setdefault(variant, []).append(us)
        if dtype == "fp8":  # the trace marks the FP8 K loop's stage waits
            use("trace")
            forced_plan(f"{dtype}_gemm", dgreg.Problem(m, n, k), forced)
            case["ours"]()
            torch.cuda.synchronize()
            # after the flush; then (warm) the same launch again at once: code, maps and
            # operands in L2
            for label in ("", " (warm)") if args.warm_trace else ("",):
                print(f"TLBEGIN {json.dumps([shape, forced + label])}", flush=True)
                if not label:
                    _flush()
                case["ours"]()
                torch.cuda.synchronize()
                print("TLEND", flush=True)
        mean = {v: statistics.mean(t) for v, t in times.items()}
        rows.append({"shape": list(shape), "config": forced, "us": mean, "rounds": times})
        print(f"{shape!s:26s} {forced:70s} " +
              " ".join(f"{v} {mean[v]:6.2f}" for v in timed), flush=True)
    write_json(args.json, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
