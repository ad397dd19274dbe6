"""The sm100 plugin through dgreg's registry, resolution and CLI on the CPU (a simulated B200),
its launch arithmetic, and (on a Blackwell GPU only) its kernels against the reference."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch

pytest.importorskip("dgreg_sm100", reason="the dgreg-sm100 distribution is not installed")

from dgreg_sm100 import plugin
from dgreg_sm100.launch import _k_offsets, operand_dims, output_dims

import dgreg
from dgreg import config
from dgreg.cli import main
from dgreg.conformance import load_case_file, load_ops
from dgreg.conformance.cases import claim, expand
from dgreg.device import CPU, preset
from dgreg.errors import UnsupportedSpecError
from dgreg.registry import get_registry, reset_registry
from dgreg.spec import Problem, spec_for

SPECS = Path(__file__).resolve().parents[1] / "specs"
SM100_KERNELS = {
    f"sm100.{op}" for op in ("fp8_gemm", "bf16_gemm", "m_grouped_fp8_gemm_contiguous",
                             "m_grouped_bf16_gemm_contiguous", "m_grouped_fp8_gemm_masked",
                             "m_grouped_bf16_gemm_masked", "k_grouped_fp8_gemm_contiguous",
                             "k_grouped_bf16_gemm_contiguous")}


@pytest.fixture
def sm100_only():
    with config.scope(DGREG_PLUGINS=("sm100",)):
        reset_registry()
        yield get_registry()
    reset_registry()


@pytest.fixture
def every_plugin():
    """Every installed plugin, sm90 included (the suite keeps third-party plugins out)."""
    with config.scope(DGREG_PLUGINS=None):
        reset_registry()
        if get_registry().find("sm90") is None:
            pytest.skip("dgreg-sm90 is not installed: nothing to prefer sm100 over")
        yield get_registry()
    reset_registry()


def test_registers_only_on_an_sm100_device(sm100_only):
    offered = {c.kernel_id for c in sm100_only.candidates(preset("b200")) if c.plugin == "sm100"}
    assert offered == SM100_KERNELS
    for device in (preset("h100"), CPU):
        assert not [c for c in sm100_only.candidates(device) if c.plugin == "sm100"]
    info = sm100_only.find("sm100")
    assert info.archs == ("sm100a",)
    assert "compiled and inspected, not run on hardware" in info.note


def test_plugins_command_says_not_run_on_hardware(sm100_only, capsys):
    assert main(["plugins"]) == 0
    out = " ".join(capsys.readouterr().out.split())  # table cells wrap
    assert "compiled and inspected, not run on hardware" in out


def _explain_json(capsys, *argv: str) -> dict:
    import json

    assert main(["explain", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize(("argv", "kernel"), [
    (("fp8_gemm", "--recipe", "ue8m0", "--m", "4096", "--n", "7168", "--k", "7168"),
     "sm100.fp8_gemm"),
    (("bf16_gemm", "--layout", "TT", "--out-dtype", "fp32", "--accumulate", "--m", "128",
      "--n", "256", "--k", "384"), "sm100.bf16_gemm"),
    (("m_grouped_fp8_gemm_masked", "--recipe", "ue8m0", "--m", "4096", "--n", "4096", "--k",
      "7168", "--groups", "8", "--expected-m", "16"), "sm100.m_grouped_fp8_gemm_masked"),
    (("k_grouped_fp8_gemm_contiguous", "--recipe", "ue8m0", "--m", "4096", "--n", "7168",
      "--ks", "512,0,1024"), "sm100.k_grouped_fp8_gemm_contiguous"),
])
def test_explain_on_a_simulated_b200_picks_sm100(every_plugin, capsys, argv, kernel):
    with config.scope(DGREG_ARCH="b200"):
        res = _explain_json(capsys, *argv)
        assert main(["explain", *argv]) == 0
        text = capsys.readouterr().out
    assert res["device"] == {"arch": "sm100a", "name": "NVIDIA B200", "sm_count": 148,
                             "simulated": True}
    assert res["chosen"] == kernel
    status = {(c["plugin"], c["kernel_id"]): c["status"] for c in res["candidates"]}
    # sm100 wins over the reference (a runner-up) and over sm90, which serves no sm100a device
    assert status[("reference", "reference.torch")] == "accepted"
    assert not any(plugin_name == "sm90" and state != "rejected"
                   for (plugin_name, _), state in status.items())
    assert res["plugins_for_other_archs"] == {"sm90": ["sm90a"]}
    assert "plugin sm90 serves sm90a only: nothing on sm100a" in text
    assert res["config"].startswith("Sm100GemmConfig(")
    assert f"-> {kernel}" in text and "config: Sm100GemmConfig(" in text
    assert "tmem_columns:" in text and "not calibrated" in text


@pytest.mark.parametrize("recipe", ["1d2d", "1d1d"])
def test_fp32_scales_are_refused_with_a_reason(sm100_only, recipe):
    res = dgreg.explain(spec_for("fp8_gemm", recipe=recipe), Problem(128, 256, 512),
                        device="b200", file=None)
    assert res.chosen.kernel_id == "reference.torch"
    reason = {d.candidate.kernel_id: d.reason for d in res.decisions}["sm100.fp8_gemm"]
    assert f"recipe {recipe}" in reason and "UE8M0" in reason and "ue8m0" in reason


def test_k_grouped_bf16_groups_must_be_whole_k_blocks(sm100_only):
    spec = spec_for("k_grouped_bf16_gemm_contiguous")
    odd = dgreg.explain(spec, Problem(128, 96, 393, 4, group_ks=(100, 0, 37, 256)),
                        device="b200", file=None)
    reason = {d.candidate.kernel_id: d.reason for d in odd.decisions}
    assert "group K 100 is not a multiple of 64" in reason["sm100.k_grouped_bf16_gemm_contiguous"]
    whole = dgreg.explain(spec, Problem(128, 96, 384, 3, group_ks=(128, 0, 256)), device="b200",
                          file=None)
    assert whole.chosen.kernel_id == "sm100.k_grouped_bf16_gemm_contiguous"


@pytest.mark.parametrize(("op", "d_dtype", "n", "served"), [
    ("bf16_gemm", "bfloat16", 100, False), ("bf16_gemm", "bfloat16", 104, True),
    ("bf16_gemm", "float32", 102, False), ("bf16_gemm", "float32", 100, True),
    ("m_grouped_bf16_gemm_masked", "bfloat16", 100, True)])
def test_d_with_n_not_whole_16_byte_units_is_refused_where_tma_stores_it(sm100_only, op, d_dtype,
                                                                         n, served):
    """Dense and K-grouped kernels TMA-store D in whole 16-byte units; M-grouped ones store
    rows from registers and take any N."""
    grouped = op.startswith("m_grouped")
    problem = Problem(64, n, 256, 2, expected_m=64) if grouped else Problem(128, n, 256)
    res = dgreg.explain(spec_for(op, d_dtype=d_dtype), problem, device="b200", file=None)
    kernel = f"sm100.{op}"
    if served:
        assert res.chosen.kernel_id == kernel
    else:
        assert res.chosen.kernel_id == "reference.torch"
        reason = {d.candidate.kernel_id: d.reason for d in res.decisions}[kernel]
        assert f"N={n} is not a multiple of" in reason and "16-byte units" in reason


def test_conformance_cases_skip_for_want_of_a_blackwell_gpu(sm100_only):
    ops = load_ops(SPECS / "ops")
    case = load_case_file(SPECS / "conformance" / "fp8_gemm.toml", ops)[0]
    verdict = claim(expand(case)[0], "sm100", CPU, "cpu")
    assert verdict.kind == "unclaimed"
    assert "no Blackwell GPU" in verdict.reason and "sm100a" in verdict.reason


def _served_specs() -> list:
    """Every spec in specs/ops the sm100 plugin serves on a B200."""
    device, served = preset("b200"), []
    for name, op in load_ops(SPECS / "ops").items():
        supports = plugin._serves(name, "fp8" if op.ab_dtype.short == "fp8" else "bf16")
        accumulate = (False, True) if op.accumulate else (False,)
        for layout, recipe, d, acc in itertools.product(op.layouts, op.recipes, op.d_dtypes,
                                                        accumulate):
            try:
                spec = spec_for(name, layout=layout, recipe=recipe, d_dtype=d, accumulate=acc)
            except UnsupportedSpecError:
                continue
            if supports(spec, device) is None:
                served.append(spec)
    return served


def test_the_reference_runs_every_sm100_spec_on_the_cpu(sm100_only):
    """Where no Blackwell GPU can run the kernels, the conformance semantics of every spec
    they serve are still exercised: by the suite's CPU cases (the reference runs them)."""
    served = _served_specs()
    assert len(served) == 48  # 16 + 16 dense, 4 + 2 contiguous, 2 + 2 masked, 4 + 2 K-grouped
    ops = load_ops(SPECS / "ops")
    on_cpu = set()
    for path in sorted((SPECS / "conformance").glob("*.toml")):
        for case in load_case_file(path, ops):
            if case.expect_error is None and case.size != "large" and not case.gpu_only:
                on_cpu.update(inst.spec for inst in expand(case))
    uncovered = [spec for spec in served if spec not in on_cpu]
    assert not uncovered, f"no CPU conformance case for {[s.name for s in uncovered]}"


