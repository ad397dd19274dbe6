"""The sm100 plugin's source generation against golden files, reviewed by hand once.

After a deliberate change to code generation, regenerate them with

    python tests/test_sm100_codegen.py

and review the diff of tests/golden/sm100/ before committing it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("dgreg_sm100", reason="the dgreg-sm100 distribution is not installed")

from dgreg_sm100 import codegen
from dgreg_sm100.config import Sm100GemmConfig

GOLDEN = Path(__file__).resolve().parent / "golden" / "sm100"

#: file name -> a representative config: both dtypes, a CTA pair, swap-AB, MN-major operands,
#: masked and K-grouped layouts, both D dtypes
CASES = {
    "fp8_nt_pair.cu": Sm100GemmConfig("fp8", "NT", "none", "bf16", 128, 224, False, 2, 6, 148),
    "fp8_masked_swap_ab.cu": Sm100GemmConfig("fp8", "NT", "masked", "bf16", 16, 128, True, 1, 11,
                                             148),
    "bf16_tt_fp32.cu": Sm100GemmConfig("bf16", "TT", "none", "fp32", 128, 256, False, 1, 4, 148),
    "fp8_k_grouped.cu": Sm100GemmConfig("fp8", "TN", "k_grouped", "fp32", 128, 128, False, 1, 5,
                                        148),
}


def write_golden() -> None:
    GOLDEN.mkdir(parents=True, exist_ok=True)
    for name, config in CASES.items():
        (GOLDEN / name).write_text(codegen.gemm_source(config).code)


@pytest.mark.parametrize("name", sorted(CASES))
def test_source_matches_golden(name: str) -> None:
    source = codegen.gemm_source(CASES[name])
    expected = (GOLDEN / name).read_text()
    assert source.code == expected, (
        f"generated source for {CASES[name]!r} differs from {GOLDEN / name}; if the change is "
        f"intended, run `python tests/test_sm100_codegen.py` and review the diff")


def _defines(code: str) -> dict[str, str]:
    return dict(re.findall(r"^#define (\w+) (\S+)$", code, re.MULTILINE))


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_config_value_is_a_compile_time_constant(name: str) -> None:
    config = CASES[name]
    source = codegen.gemm_source(config)
    defines = _defines(source.code)
    assert source.arch == "sm_100a" and source.entry == defines["KERNEL_NAME"]
    assert int(defines["BLOCK_M"]) == config.block_m and int(defines["BLOCK_N"]) == config.block_n
    assert int(defines["STAGES"]) == config.stages and int(defines["CLUSTER"]) == config.cluster
    assert int(defines["SWAP_AB"]) == config.swap_ab
    assert int(defines["A_K_MAJOR"]) == (config.layout[0] == "N")
    assert int(defines["B_K_MAJOR"]) == (config.layout[1] == "T")
    assert int(defines["IS_FP8"]) == (config.dtype == "fp8")
    assert int(defines["D_FP32"]) == (config.d_dtype == "fp32")
    assert int(defines["SMEM_REQUESTED"]) == codegen.smem_bytes(config)
    # the skeleton's headers travel with the source (and so enter the kernel-cache key)
    assert set(source.headers) == set(codegen.HEADERS)
    assert '#include "sm100_gemm.cuh"' in source.code
    assert "KERNEL_NAME(" in source.headers["sm100_gemm.cuh"]


def test_entry_names_say_dtype_and_grouping() -> None:
    names = {codegen.entry(c) for c in CASES.values()}
    assert names == {"sm100_fp8_gemm", "sm100_fp8_gemm_masked", "sm100_bf16_gemm",
                     "sm100_fp8_gemm_k_grouped"}


def test_configs_differing_in_one_field_give_different_sources() -> None:
    import attrs

    base = CASES["fp8_nt_pair.cu"]
    variants = [attrs.evolve(base, **change) for change in (
        {"layout": "TN"}, {"d_dtype": "fp32"}, {"block_n": 192}, {"cluster": 1}, {"stages": 5})]
    codes = {codegen.gemm_source(c).code for c in [base, *variants]}
    assert len(codes) == 1 + len(variants)
    # num_sms is the grid size, not part of the kernel: one binary serves every grid
    other_grid = attrs.evolve(base, num_sms=100)
    assert codegen.gemm_source(other_grid).code == codegen.gemm_source(base).code


if __name__ == "__main__":
    write_golden()
    print(f"wrote {len(CASES)} golden sources to {GOLDEN}")
