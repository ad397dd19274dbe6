"""Meta tests of the conformance suite: it passes a correct plugin, fails a broken one, and a
third-party plugin shipped as its own distribution runs it with no change to dgreg.

The suite runs in-process through :func:`dgreg.conformance.runner.run` (a nested pytest
session), so the registry these tests build is the one the suite sees.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
from plugin_helpers import ToyPlugin, python_candidate

import dgreg
from dgreg import config, reference
from dgreg.conformance import cases, runner, specfile
from dgreg.device import preset
from dgreg.registry import Registry, get_registry, reset_registry

REPO = Path(__file__).resolve().parent.parent
SPEC_DIR = REPO / "specs" / "conformance"
LINE = re.compile(r"conformance (\S+) \((.*?)\) on (\S+): (\d+) passed / (\d+) claimed / (\d+) total")


class Outcomes:
    """A pytest plugin object: every conformance item's instance and final outcome."""

    def __init__(self) -> None:
        self.items: dict[str, Any] = {}
        self.outcome: dict[str, str] = {}
        self.longrepr: dict[str, str] = {}

    def pytest_collection_finish(self, session: Any) -> None:
        self.items = {item.nodeid: item for item in session.items}

    def pytest_runtest_logreport(self, report: Any) -> None:
        if report.failed or report.when == "call" or report.skipped:
            if self.outcome.get(report.nodeid) != "failed":
                self.outcome[report.nodeid] = report.outcome
            if report.failed:
                self.longrepr[report.nodeid] = str(report.longrepr)

    def claimed(self) -> dict[str, Any]:
        return {nodeid: item for nodeid, item in self.items.items()
                if dict(item.user_properties)["dgreg_claim"] in ("claimed", "core")}


def _run(plugin: str, **kwargs: Any) -> tuple[int, str, Outcomes]:
    """The suite on CPU tensors (also on a GPU machine: these tests check the suite itself)."""
    out, seen = io.StringIO(), Outcomes()
    code = runner.run([plugin], observers=[seen], out=out, device="cpu", **kwargs)
    return code, out.getvalue(), seen


# -- (1) the reference passes every claimed CPU case ----------------------------------------------

def test_reference_passes_every_claimed_cpu_case() -> None:
    code, text, seen = _run("reference", spec_dir=SPEC_DIR)
    assert code == 0, text + "\n".join(seen.longrepr.values())
    (line,) = [m for m in LINE.finditer(text)]
    plugin, origin, arch, passed, claimed, total = line.groups()
    assert (plugin, arch) == ("reference", "cpu") and origin.startswith("dgreg")
    assert int(passed) == int(claimed) > 300 and int(total) > int(claimed)
    ran = {i.instance.case.op.op for i in seen.claimed().values()}
    assert ran == set(dgreg.spec.OPS), "every operation has CPU cases"
    for nodeid, item in seen.items.items():
        if dict(item.user_properties)["dgreg_claim"] == "not_here":
            (mark,) = item.iter_markers("skip")
            assert mark.kwargs["reason"].startswith(("large shape: runs on a GPU",
                                                     "gpu_only case: needs CUDA tensors"))
        else:
            assert seen.outcome[nodeid] == "passed", nodeid


# -- (2) a broken plugin fails the suite -----------------------------------------------------------