def test_operand_maps_follow_the_operands_majors():
    a = torch.empty(300, 512, dtype=torch.uint8)  # [M, K], K-major
    assert operand_dims(a, True) == ((1, 300, 512), (300 * 512, 512, 1))
    at = torch.empty(512, 304, dtype=torch.uint8)[:, :300].t()  # [M, K] viewed from [K, M_pad]
    assert operand_dims(at, False) == ((1, 512, 300), (512 * 304, 304, 1))
    b = torch.empty(4, 256, 384, dtype=torch.bfloat16)  # [G, N, K]
    assert operand_dims(b, True) == ((4, 256, 384), (256 * 384, 384, 1))
    # one row: its stride is never stepped, so a 16-byte multiple stands in for it
    row = torch.empty(1, 100, dtype=torch.uint8)
    assert operand_dims(row, True) == ((1, 1, 100), (112, 112, 1))
    d = torch.empty(3, 77, 200, dtype=torch.float32)  # K-grouped D [G, M, N]
    assert output_dims(d) == ((3, 77, 200), (77 * 200, 200, 1))
    assert output_dims(torch.empty(1, 7, dtype=torch.bfloat16)) == ((1, 1, 7), (8, 8, 1))


def test_k_group_offsets():
    assert _k_offsets((512, 0, 1024), "cpu").tolist() == [0, 512, 512, 1536]


