"""The ``dgreg`` command: every subcommand and option, run in-process through ``main``."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from importlib import metadata
from typing import Any

import pytest
import torch
from plugin_helpers import ToyPlugin, python_candidate

from dgreg import config, hookimpl, reference
from dgreg.cli import COMMANDS, main
from dgreg.hookspecs import API_VERSION
from dgreg.registry import PluginWarning, get_registry, reset_registry
from dgreg.spec import OPS, spec_for

HAS_GPU = torch.cuda.is_available()
no_gpu_only = pytest.mark.skipif(HAS_GPU, reason="checks the output of a machine without a GPU")


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    rc, out, _ = run_cli(capsys, *argv, "--json")
    assert rc == 0
    return json.loads(out)  # nothing but the JSON document on stdout


def words(text: str) -> str:
    """Whitespace-normalised text, so wrapped table cells compare as one string."""
    return " ".join(text.split())


@pytest.fixture
def installed_plugins() -> Any:
    """Load the installed third-party plugins (the suite keeps them out by default)."""
    found = {ep.name for ep in metadata.entry_points(group="dgreg.plugins")}
    if not {"sm90", "sm100"} <= found:
        pytest.skip("dgreg-sm90 and dgreg-sm100 are not installed")
    with config.scope(DGREG_PLUGINS=None):
        reset_registry()
        yield get_registry()
    reset_registry()


def _cpu_kernel_plugin(run: Callable[[Any], None] = reference.run,
                       refuse: str | None = None) -> ToyPlugin:
    """A plugin offering one CPU kernel: ``run`` computes, ``refuse`` rejects every spec."""
    return ToyPlugin(python_candidate("fake.cpu_gemm", priority=100, run=run,
                                      supports=lambda spec, device: refuse))


# -- the command itself ---------------------------------------------------------------------

def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run_cli(capsys)
    assert rc == 2
    for name in COMMANDS:
        assert name in out


def test_console_script_help() -> None:
    proc = subprocess.run([sys.executable, "-m", "dgreg", "--help"], capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "usage: dgreg" in proc.stdout
    for name in ("info", "plugins", "explain", "demo", "config"):
        assert name in proc.stdout


def _import_probe(code: str) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter: its wall time and the torch/CUDA modules it loaded
    (modules the interpreter loaded at startup, such as ``.pth`` hooks, do not count)."""
    probe = (
        "import json, sys, time\n"
        "before = set(sys.modules)\n"
        "start = time.perf_counter()\n"
        f"{code}\n"
        "elapsed = time.perf_counter() - start\n"
        "heavy = sorted(m for m in set(sys.modules) - before\n"
        "               if m.split('.')[0] == 'torch' or 'cuda' in m.lower())\n"
        "print(json.dumps({'seconds': elapsed, 'heavy': heavy}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=60, check=True)
    return json.loads(proc.stdout)


def test_import_dgreg_is_cheap_and_cuda_free() -> None:
    report = _import_probe("import dgreg")
    print(f"import dgreg took {report['seconds'] * 1e3:.1f} ms")
    assert report["heavy"] == []
    assert report["seconds"] < 1.0


def test_building_the_parser_imports_no_torch() -> None:
    """``dgreg --help`` and argument errors stay fast: commands import torch in ``run``."""
    report = _import_probe("import dgreg.cli; dgreg.cli.build_parser()")
    print(f"building the dgreg parser took {report['seconds'] * 1e3:.1f} ms")
    assert report["heavy"] == []


# -- info -----------------------------------------------------------------------------------

def test_info_text(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run_cli(capsys, "info")
    assert rc == 0
    for item in ("dgreg", "python", "torch", "torch CUDA build", "GPU", "nvcc", "DGREG_ARCH"):
        assert item in out
    assert torch.__version__ in out
    for op in OPS:
        assert spec_for(op).name in out
    assert "reference.torch" in out
    assert "reference fallback [1]" in out


@no_gpu_only
def test_info_says_no_gpu(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run_cli(capsys, "info")
    assert rc == 0
    assert "no GPU: calls run on the torch reference path" in out
    assert "[1] no GPU is present" in out


def test_info_json(capsys: pytest.CaptureFixture[str]) -> None:
    facts = run_json(capsys, "info")
    assert facts["torch"]["version"] == torch.__version__
    assert facts["gpu"]["present"] is HAS_GPU
    assert [entry["op"] for entry in facts["ops"]] == list(OPS)
    loaded = [p["name"] for p in facts["plugins"] if p["status"] == "loaded"]
    assert "reference" in loaded and "sm90" not in loaded  # the suite loads no installed plugin
    if not HAS_GPU:
        fp8 = facts["ops"][0]
        assert (fp8["chosen"], fp8["plugin"], fp8["fallback"]) == ("reference.torch",
                                                                   "reference", True)
        assert fp8["reason"] == "no GPU is present"


def test_info_with_arch_override(capsys: pytest.CaptureFixture[str]) -> None:
    with config.scope(DGREG_ARCH="h100"):
        facts = run_json(capsys, "info")
        rc, out, _ = run_cli(capsys, "info")
    assert facts["arch_override"] == "h100"
    assert facts["resolution_device"]["arch"] == "sm90a"
    assert facts["resolution_device"]["simulated"] is True
    assert rc == 0 and "Device(sm90a" in out


def test_info_bad_arch_override_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    with config.scope(DGREG_ARCH="nonsense"):
        rc, out, _ = run_cli(capsys, "info")
    assert rc == 0
    assert "DGREG_ARCH ignored" in out


def test_info_without_nvcc(capsys: pytest.CaptureFixture[str],
                           monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("CUDA_HOME", str(tmp_path / "no-cuda"))  # points at nothing: tolerated
    monkeypatch.delenv("CUDA_PATH", raising=False)
    with config.scope(DGREG_NVCC=None):
        facts = run_json(capsys, "info")
        rc, out, _ = run_cli(capsys, "info")
    assert facts["nvcc"]["version"] is None
    assert rc == 0 and "nvcc              nvcc not found" in out


def test_info_shows_accelerated_kernel(capsys: pytest.CaptureFixture[str],
                                       make_registry: Callable[..., Any]) -> None:
    make_registry(("fake", _cpu_kernel_plugin()))
    facts = run_json(capsys, "info")
    fp8 = facts["ops"][0]
    assert (fp8["chosen"], fp8["fallback"], fp8["reason"]) == ("fake.cpu_gemm", False, None)
    _, out, _ = run_cli(capsys, "info")
    row = next(line for line in out.splitlines() if line.startswith("fp8_gemm.nt.1d2d.bf16"))
    assert row.split() == ["fp8_gemm.nt.1d2d.bf16", "fake.cpu_gemm", "fake", "accelerated"]


def test_info_lists_rejection_reasons(capsys: pytest.CaptureFixture[str],
                                      make_registry: Callable[..., Any]) -> None:
    make_registry(("fake", _cpu_kernel_plugin(refuse="wants a bigger CPU")))
    rc, out, _ = run_cli(capsys, "info")
    assert rc == 0
    assert "[1] fake.cpu_gemm: wants a bigger CPU" in out


# -- plugins --------------------------------------------------------------------------------

def test_plugins_lists_reference(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run_cli(capsys, "plugins")
    assert rc == 0
    header, rule, *rows = out.splitlines()
    assert header.split()[:6] == ["NAME", "DISTRIBUTION", "VERSION", "STATUS", "API", "ARCHS"]
    assert set(rule) <= {"-", " "}
    row = next(line for line in rows if line.startswith("reference "))
    version = get_registry().find("reference").version or "-"
    assert row.split()[:6] == ["reference", "dgreg", version, "loaded", str(API_VERSION), "*"]
    assert "dgreg_register_kernels" in out
    assert "DGREG_PLUGINS=empty (none)" in out
    assert "not named in DGREG_PLUGINS" in out or "sm90" not in out  # installed: listed, off


def test_plugins_json(capsys: pytest.CaptureFixture[str]) -> None:
    plugins = {p["name"]: p for p in run_json(capsys, "plugins")}
    assert plugins["reference"]["status"] == "loaded" and plugins["reference"]["builtin"]
    assert "dgreg_register_kernels" in plugins["reference"]["hooks"]
    assert all(p["builtin"] for p in plugins.values() if p["status"] == "loaded")


def test_plugins_installed(capsys: pytest.CaptureFixture[str], installed_plugins: Any) -> None:
    rc, out, _ = run_cli(capsys, "plugins")
    assert rc == 0
    text = words(out)
    for name, dist, arch in (("sm90", "dgreg-sm90", "sm90a"), ("sm100", "dgreg-sm100", "sm100a")):
        info = installed_plugins.find(name)
        assert info.status == "loaded" and info.note
        assert f"{name} {dist} {info.version} loaded {API_VERSION} {arch}" in text
        assert words(info.note) in text
    by_name = {p["name"]: p for p in run_json(capsys, "plugins")}
    assert by_name["sm90"]["note"] == installed_plugins.find("sm90").note
    assert by_name["sm100"]["archs"] == ["sm100a"]


def test_plugins_disabled(capsys: pytest.CaptureFixture[str], installed_plugins: Any) -> None:
    with config.scope(DGREG_PLUGINS=None, DGREG_DISABLE_PLUGINS=("sm100",)):
        rc, out, _ = run_cli(capsys, "plugins")
    assert rc == 0
    assert "disabled" in out and "named in DGREG_DISABLE_PLUGINS" in out


def test_plugins_failed_shows_reason(capsys: pytest.CaptureFixture[str],
                                     make_registry: Callable[..., Any]) -> None:
    class NoVersion:
        @hookimpl
        def dgreg_plugin_info(self) -> dict[str, object]:
            return {}

    with pytest.warns(PluginWarning):
        make_registry(("broken", NoVersion()))
    rc, out, err = run_cli(capsys, "plugins")
    assert rc == 0
    assert "failed" in out
    assert "does not implement dgreg_api_version()" in words(out)
    assert err == ""


# -- explain --------------------------------------------------------------------------------

@pytest.mark.parametrize(("device", "arch"), [("h100", "sm90a"), ("b200", "sm100a")])
def test_explain_on_simulated_gpus(capsys: pytest.CaptureFixture[str], installed_plugins: Any,
                                   device: str, arch: str) -> None:
    argv = ("explain", "fp8_gemm", "--m", "128", "--n", "4096", "--k", "7168", "--device", device)
    rc, out, _ = run_cli(capsys, *argv)
    assert rc == 0
    assert f"fp8_gemm.nt.1d2d.bf16 m128n4096k7168 on Device({arch}" in out
    assert "candidates (chosen, runners-up, rejected):" in out
    res = run_json(capsys, *argv)
    assert res["device"]["arch"] == arch and res["device"]["simulated"] is True
    assert res["chosen"] is not None
    chosen = [c for c in res["candidates"] if c["status"] == "chosen"]
    assert [c["kernel_id"] for c in chosen] == [res["chosen"]]
    assert f"-> {res['chosen']}" in out


def test_explain_grouped_options(capsys: pytest.CaptureFixture[str]) -> None:
    res = run_json(capsys, "explain", "m_grouped_fp8_gemm_masked", "--m", "256", "--n", "4096",
                   "--k", "7168", "--groups", "4", "--expected-m", "64", "--layout", "nt",
                   "--recipe", "1D1D", "--device", "cpu", "--plugin", "reference")
    assert res["spec"] == "m_grouped_fp8_gemm_masked.nt.1d1d.bf16"
    assert res["problem"] == "g4m256n4096k7168~m64"
    assert res["pin"] == "reference" and res["chosen"] == "reference.torch"


def test_explain_k_grouped_ks(capsys: pytest.CaptureFixture[str]) -> None:
    res = run_json(capsys, "explain", "k_grouped_bf16_gemm_contiguous", "--m", "128", "--n",
                   "256", "--ks", "128,256,512", "--accumulate", "--out-dtype", "fp32")
    assert res["spec"] == "k_grouped_bf16_gemm_contiguous.tn.fp32+c"
    assert res["problem"] == "g3m128n256k896"


@pytest.mark.parametrize(("argv", "message"), [
    (("nope", "--m", "1", "--n", "1", "--k", "1"), "unknown operation 'nope'"),
    (("fp8_gemm", "--m", "1", "--n", "1", "--k", "1", "--recipe", "none"),
     "FP8 operands need a scaling recipe"),
    (("m_grouped_fp8_gemm_masked", "--m", "1", "--n", "1", "--k", "1", "--layout", "TN"),
     "need a K-major A"),
    (("fp8_gemm", "--m", "1", "--n", "1"), "'--k' must be given"),
    (("fp8_gemm", "--m", "1", "--n", "1", "--k", "1", "--groups", "2"), "'--groups' must be 1"),
    (("fp8_gemm", "--m", "1", "--n", "1", "--ks", "1,2"), "'--ks' must be omitted"),
    (("k_grouped_fp8_gemm_contiguous", "--m", "1", "--n", "1", "--ks", "128,128", "--k", "5"),
     "'--k' must be the sum of --ks (256)"),
    (("fp8_gemm", "--m", "1", "--n", "1", "--k", "1", "--device", "z80"), "'--device' must be"),
    (("fp8_gemm", "--m", "1", "--n", "1", "--k", "1", "--plugin", "ghost"),
     "pinned plugin 'ghost' is not installed"),
])
def test_explain_errors_exit_1(capsys: pytest.CaptureFixture[str], argv: tuple[str, ...],
                               message: str) -> None:
    rc, out, err = run_cli(capsys, "explain", *argv)
    assert rc == 1
    assert out == ""
    assert err.startswith("dgreg explain: error: ")
    assert message in err


@pytest.mark.parametrize("argv", [
    ("fp8_gemm", "--n", "1", "--k", "1"),
    ("fp8_gemm", "--m", "-1", "--n", "1", "--k", "1"),
    ("fp8_gemm", "--m", "1", "--n", "1", "--k", "1", "--layout", "XY"),
    ("k_grouped_fp8_gemm_contiguous", "--m", "1", "--n", "1", "--ks", "1,x"),
])
def test_explain_usage_errors_exit_2(capsys: pytest.CaptureFixture[str],
                                     argv: tuple[str, ...]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["explain", *argv])
    assert exc.value.code == 2
    assert "usage: dgreg explain" in capsys.readouterr().err


# -- demo -----------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["fp8", "bf16"])
def test_demo_passes_on_cpu(capsys: pytest.CaptureFixture[str], dtype: str) -> None:
    rc, out, err = run_cli(capsys, "demo", "--dtype", dtype, "--device", "cpu")
    assert rc == 0, out + err
    assert "calc_diff" in out and "max abs err" in out
    assert "result: PASS" in out
    assert "-> reference.torch" in out  # the explain text
    assert "torch reference" in out
    assert "steady state" in out
    assert "FallbackWarning" not in err


@no_gpu_only
def test_demo_default_says_no_gpu(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run_cli(capsys, "demo")
    assert rc == 0
    assert "no GPU is present" in out and "ran the torch reference path" in out
    assert "on cpu" in out.splitlines()[0]
    assert err == ""


def test_demo_sizes(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run_cli(capsys, "demo", "--m", "64", "--n", "96", "--k", "272", "--seed", "3",
                         "--repeat", "1")
    assert rc == 0
    assert "D[64, 96] = A[64, 272] @ B[96, 272].T" in out
    assert "m64n96k272" in out


def test_demo_reports_a_wrong_kernel(capsys: pytest.CaptureFixture[str],
                                     make_registry: Callable[..., Any]) -> None:
    make_registry(("fake", _cpu_kernel_plugin(run=lambda call: call.d.zero_())))
    rc, out, _ = run_cli(capsys, "demo", "--device", "cpu", "--repeat", "1")
    assert rc == 1
    assert "path: kernel fake.cpu_gemm from plugin 'fake'" in out
    assert "result: FAIL" in out


def test_demo_strict_refuses_the_fallback(capsys: pytest.CaptureFixture[str]) -> None:
    with config.scope(DGREG_STRICT=True):
        rc, _, err = run_cli(capsys, "demo", "--device", "cpu")
    assert rc == 1
    assert "DGREG_STRICT=1 forbids the torch reference fallback" in err


def test_demo_bad_k(capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = run_cli(capsys, "demo", "--dtype", "bf16", "--k", "300")
    assert rc == 1
    assert "'--k' must be a multiple of 8" in err


@no_gpu_only
def test_demo_cuda_without_gpu(capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = run_cli(capsys, "demo", "--device", "cuda")
    assert rc == 1
    assert "torch.cuda.is_available() is False" in err


# -- config ---------------------------------------------------------------------------------

def test_config_text(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run_cli(capsys, "config")
    assert rc == 0
    assert out.split()[:6] == ["NAME", "VALUE", "DEFAULT", "SET", "TYPE", "DOC"]
    for name, knob in config.KNOBS.items():
        assert name in out
        assert words(knob.doc) in words(out)
    strict = next(line for line in out.splitlines() if line.startswith("DGREG_STRICT"))
    assert strict.split()[:5] == ["DGREG_STRICT", "0", "0", "yes", "bool"]  # set by the fixture


def test_config_json(capsys: pytest.CaptureFixture[str]) -> None:
    with config.scope(DGREG_STRICT=True):
        rows = {row["name"]: row for row in run_json(capsys, "config")}
    assert set(rows) == set(config.KNOBS)
    assert rows["DGREG_STRICT"]["value"] is True and rows["DGREG_STRICT"]["set"] is True
    assert rows["DGREG_STRICT"]["doc"] == config.KNOBS["DGREG_STRICT"].doc
    assert rows["DGREG_STRICT"]["type"] == "bool" and rows["DGREG_STRICT"]["default"] is False