def _drop_last_k_block(call: Any) -> None:
    """Subtly wrong: the last 128-wide K block (of the whole K) is skipped."""
    a = call.a.clone()
    a[..., (call.problem.k - 1) // 128 * 128:] = 0
    reference.run(attrs.evolve(call, a=a))


def _write_zeros(call: Any) -> None:
    call.d.zero_()


def _multiplies(inst: cases.Instance) -> bool:
    """A positive instance whose output depends on A @ B (empty ones the core answers itself)."""
    p = inst.problem
    valid_rows = sum(inst.shape.sizes) if inst.shape.m_max is not None else p.m
    return not inst.negative and bool(valid_rows and p.n and p.k)


def _broken_plugin(run: Callable[[Any], None]) -> ToyPlugin:
    """A plugin whose one CPU kernel, ``broken.torch_gemm``, claims every spec and runs ``run``."""
    return ToyPlugin(python_candidate("broken.torch_gemm", run=run))


@pytest.mark.parametrize(("run", "keyword"), [
    (_drop_last_k_block, None),
    (_write_zeros, "fp8_gemm/nt or masked or k_grouped_bf16"),
])
def test_a_broken_plugin_fails_the_suite(make_registry: Callable[..., Registry],
                                         run: Callable[[Any], None], keyword: str | None) -> None:
    make_registry(("broken", _broken_plugin(run)))
    code, text, seen = _run("broken", spec_dir=SPEC_DIR, keyword=keyword)
    assert code == pytest.ExitCode.TESTS_FAILED
    failed = {n for n, o in seen.outcome.items() if o == "failed"}
    must_fail = {n for n, item in seen.claimed().items()
                 if _multiplies(item.instance)
                 and dict(item.user_properties)["dgreg_claim"] == "claimed"}
    assert must_fail and must_fail <= failed, sorted(must_fail - failed)[:5]
    assert not any(seen.items[n].instance.negative for n in failed)  # dgreg's checks still run
    assert "FAILED" in text and "broken" in text
    sample = seen.longrepr[sorted(failed)[0]]
    assert "calc_diff" in sample or "max |D - ref|" in sample


def test_failures_show_what_differs(make_registry: Callable[..., Registry]) -> None:
    make_registry(("broken", _broken_plugin(_drop_last_k_block)))
    code, _, seen = _run("broken", spec_dir=SPEC_DIR,
                         keyword="m_grouped_fp8_gemm_masked/nt/g4m0_128_37_64n256k384")
    assert code == pytest.ExitCode.TESTS_FAILED
    (text,) = seen.longrepr.values()
    assert "@broken (kernel broken.torch_gemm, case 'fp8_variants'" in text
    assert re.search(r"calc_diff\(D, ref\) = [0-9.e-]+, not below 0.001", text)
    assert re.search(r"exceeds 0.03125 x max \|ref\|", text)


def test_writing_rows_the_op_must_not_write_fails(make_registry: Callable[..., Registry]) -> None:
    def correct_but_scribbles(call: Any) -> None:
        reference.run(call)
        call.d.nan_to_num_(0.0)  # right where written, zeros where it must not write

    make_registry(("broken", _broken_plugin(correct_but_scribbles)))
    code, _, seen = _run("broken", spec_dir=SPEC_DIR, keyword="masked or contiguous")
    assert code == pytest.ExitCode.TESTS_FAILED
    texts = list(seen.longrepr.values())
    assert texts and all("must leave untouched were written" in t for t in texts)


def test_a_plugin_needing_cuda_skips_with_the_reason(make_registry: Callable[..., Registry]) -> None:
    cuda_only = dgreg.Candidate("gpuonly.gemm", supports=lambda s, d: None, run=_write_zeros)
    make_registry(("gpuonly", ToyPlugin(cuda_only)))
    code, text, seen = _run("gpuonly", spec_dir=SPEC_DIR, keyword="bf16_gemm/nt and m128n256k384")
    assert code == 0
    assert re.search(r"0 passed / 0 claimed / [1-9]\d* total", text)
    for item in seen.items.values():
        (mark,) = item.iter_markers("skip")
        assert mark.kwargs["reason"] == ("not claimed by gpuonly on cpu (gpuonly.gemm: needs "
                                         "CUDA tensors (the inputs are on cpu))")


# -- (3) a plugin shipped as its own distribution, for a new arch ---------------------------------

PLUGIN_SOURCE = '''
"""A throwaway dgreg plugin for the made-up arch sm123z: dense BF16 and FP8 1d2d GEMMs in torch."""

import dgreg
from dgreg.spec import Grouping, Recipe

ARCH = "sm123z"


def _supports(spec, device):
    if spec.grouping != Grouping.NONE:
        return "sm123z serves dense GEMMs only"
    if spec.is_fp8 and spec.recipe != Recipe.R1D2D:
        return f"sm123z serves FP8 with 1d2d scales only (not {spec.recipe.value})"
    return None


def _scales(sf, rows, k, row_block):
    sf = sf.float().repeat_interleave(128, dim=-1)[:, :k]
    return sf.repeat_interleave(row_block, dim=0)[:rows]


def _run(call):
    a, b = call.a.float(), call.b.float()
    if call.spec.is_fp8:
        (m, k), n = a.shape, b.shape[0]
        a = a * _scales(call.a_scale, m, k, 1)
        b = b * _scales(call.b_scale, n, k, 128)
    out = a @ b.t()
    if call.c is not None:
        out = out + call.c.float()
    call.d.copy_(out.to(call.d.dtype))


@dgreg.hookimpl
def dgreg_api_version():
    return dgreg.API_VERSION


@dgreg.hookimpl
def dgreg_plugin_info():
    return {"archs": [ARCH], "description": "torch GEMMs for sm123z (test plugin)"}


@dgreg.hookimpl
def dgreg_register_kernels(register, device):
    if device.arch != ARCH:
        return
    register(dgreg.Candidate("sm123z.torch_gemm", supports=_supports, run=_run, priority=10,
                             needs_cuda=False, description="dense torch GEMM"))
'''


@pytest.fixture
def sm123z_site(tmp_path: Path) -> Path:
    """A site directory holding package dgreg_sm123z and its dist-info (no pip involved)."""
    site = tmp_path / "site"
    (site / "dgreg_sm123z").mkdir(parents=True)
    (site / "dgreg_sm123z" / "__init__.py").write_text(PLUGIN_SOURCE)
    info = site / "dgreg_sm123z-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: dgreg-sm123z\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[dgreg.plugins]\nsm123z = dgreg_sm123z\n")
    return site