@pytest.fixture
def sm100_gpu():
    if not torch.cuda.is_available() or torch.cuda.get_device_capability() != (10, 0):
        pytest.skip("no Blackwell GPU")  # sm_100a: B200, GB200
    with config.scope(DGREG_PLUGINS=("sm100",), DGREG_STRICT=True):
        reset_registry()
        yield
    reset_registry()


@pytest.mark.gpu
@pytest.mark.parametrize("layout", ["NT", "NN", "TN", "TT"])
@pytest.mark.parametrize("dtype", ["fp8", "bf16"])
def test_kernels_match_the_reference_on_a_blackwell_gpu(sm100_gpu, dtype, layout):
    from dgreg.layout import (
        calc_diff,
        get_mn_major_tma_aligned_packed_ue8m0_tensor,
        per_token_cast_to_fp8,
    )

    m, n, k = 4096, 7168, 2048
    gen = torch.Generator(device="cuda").manual_seed(0)
    a = torch.randn(m, k, device="cuda", dtype=torch.bfloat16, generator=gen)
    b = torch.randn(n, k, device="cuda", dtype=torch.bfloat16, generator=gen)
    scales = {}
    if dtype == "fp8":
        a, sfa = per_token_cast_to_fp8(a, use_ue8m0=True)
        b, sfb = per_token_cast_to_fp8(b, use_ue8m0=True)
        scales = {"a_scale": get_mn_major_tma_aligned_packed_ue8m0_tensor(sfa),
                  "b_scale": get_mn_major_tma_aligned_packed_ue8m0_tensor(sfb)}
    ref = dgreg.gemm(a, b, plugin="reference", **scales).float()
    # T for A: pass [K, M]; N for B: pass [K, N]; scales in their operand's orientation
    a_t, b_t = layout[0] == "T", layout[1] == "N"
    if scales:
        scales = {"a_scale": scales["a_scale"].t() if a_t else scales["a_scale"],
                  "b_scale": scales["b_scale"].t() if b_t else scales["b_scale"]}
    out = dgreg.gemm(a.t().contiguous() if a_t else a, b.t().contiguous() if b_t else b,
                     layout=layout, plugin="sm100", **scales)
    assert calc_diff(out.float(), ref) < (1e-3 if dtype == "fp8" else 1e-5)
