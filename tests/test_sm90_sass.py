"""Every config the sm90 heuristics pick for the conformance suite's shapes compiles with the
real nvcc for sm_90a, uses the tensor-core instructions of its dtype (QGMMA for FP8, HGMMA for
BF16) and spills nothing."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("dgreg_sm90", reason="the dgreg-sm90 distribution is not installed")

from dgreg_sm90 import codegen
from dgreg_sm90.config import Sm90GemmConfig
from plugin_helpers import conformance_resolutions

import dgreg
from dgreg import config
from dgreg.jit import KernelCache, build, compile_source
from dgreg.registry import get_registry
from dgreg.sass import disassemble, find_tool, summarize
from dgreg.sass.inspect import listing

pytestmark = pytest.mark.skipif(shutil.which("nvcc") is None, reason="needs nvcc on PATH")


def _need_cuobjdump() -> None:
    try:
        find_tool("cuobjdump")
    except dgreg.DgregError as exc:
        pytest.skip(str(exc))


def _compiled(cfg: Sm90GemmConfig, tmp_path):
    """``cfg``'s kernel built with the real nvcc (skips without cuobjdump to read it back)."""
    _need_cuobjdump()
    return compile_source(codegen.gemm_source(cfg), tmp_path)


def _sass(cfg: Sm90GemmConfig, tmp_path) -> str:
    return disassemble(_compiled(cfg, tmp_path).cubin)


def _sm90_plans():
    plans = {}
    for res, case_id in conformance_resolutions("sm90", "h100"):
        # one compile per distinct source (the grid size is not in it)
        plans.setdefault(codegen.gemm_source(res.choice.config).code, (res, case_id))
    return plans


def test_every_picked_config_compiles_with_qgmma_and_no_spills(tmp_path):
    _need_cuobjdump()
    plans = _sm90_plans()
    assert len(plans) >= 10, "the suite's FP8 NT shapes should need many configs"
    cache = KernelCache(tmp_path)
    with config.scope(DGREG_PLUGINS=("sm90",)):
        registry = get_registry()

        def compile_one(item):
            res, case_id = item
            built = build(registry, res.chosen, res.spec, res.choice.config, res.device, cache)
            return case_id, res.choice.config, built

        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(compile_one, plans.values()))
    for case_id, cfg, built in results:
        summary = summarize(disassemble(built.cubin))
        tensor_core = "QGMMA" if cfg.dtype == "fp8" else "HGMMA"
        assert summary.count(tensor_core) >= 4, f"{case_id} {cfg!r}: no {tensor_core} in the SASS"
        assert summary.local_memory == 0, f"{case_id} {cfg!r}: local memory (spills)"
        assert not built.ptxas.spills, f"{case_id} {cfg!r}: ptxas reports spills"
        log = (built.entry.path / "compile.log").read_text()
        for warning in ("C7508", "C7510", "C7511", "C7517"):  # setmaxnreg ignored, wgmma serialised
            assert warning not in log, f"{case_id} {cfg!r}: ptxas warning {warning}"


@pytest.mark.parametrize("elem_bytes", [1, 2])
def test_transpose_kernel_compiles_with_vector_accesses_and_no_local_memory(tmp_path, elem_bytes):
    _need_cuobjdump()
    from dgreg_sm90 import transpose

    built = compile_source(transpose.source(elem_bytes), tmp_path)
    sass = disassemble(built.cubin)
    summary = summarize(sass)
    assert summary.local_memory == 0
    # 16-byte global loads and stores on the fast path
    assert "LDG.E.128" in sass and "STG.E.128" in sass