def test_a_shipped_plugin_is_discovered_and_resolved(sm123z_site: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(sm123z_site))
    monkeypatch.delitem(sys.modules, "dgreg_sm123z", raising=False)
    with config.scope(DGREG_PLUGINS=("sm123z",), DGREG_ARCH="sm123z"):
        reset_registry()
        info = get_registry().find("sm123z")
        assert info is not None and info.status == "loaded", info
        assert (info.distribution, info.version, info.archs) == ("dgreg-sm123z", "0.1", ("sm123z",))
        dense = dgreg.explain("bf16_gemm", (128, 256, 512), device=preset("sm123z"), file=None)
        assert dense.chosen.kernel_id == "sm123z.torch_gemm"
        assert [d.status for d in dense.decisions] == ["chosen", "accepted"]  # reference next
        masked = dgreg.explain("m_grouped_fp8_gemm_masked", (64, 256, 512, 2),
                               device=preset("sm123z"), file=None)
        assert masked.chosen.kernel_id == "reference.torch"
        assert "sm123z.torch_gemm" in str(masked) and "sm123z serves dense GEMMs only" in str(masked)
        assert dgreg.explain("fp8_gemm", (1, 2, 3), device=preset("h100"), file=None
                             ).chosen.plugin == "reference"  # offers nothing on other archs
    reset_registry()


