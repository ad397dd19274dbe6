"""Every config the sm100 heuristics pick for the conformance suite's shapes (on a simulated
B200) compiles with the real nvcc for sm_100a; the SASS shows the tcgen05 machinery (the MMA
of its dtype, scale copies into TMEM, TMEM allocation, TMEM loads, commits), no local memory,
and the cubin carries the tcgen05 attributes. No Blackwell GPU runs these kernels here."""

from __future__ import annotations

import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("dgreg_sm100", reason="the dgreg-sm100 distribution is not installed")

from dgreg_sm100 import codegen, heuristics
from plugin_helpers import conformance_resolutions

import dgreg
from dgreg.jit import KernelCache, build_source
from dgreg.sass import disassemble, find_tool, summarize
from dgreg.sass.cubin import Cubin


def _has_cuobjdump() -> bool:
    try:
        find_tool("cuobjdump")
    except dgreg.DgregError:
        return False
    return True


pytestmark = [
    pytest.mark.skipif(shutil.which("nvcc") is None, reason="needs nvcc on PATH"),
    pytest.mark.skipif(not _has_cuobjdump(), reason="needs cuobjdump (the nvidia-cuda-cuobjdump "
                                                    "wheel of the test extra)"),
]


def sm100_configs() -> dict[str, tuple[object, str]]:
    """Kernel source -> (config, the first case id that needs it), over every conformance
    instance the sm100 plugin claims on a B200, plus a large FP8 shape that pairs CTAs."""
    picked = [(res.choice.config, case_id)
              for res, case_id in conformance_resolutions("sm100", "b200")]
    pair = heuristics.choose("fp8", "NT", "none", "bf16", heuristics.Shape(4096, 7168, 7168), 148)
    picked.append((pair.config, "fp8 NT m4096n7168k7168 (a CTA pair)"))
    found: dict[str, tuple[object, str]] = {}
    for cfg, origin in picked:  # one compile per distinct source (the grid size is not in it)
        found.setdefault(codegen.gemm_source(cfg).code, (cfg, origin))
    return found


def cubin_attributes(path: Path) -> str:
    """``cuobjdump -elf``: the cubin's sections, symbols and EIATTR records as text."""
    command = [find_tool("cuobjdump"), "-elf", str(path)]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


def test_every_picked_config_compiles_with_tcgen05_and_no_spills(tmp_path):
    configs = sm100_configs()
    chosen = [cfg for cfg, _ in configs.values()]
    # the suite covers both dtypes, every grouping, swap-AB and CTA pairs
    assert {c.dtype for c in chosen} == {"fp8", "bf16"}
    assert {c.grouping for c in chosen} == {"none", "contiguous", "masked", "k_grouped"}
    assert {c.layout for c in chosen} >= {"NT", "NN", "TN", "TT"}
    assert any(c.swap_ab for c in chosen) and any(c.cluster == 2 for c in chosen)
    assert any(c.cluster == 2 and c.dtype == "fp8" for c in chosen)
    cache = KernelCache(tmp_path / "cache")

    def compile_one(item):
        cfg, origin = item
        return cfg, origin, build_source(codegen.gemm_source(cfg), cache=cache)

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(compile_one, configs.values()))
    for index, (cfg, origin, built) in enumerate(results):
        what = f"{origin}: {cfg!r}"
        summary = summarize(disassemble(built.cubin))
        pair = ".2CTA" if cfg.cluster == 2 else ""
        mma, other = ("UTCQMMA", "UTCHMMA") if cfg.dtype == "fp8" else ("UTCHMMA", "UTCQMMA")
        # 4 MMAs per K block (32 bytes of K each), unrolled; the pair's variant when paired
        assert summary.opcodes[mma + pair] >= 4, f"{what}: no {mma}{pair} in the SASS"
        assert summary.count(other) == 0, f"{what}: {other} in the SASS"
        if cfg.dtype == "fp8":  # scale words copied into TMEM for the block-scaled MMA
            assert summary.count("UTCCP") >= 2, f"{what}: no UTCCP"
            assert all(op.startswith(f"UTCCP.T.S{pair}.") for op in summary.opcodes
                       if op.startswith("UTCCP")), f"{what}: UTCCP of the wrong CTA group"
        else:
            assert summary.count("UTCCP") == 0, f"{what}: a BF16 kernel copies scales"
        alloc = f"UTCATOMSWS{pair}.FIND_AND_SET.ALIGN"
        assert summary.opcodes[alloc] >= 1, f"{what}: no TMEM alloc"
        assert summary.opcodes["UTCATOMSWS.AND"] >= 1, f"{what}: no TMEM dealloc"
        assert summary.opcodes["UVIRTCOUNT.DEALLOC.SMPOOL"] >= 1, f"{what}: no relinquish"
        assert summary.count("LDTM") >= 1, f"{what}: no tcgen05.ld"
        commit = "UTCBAR.2CTA.MULTICAST" if pair else "UTCBAR"  # stage and accumulator commits
        assert summary.opcodes[commit] >= 2, f"{what}: no {commit}"
        assert summary.local_memory == 0, f"{what}: local memory (spills)"
        assert not built.ptxas.spills, f"{what}: ptxas reports spills"
        cubin = Cubin(built.cubin)
        assert cubin.sm == 100 and codegen.entry(cfg) in cubin.kernels(), what
        path = tmp_path / f"{index}.cubin"
        path.write_bytes(built.cubin)
        attributes = cubin_attributes(path)
        used = "EIATTR_TCGEN05_2CTA_USED" if pair else "EIATTR_TCGEN05_1CTA_USED"
        unused = "EIATTR_TCGEN05_1CTA_USED" if pair else "EIATTR_TCGEN05_2CTA_USED"
        assert used in attributes and unused not in attributes, f"{what}: {used}"
        for attribute in ("EICOMPAT_ATTR_INST_TCGEN05_MMA", "EIATTR_RESERVED_SMEM_USED"):
            assert attribute in attributes, f"{what}: no {attribute}"