@pytest.mark.parametrize("cfg", [
    Sm90GemmConfig(256, 128, 3, 132, multicast="a"),
    Sm90GemmConfig(64, 64, 8, 132, split_k=2, multicast="b"),
    Sm90GemmConfig(128, 112, 5, 132, dtype="bf16", grouped=True, masked=True, multicast="a"),
], ids=repr)
def test_multicast_kernels_load_through_the_cluster_and_fence_only_at_its_barriers(cfg, tmp_path):
    """Each CTA multicasts its half of the shared tile; stages go back to both CTAs through
    remote mbarrier arrivals with no GPU-wide memory barrier per arrival (an earlier version,
    with arrivals released at cluster scope, had one in the K loop and ran 1.5-2x slower)."""
    built = _compiled(cfg, tmp_path)
    sass = disassemble(built.cubin)
    summary = summarize(sass)
    assert summary.local_memory == 0
    assert "UTMALDG.2D.MULTICAST" in sass
    assert "SYNCS.ARRIVE.TRANS64.RED" in sass  # the arrival on the peer's barrier
    cluster_barriers = sass.count("UCGABAR_ARV")
    assert cluster_barriers >= 2  # after the barriers' set-up, before exiting
    assert sass.count("MEMBAR.ALL.GPU") <= cluster_barriers + (2 if cfg.split_k > 1 else 0)


@pytest.mark.parametrize("cfg", [Sm90GemmConfig(64, 128, 7, 132, split_k=2, kpair=True),
                                 Sm90GemmConfig(64, 160, 5, 132, sfb_rows=True, out_f32=True,
                                                with_c=True, kpair=True)], ids=repr)
def test_kpair_kernels_hand_totals_over_between_two_math_warpgroups(cfg, tmp_path):
    """Two math warpgroups of 128 threads each meet at the two barriers of the hand-over
    (256 threads); the epilogue's barrier counts the first warpgroup only (128)."""
    sass = _sass(cfg, tmp_path)
    summary = summarize(sass)
    assert summary.local_memory == 0 and summary.count("QGMMA") >= 4
    assert "BAR.SYNC.DEFER_BLOCKING 0x2, 0x100" in sass
    assert "BAR.SYNC.DEFER_BLOCKING 0x3, 0x100" in sass
    if cfg.split_k > 1:
        assert "BAR.SYNC.DEFER_BLOCKING 0x1, 0x80" in sass


@pytest.mark.parametrize("cfg", [Sm90GemmConfig(64, 64, 12, 132, split_k=2),
                                 Sm90GemmConfig(128, 160, 5, 132),
                                 Sm90GemmConfig(256, 128, 3, 132)], ids=repr)
def test_1d2d_b_scales_come_through_the_ring_for_one_sub_tile_per_warpgroup(cfg, tmp_path):
    """With one 64-row sub-tile per warpgroup the producer copies each stage's B block scales
    (two, or three when block_n > 128) into shared memory and the stage's barrier waits for
    them: no global load of scales is left in the math warps. 256-row tiles read them from
    global memory as the K block starts (their rings measured faster that way)."""
    sass = _sass(cfg, tmp_path)
    assert summarize(sass).local_memory == 0
    if cfg.block_m == 256:
        assert "LDGSTS" not in sass and "LDG.E.CONSTANT" in sass
        return
    assert sass.count("LDGSTS.E ") == (3 if cfg.block_n > 128 else 2)
    assert "ARRIVES.LDGSTSBAR" in sass  # the copies count towards the stage's barrier
    assert "LDG.E.CONSTANT" not in sass


@pytest.mark.parametrize("cfg, hinted", [
    (Sm90GemmConfig(64, 32, 16, 132), True),
    (Sm90GemmConfig(256, 128, 3, 132, grouped=True, masked=True), True),
    (Sm90GemmConfig(256, 128, 3, 132, multicast="b"), False),
    (Sm90GemmConfig(128, 128, 4, 132, grouped=True), False)], ids=repr)
def test_b_tiles_of_few_m_blocks_load_under_an_evict_first_policy(cfg, hinted, tmp_path):
    """Dense, K-grouped and masked kernels carry a second TMA load of the B tile with an L2
    cache policy (taken when at most B_ONCE_BLOCKS m-blocks read each B tile); contiguous
    M-grouped kernels, whose experts' sizes are unknown, and pairs sharing B load it plainly."""
    sass = _sass(cfg, tmp_path)
    loads = [line for line in sass.splitlines() if "UTMALDG" in line]
    with_policy = [line for line in loads if "desc[" in line]
    assert len(with_policy) == (1 if hinted else 0), loads
    assert len(loads) - len(with_policy) >= 2  # A (and its scales) plainly, B otherwise


