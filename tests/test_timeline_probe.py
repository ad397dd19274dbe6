"""The timeline probe (`benchmarks/timeline_probe_sm90.py`) takes the sm90 kernel apart by
patching its text: each variant replaces snippets that must occur exactly once in the shipped
kernel. A kernel change that moves such a snippet breaks the variant only when someone next
runs it on a GPU; these tests find it on the CPU, and compile the variants whose patches
restructure a loop."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest.importorskip("dgreg_sm90", reason="the dgreg-sm90 distribution is not installed")

from dgreg_sm90 import codegen, launch
from dgreg_sm90.config import Sm90GemmConfig

from dgreg.jit import compile_source, tma

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

# every kernel variant the probe's docstring names (prefetch variants with one distance)
KERNEL_VARIANTS = ("nomath", "noload", "empty", "trace", "nohint", "onefence", "noregs",
                   "nopromo", "keepbase", "nowait", "n64", "halves", "halfpromo", "selfpromo",
                   "krot", "krot1", "noa", "nob", "burst2", "pf4", "pfh4", "pfa4", "lpf4",
                   "lpa4", "bpf4", "wpf4", "wpa4", "wpu4", "nomath+wpf4", "noload+halves")


@pytest.fixture
def probe(monkeypatch):
    """The probe module; whatever `use` changes (the code generator's header, the tensor
    maps' default L2 promotion, the launch for the prefetch variants) is put back after."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    monkeypatch.setattr(codegen, "header", codegen.header)
    monkeypatch.setattr(launch, "gemm_launch", launch.gemm_launch)
    monkeypatch.setitem(tma.tensor_map.__kwdefaults__, "l2_promotion",
                        tma.tensor_map.__kwdefaults__["l2_promotion"])
    import timeline_probe_sm90

    return timeline_probe_sm90


@pytest.mark.parametrize("variant", KERNEL_VARIANTS)
def test_each_probe_variant_patches_the_shipped_kernel(probe, variant):
    shipped = codegen.header("sm90_gemm.cuh")
    probe.use(variant)  # a snippet not found exactly once: SystemExit naming it
    patched = codegen.header("sm90_gemm.cuh")
    label, _, text = patched.partition("\n")
    assert label == f"// timeline probe variant {variant}"
    assert text != shipped


@pytest.mark.parametrize("variant", ("base", "readflush", "promo128", "promo0"))
def test_host_side_variants_leave_the_kernel_as_shipped(probe, variant):
    shipped = codegen.header("sm90_gemm.cuh")
    probe.use(variant)
    assert codegen.header("sm90_gemm.cuh") == shipped


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="needs nvcc on PATH")
@pytest.mark.parametrize("variant", ("trace", "halves", "nowait", "krot"))
def test_loop_restructuring_variants_compile(probe, variant, tmp_path):
    probe.use(variant)
    configs = [Sm90GemmConfig(256, 128, 3, 132)]
    if variant != "halves":  # (its m64n64 wrapper asserts 128-column tiles)
        configs.append(Sm90GemmConfig(64, 32, 16, 132, split_k=2))
    for i, cfg in enumerate(configs):
        source = codegen.gemm_source(cfg)
        assert f"timeline probe variant {variant}" in source.headers["sm90_gemm.cuh"]
        assert compile_source(source, tmp_path / str(i)).cubin