def test_a_shipped_plugin_passes_the_suite_through_the_cli(sm123z_site: Path,
                                                           tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(sm123z_site), str(REPO)]),
               DGREG_ARCH="sm123z", DGREG_PLUGINS="sm123z")
    proc = subprocess.run([sys.executable, "-m", "dgreg", "conformance", "--plugin", "sm123z",
                           "--device", "cpu"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (line,) = LINE.findall(proc.stdout)
    plugin, origin, arch, passed, claimed, total = line
    assert (plugin, origin, arch) == ("sm123z", "dgreg-sm123z 0.1", "sm123z")
    assert 0 < int(passed) == int(claimed) < int(total)
    assert "not claimed" in proc.stdout


# -- (5) negative cases and spec errors through the runner ----------------------------------------

NEGATIVE = """
[[case]]
name = "fine"
op = "bf16_gemm"
shapes = [[64, 128, 256]]

[[case]]
name = "does_not_raise"
op = "bf16_gemm"
shapes = [[64, 128, 256]]
expect_error = "InvalidArgumentError"
match = "'a'"

[[case]]
name = "raises_something_else"
op = "bf16_gemm"
shapes = [[64, 128, 256]]
mutate = "b_other_dtype"
expect_error = "UnsupportedSpecError"

[[case]]
name = "message_lacks_match"
op = "bf16_gemm"
shapes = [[64, 128, 256]]
mutate = "b_other_dtype"
expect_error = "InvalidArgumentError"
match = "'q'"

[[case]]
name = "raises_as_promised"
op = "bf16_gemm"
shapes = [[64, 128, 256]]
mutate = "b_other_dtype"
expect_error = "InvalidArgumentError"
match = "'b'"
"""


def _spec_dir(tmp_path: Path, text: str) -> Path:
    spec_dir = tmp_path / "cases"  # not specs/conformance: --spec-dir makes it collectable
    spec_dir.mkdir()
    (spec_dir / "mine.toml").write_text(textwrap.dedent(text))
    return spec_dir


def test_negative_cases_that_do_not_raise_as_specified_fail(tmp_path: Path) -> None:
    code, text, seen = _run("reference", spec_dir=_spec_dir(tmp_path, NEGATIVE))
    assert code == pytest.ExitCode.TESTS_FAILED
    by_case = {item.instance.case.name: seen.outcome[n] for n, item in seen.items.items()}
    assert by_case == {"fine": "passed", "does_not_raise": "failed",
                       "raises_something_else": "failed", "message_lacks_match": "failed",
                       "raises_as_promised": "passed"}
    reasons = "\n".join(seen.longrepr.values())
    assert "expected InvalidArgumentError mentioning \"'a'\", but the call returned normally" in reasons
    assert "expected UnsupportedSpecError but the call raised InvalidArgumentError" in reasons
    assert "its message lacks \"'q'\"" in reasons
    assert "2 passed / 5 claimed / 5 total" in text


def test_a_malformed_spec_file_is_a_collection_error(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    spec_dir = _spec_dir(tmp_path, '[[case]]\nname = "x"\nop = "bf16_gemm"\nshapes = [[1, 2]]\n')
    code, _, _ = _run("reference", spec_dir=spec_dir)
    assert code == pytest.ExitCode.INTERRUPTED
    shown = capsys.readouterr().out
    assert f"{spec_dir / 'mine.toml'}: [case[x].shapes[0]] must be [m, n, k] arrays" in shown


def test_toml_files_elsewhere_are_never_collected(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.whatever]\nx = 1\n")
    (tmp_path / "conformance").mkdir()
    (tmp_path / "conformance" / "broken.toml").write_text("this is not toml [[[")
    code = pytest.main([str(tmp_path), "-q", "-p", "dgreg.conformance.pytest_plugin",
                        "-p", "no:cacheprovider"])
    assert code == pytest.ExitCode.NO_TESTS_COLLECTED


def test_duplicate_instance_ids_are_refused(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    spec_dir = _spec_dir(tmp_path, NEGATIVE.split("[[case]]\nname = \"does_not")[0] +
                         '[[case]]\nname = "again"\nop = "bf16_gemm"\nm = [64]\nnk = [[128, 256]]\n')
    code, _, _ = _run("reference", spec_dir=spec_dir)
    assert code == pytest.ExitCode.INTERRUPTED
    assert "produces instance bf16_gemm/nt/m64n128k256, which mine.toml case 'fine'" in (
        capsys.readouterr().out)


def test_an_unknown_plugin_is_refused_before_running() -> None:
    with pytest.raises(dgreg.PluginError, match="'nosuch' is not installed"):
        runner.run(["nosuch"], spec_dir=SPEC_DIR)


def test_the_cli_reports_a_missing_spec_dir(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    from dgreg.cli import main

    assert main(["conformance", "--spec-dir", str(tmp_path / "nowhere")]) == 1
    assert "[--spec-dir] is not a directory" in capsys.readouterr().err


def test_without_specs_next_to_the_package_the_spec_dir_is_required(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(specfile, "repo_specs_dir", lambda: None)
    with pytest.raises(dgreg.SpecFileError, match=r"\[--spec-dir\] not found: .* pass --spec-dir"):
        runner.run(["reference"])


def test_claims_follow_resolution(make_registry: Callable[..., Registry]) -> None:
    """Claimed when resolution pinned to the plugin picks its candidate, else the reasons."""
    make_registry(("broken", _broken_plugin(_write_zeros)))
    ops = specfile.load_ops(REPO / "specs" / "ops")
    (case,) = [c for c in specfile.load_case_file(SPEC_DIR / "fp8_gemm.toml", ops)
               if c.name == "variants"]
    inst = cases.expand(case)[0]
    cpu = dgreg.Device("cpu")
    assert cases.claim(inst, "broken", cpu, "cpu") == cases.Claim("claimed", "broken.torch_gemm")
    assert cases.claim(inst, "reference", cpu, "cpu").kind == "claimed"
    on_gpu = cases.claim(inst, "broken", preset("h100"), "cuda")
    assert on_gpu.kind == "claimed"  # needs_cuda=False: a simulated GPU is fine

    bf16_only = dgreg.Candidate(
        "bf16only.gemm", run=_write_zeros, needs_cuda=False,
        supports=lambda spec, device: None if not spec.is_fp8 else "BF16 only")
    make_registry(("bf16only", ToyPlugin(bf16_only)))
    assert cases.claim(inst, "bf16only", cpu, "cpu") == cases.Claim(
        "unclaimed", reason="not claimed by bf16only on cpu (bf16only.gemm: BF16 only)")