@pytest.mark.parametrize("cfg, stores", [
    (Sm90GemmConfig(256, 88, 4, 132), 1),
    (Sm90GemmConfig(64, 104, 8, 132, split_k=2), 1),
    (Sm90GemmConfig(128, 112, 4, 132, grouped=True, masked=True), 1),
    (Sm90GemmConfig(256, 128, 3, 132, grouped=True), 2),
    (Sm90GemmConfig(128, 112, 4, 132, out_f32=True), 0)], ids=repr)
def test_staged_epilogues_store_tiles_of_every_width_through_the_tma(cfg, stores, tmp_path):
    """A BF16 D without C leaves through TMA stores whatever block_n is: one unswizzled box
    per tile, or one per 64-column swizzled chunk; FP32 D is stored from registers. M-grouped
    kernels keep the threads' 16-byte stores for tiles with rows that must stay untouched;
    every staged kernel keeps 4-byte stores for a D whose rows are not 16-byte aligned. The
    tile is staged by stmatrix: per 64-row sub-tile, one x4 per two 8-column chunks and an x2
    for an odd last one."""
    sass = _sass(cfg, tmp_path)
    lines = sass.splitlines()
    assert sum("UTMASTG" in line for line in lines) == stores, cfg
    staged = summarize(sass).count("STSM")
    assert staged == (cfg.m_sub * ((cfg.block_n // 8 + 1) // 2) if stores else 0), staged
    if stores:
        assert any("STG.E " in line for line in lines), "no 4-byte stores for unaligned rows"
        wide = any("STG.E.128 " in line for line in lines)
        assert wide == cfg.grouped, "16-byte stores: M-grouped tiles with untouched rows only"


@pytest.mark.parametrize("cfg", [Sm90GemmConfig(256, 88, 4, 132), Sm90GemmConfig(128, 176, 4, 132),
                                 Sm90GemmConfig(256, 64, 4, 132),
                                 Sm90GemmConfig(256, 112, 3, 132, grouped=True, masked=True)],
                         ids=repr)
def test_1d2d_promotion_has_no_run_time_scale_choice(cfg, tmp_path):
    """The 1d2d K loop is instantiated once per split of the tile between B scale blocks
    (codegen.split_firsts): each copy promotes with one FFMA per accumulator, its scale
    products formed once (two per scale block and sub-tile), and no select of a scale per
    column chunk."""
    sass = _sass(cfg, tmp_path)
    summary = summarize(sass)
    copies = len(codegen.split_firsts(cfg.block_n))
    assert summary.local_memory == 0
    assert summary.count("QGMMA") == 4 * cfg.m_sub * copies
    assert summary.count("FFMA") == cfg.block_n // 2 * cfg.m_sub * copies
    assert "FSEL" not in sass
    # scale products: at most 2 rows x 3 blocks per sub-tile and copy (epilogue FMULs aside)
    assert summary.count("FMUL") <= 6 * cfg.m_sub * copies + 8


@pytest.mark.parametrize("cfg", [Sm90GemmConfig(128, 128, 4, 132, inflight=True),
                                 Sm90GemmConfig(64, 120, 8, 132, split_k=2, inflight=True),
                                 Sm90GemmConfig(128, 112, 6, 132, grouped=True, masked=True,
                                                inflight=True)], ids=repr)
def test_fp8_inflight_keeps_one_k_block_of_wgmma_running_during_the_promotion(cfg, tmp_path):
    """FP8 inflight: the K loop issues a block's wgmma before it waits for the previous
    block's (a wait that leaves one group pending), with four issue and five promotion sites
    per copy of the loop (the first block, two per turn of the loop, the last one or two), no
    spills and no ptxas warning that it serialised the wgmma."""
    built = _compiled(cfg, tmp_path)
    sass = disassemble(built.cubin)
    summary = summarize(sass)
    copies = len(codegen.split_firsts(cfg.block_n))
    assert summary.local_memory == 0
    assert "WARPGROUP.DEPBAR.LE gsb0, 0x1" in sass
    assert summary.count("QGMMA") == 4 * 4 * copies
    assert summary.count("FFMA") == 5 * cfg.block_n // 2 * copies
    for warning in ("C7508", "C7510", "C7511", "C7514", "C7517"):
        assert warning not in built.ptxas_report, warning


@pytest.mark.parametrize("cfg", [Sm90GemmConfig(256, 104, 3, 132),
                                 Sm90GemmConfig(256, 72, 4, 132),
                                 Sm90GemmConfig(256, 96, 3, 132, grouped=True),
                                 Sm90GemmConfig(256, 80, 3, 132, grouped=True, masked=True)],
                         ids=repr)
def test_fp8_256_row_tiles_up_to_104_columns_keep_both_sub_tiles_in_flight(cfg, tmp_path):
    """PAIR: a 256-row FP8 tile up to 104 columns wide issues both 64-row sub-tiles' groups
    into their own partials, then waits for the first alone (one group left pending) and
    promotes it while the second runs; no spills in 240 registers and no ptxas warning that
    it serialised the wgmma."""
    built = _compiled(cfg, tmp_path)
    sass = disassemble(built.cubin)
    summary = summarize(sass)
    copies = len(codegen.split_firsts(cfg.block_n))
    assert summary.local_memory == 0
    assert "WARPGROUP.DEPBAR.LE gsb0, 0x1" in sass
    assert summary.count("QGMMA") == 2 * 4 * copies
    assert summary.count("FFMA") == 2 * cfg.block_n // 2 * copies
    for warning in ("C7508", "C7510", "C7511", "C7514", "C7517"):
        assert warning not in built.ptxas_report, warning


def test_fp8_256_row_tiles_wider_than_104_columns_keep_one_group_at_a_time(tmp_path):
    """A 256 x 112 tile's totals and two partials would not fit: it waits for each
    sub-tile's group before it issues the next."""
    sass = _sass(Sm90GemmConfig(256, 112, 3, 132), tmp_path)
    assert "WARPGROUP.DEPBAR.LE gsb0, 0x1" not in sass
    assert summarize(sass).local_memory == 0


def _k_block_body(sass: str) -> list[str]:
    """The opcodes of the first K block of the kernel's math loop: from the full-stage wait
    before its first tensor-core instruction to the stage's release after it."""
    (lines,) = listing(sass).values()
    ops = [line.opcode for line in lines]
    first = next(i for i, op in enumerate(ops) if "GMMA" in op)
    start = max(i for i in range(first) if "TRYWAIT" in ops[i])
    end = next(i for i in range(first, len(ops)) if ops[i].startswith("SYNCS.ARRIVE"))
    return ops[start:end + 1]


def _not_ffma(body: list[str]) -> int:
    return sum(op != "FFMA" for op in body)


@pytest.mark.parametrize("block_n", [128, 112])
def test_m_grouped_k_loops_are_as_lean_as_the_dense_one(block_n, tmp_path):
    """The M-grouped epilogues decide per warp whether a tile's rows may be TMA-stored: a
    decision ptxas could not prove warp-uniform made every loop-carried value (stage, phase,
    shared addresses) per-thread, and each wgmma's descriptors then went through R2UR moves:
    15 more instructions per K block, 2-7% of these kernels' time on an H200
    (benchmarks/NOTES.md). Their K block must compile as the dense kernel's does, whose
    256-row tiles keep every descriptor in uniform registers (a warp-uniform warpgroup)."""
    dense = _k_block_body(_sass(Sm90GemmConfig(256, block_n, 3, 132), tmp_path / "dense"))
    assert "R2UR" not in dense, dense
    for grouping in ({"grouped": True}, {"grouped": True, "masked": True}):
        cfg = Sm90GemmConfig(256, block_n, 3, 132, **grouping)
        body = _k_block_body(_sass(cfg, tmp_path / cfg.grouping))
        r2ur = body.count("R2UR")
        assert r2ur <= dense.count("R2UR"), (cfg, r2ur)
        # (the promotion's FFMAs may fall on either side of the stage's release)
        assert _not_ffma(body) <= _not_ffma(dense) + 4, (cfg, _not_ffma(body), _not_ffma(dense))
