"""SASS tooling on real nvcc 13 cubins: ELF reading, control fields, the pass framework's
checks, and the sm90 FFMA interleave pass."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sass_kernels import ffma_run_source, no_ffma_source

import dgreg
from dgreg import SassPass, config
from dgreg.jit import KernelCache, build_source, compile_source
from dgreg.sass import control, disassemble, find_tool
from dgreg.sass.cubin import Cubin
from dgreg.sass.inspect import listing
from dgreg.sass.passes import PassResult, SassPassError, run_passes, select, verify

pytestmark = pytest.mark.skipif(shutil.which("nvcc") is None, reason="needs nvcc on PATH")


@pytest.fixture(scope="module", autouse=True)
def _tools():
    try:
        find_tool("cuobjdump")
    except dgreg.DgregError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def ffma_cubin(tmp_path_factory) -> bytes:
    return compile_source(ffma_run_source(), tmp_path_factory.mktemp("ffma")).cubin


@pytest.fixture(scope="module")
def plain_cubin(tmp_path_factory) -> bytes:
    return compile_source(no_ffma_source(), tmp_path_factory.mktemp("plain")).cubin


def test_cubin_sections_match_the_disassembly(ffma_cubin):
    cubin = Cubin(ffma_cubin)
    assert cubin.kernels() == ["ffma_run"] and cubin.sm == 90
    words = cubin.instructions("ffma_run")
    lines = listing(disassemble(ffma_cubin))["ffma_run"]
    assert len(lines) == len(words)
    for line in lines:  # the bytes at section offset + printed offset are that instruction
        assert words[line.offset // 16].low == line.low


def test_sm100_cubins_parse(tmp_path):
    cubin = Cubin(compile_source(no_ffma_source("sm_100a"), tmp_path).cubin)
    assert cubin.sm == 100 and cubin.kernels() == ["copy"]


def test_not_a_cubin():
    with pytest.raises(dgreg.DgregError, match="ELF"):
        Cubin(b"hello")


def test_reuse_fields_match_the_disassembly(ffma_cubin):
    words = Cubin(ffma_cubin).instructions("ffma_run")
    checked = 0
    for line in listing(disassemble(ffma_cubin))["ffma_run"]:
        if line.opcode != "FFMA":
            continue
        high = words[line.offset // 16].high
        for field, operand in (("reuse_a", 1), ("reuse_b", 2), ("reuse_c", 3)):
            assert control.get(high, field) == (".reuse" in line.operands[operand]), line.text
            checked += 1
    assert checked >= 3 * 64


def test_control_field_accessors():
    high = 0x050FE20000000044  # FFMA R68, R75.reuse, R77, R68 on sm_90a
    assert control.get(high, "reuse_a") == 1 and control.get(high, "reuse_b") == 0
    assert control.get(high, "stall") == 1 and control.get(high, "yield") == 1
    flipped = control.replace(high, **{"yield": 0, "reuse_a": 0})
    assert control.differing(high, flipped) == {"yield", "reuse_a"}
    assert control.replace(flipped, **{"yield": 1, "reuse_a": 1}) == high
    assert control.differing(high, high ^ 1) == {"other"}
    with pytest.raises(ValueError, match="stall takes 4 bit"):
        control.replace(high, stall=16)


def _interleave():
    pytest.importorskip("dgreg_sm90", reason="the dgreg-sm90 distribution is not installed")
    from dgreg_sm90.sass import FFMA_INTERLEAVE

    return FFMA_INTERLEAVE


def test_ffma_pass_changes_exactly_the_intended_bits(ffma_cubin):
    result = _interleave().apply(ffma_cubin)
    assert result.stats["ffma_changed"] == 18 and result.stats["ffma_runs"] == 1
    verify(ffma_cubin, result, "ffma_interleave")  # the framework's own checks
    old, new = Cubin(ffma_cubin), Cubin(result.cubin)
    changed_bytes = [i for i, (x, y) in enumerate(zip(ffma_cubin, result.cubin, strict=True))
                     if x != y]
    text = old.text("ffma_run")
    for i in changed_bytes:  # only high words of declared instructions
        offset = i - text.offset
        assert 0 <= offset < text.size and offset % 16 >= 8
        assert ("ffma_run", offset - offset % 16) in result.changed
    old_words, new_words = old.instructions("ffma_run"), new.instructions("ffma_run")
    for (_, offset), fields in result.changed.items():
        a, b = old_words[offset // 16], new_words[offset // 16]
        assert control.differing(a.high, b.high) == set(fields)
        assert control.get(a.high, "yield") == 1 and control.get(b.high, "yield") == 0
    # the run now alternates: yield without reuse, then no yield with reuse
    lines = [x for x in listing(disassemble(result.cubin))["ffma_run"] if x.opcode == "FFMA"]
    flags = [control.get(new_words[x.offset // 16].high, "yield") for x in lines[:36]]
    assert flags == [0, 1] * 18


def test_ffma_pass_is_idempotent(ffma_cubin):
    once = _interleave().apply(ffma_cubin)
    twice = _interleave().apply(once.cubin)
    assert twice.cubin == once.cubin and not twice.changed


def test_ffma_pass_leaves_a_cubin_without_ffma_runs_untouched(plain_cubin):
    result = _interleave().apply(plain_cubin)
    assert result.cubin == plain_cubin and not result.changed
    assert result.stats["ffma_runs"] == 0


def test_framework_rejects_a_pass_that_changes_more_than_it_says(ffma_cubin):
    cubin = Cubin(ffma_cubin)
    first = cubin.instructions("ffma_run")[0]

    def sloppy(data: bytes) -> PassResult:  # flips stall bits but declares only yield
        patched = Cubin(data).patched("ffma_run", {0: control.replace(first.high, stall=15)})
        return PassResult(patched, {("ffma_run", 0): frozenset({"yield"})})

    def undeclared(data: bytes) -> PassResult:  # changes an instruction it does not declare
        patched = Cubin(data).patched("ffma_run", {0: control.replace(first.high, stall=15)})
        return PassResult(patched, {})

    def opcode(data: bytes) -> PassResult:  # changes instruction bits outside the control field
        patched = Cubin(data).patched("ffma_run", {0: first.high ^ 1})
        return PassResult(patched, {("ffma_run", 0): frozenset({"yield"})})

    for bad, message in ((sloppy, "undeclared fields \\['stall'\\]"),
                         (undeclared, "outside the instructions it declared"),
                         (opcode, "undeclared fields \\['other'\\]")):
        with pytest.raises(SassPassError, match=message):
            run_passes(ffma_cubin, [SassPass(bad.__name__, 1, bad)])
    with pytest.raises(SassPassError, match="must return a PassResult"):
        run_passes(ffma_cubin, [SassPass("raw", 1, lambda data: data)])


def test_pass_selection_follows_the_setting():
    on = SassPass("on_by_default", 1, PassResult, default=True)
    off = SassPass("off_by_default", 1, PassResult)
    hopper = SassPass("hopper_only", 1, PassResult, applies=lambda arch, cc: arch == "sm_90a",
                      default=True)
    everything = [on, off, hopper]
    with config.scope(DGREG_SASS_PASSES=None):
        assert select(everything, "sm_90a", "nvcc 13.0.88") == [on, hopper]
        assert select(everything, "sm_100a", "nvcc 13.0.88") == [on]
    with config.scope(DGREG_SASS_PASSES=("off_by_default", "-on_by_default")):
        assert select(everything, "sm_90a", "nvcc 13.0.88") == [off, hopper]
    with config.scope(DGREG_SASS_PASSES=("none",)):
        assert select(everything, "sm_90a", "nvcc 13.0.88") == []


def test_pass_version_and_setting_enter_the_cache_key(tmp_path):
    interleave = _interleave()
    cache = KernelCache(tmp_path)
    plain = build_source(ffma_run_source(), cache=cache)
    v1 = build_source(ffma_run_source(), passes=(interleave,), cache=cache)
    v2 = build_source(ffma_run_source(),
                      passes=(SassPass("ffma_interleave", 2, interleave.apply),), cache=cache)
    assert len({plain.key, v1.key, v2.key}) == 3
    assert v1.entry.meta["sass_passes"][0]["pass"] == "ffma_interleave@1"
    assert v1.entry.meta["sass_passes"][0]["ffma_changed"] == 18
    assert Path(v1.entry.path / "kernel.cubin").read_bytes() == v1.cubin != plain.cubin


def test_on_the_real_sm90_kernel_nvcc_13_already_interleaves(tmp_path):
    """nvcc 13.0 alternates yield / reuse in our promotion runs itself: the pass finds almost
    nothing left to do (recorded in benchmarks/results/2026-11-21-h200-sass.md)."""
    interleave = _interleave()
    from dgreg_sm90 import codegen
    from dgreg_sm90.config import Sm90GemmConfig

    source = codegen.gemm_source(Sm90GemmConfig(256, 128, 3, 132))
    cubin = compile_source(source, tmp_path).cubin
    words = Cubin(cubin).instructions(source.entry)
    ffmas = [x for x in listing(disassemble(cubin))[source.entry] if x.opcode == "FFMA"]
    yielding = sum(1 for x in ffmas if control.get(words[x.offset // 16].high, "yield") == 0)
    assert len(ffmas) >= 128 and yielding >= len(ffmas) // 3
    result = interleave.apply(cubin)
    verify(cubin, result, "ffma_interleave")
    assert result.stats["ffma_changed"] <= 4
