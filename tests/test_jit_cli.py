from __future__ import annotations

import json
import shutil

import pytest
from toy_jit_plugin import ToyJitPlugin

from dgreg import DgregError, config
from dgreg.cli import main
from dgreg.jit import KernelCache

pytestmark = pytest.mark.skipif(shutil.which("nvcc") is None, reason="needs nvcc on PATH")


@pytest.fixture
def cache_dir(tmp_path):
    with config.scope(DGREG_CACHE_DIR=str(tmp_path / "cache")):
        yield tmp_path / "cache"


def test_warmup_compiles_then_finds_cached(make_registry, cache_dir, tmp_path, capsys):
    make_registry(("toy", ToyJitPlugin()))
    spec_file = tmp_path / "shapes.toml"
    spec_file.write_text('[[kernel]]\nop = "bf16_gemm"\nm = [64, 128]\nn = 256\nk = 512\n\n'
                         '[[kernel]]\nop = "fp8_gemm"\nm = 64\nn = 64\nk = 128\n')
    assert main(["warmup", "--spec-file", str(spec_file), "--arch", "h100", "--jobs", "1"]) == 0
    out = capsys.readouterr().out
    assert "skip     fp8_gemm.nt.1d2d.bf16 m64n64k128: reference.torch" in out
    assert out.count("compiled ") == 1  # two bf16 shapes, one kernel (one config)
    assert "toy.bf16_gemm_naive" in out and "1 kernel(s) ready" in out
    assert main(["warmup", "--spec-file", str(spec_file), "--arch", "h100", "--jobs", "1"]) == 0
    assert "cached " in capsys.readouterr().out
    assert main(["cache", "ls"]) == 0
    listing = capsys.readouterr().out
    assert "sm_90a" in listing and "toy.bf16_gemm_naive" in listing and "regs" in listing
    assert main(["cache", "info"]) == 0
    assert "entries    1 (0 unusable)" in capsys.readouterr().out
    assert main(["cache", "clear"]) == 0
    assert "removed 1 entry" in capsys.readouterr().out
    assert main(["cache", "ls"]) == 0
    assert "no entries" in capsys.readouterr().out


@pytest.mark.parametrize(("text", "problem"), [
    ("[[kernel]]\nop = 'fp8_gemm'\nm = 1\nn = 1\n", "kernel[0].k] missing"),
    ("[[kernel]]\nop = 'fp9_gemm'\nm = 1\nn = 1\nk = 1\n", "unknown operation"),
    ("[[kernel]]\nop = 'fp8_gemm'\nm = 1\nn = 1\nk = 1\nspeed = 'fast'\n", "unknown keys ['speed']"),
    ("[[kernel]]\nop = 'fp8_gemm'\nm = -1\nn = 1\nk = 1\n", "'m' must be a non-negative int"),
    ("kernel = 3\n", "expected one or more [[kernel]] tables"),
    ("[[kernel]\n", "cannot read TOML"),
])
def test_malformed_warmup_files_name_file_and_key(tmp_path, capsys, text, problem):
    spec_file = tmp_path / "bad.toml"
    spec_file.write_text(text)
    assert main(["warmup", "--spec-file", str(spec_file), "--arch", "h100"]) == 1
    err = capsys.readouterr().err
    assert str(spec_file) in err and problem in err


def test_parallel_warmup_compiles_sm90_kernels_in_worker_processes(cache_dir, tmp_path, capsys,
                                                                   monkeypatch):
    pytest.importorskip("dgreg_sm90", reason="the dgreg-sm90 distribution is not installed")
    monkeypatch.setenv("DGREG_PLUGINS", "sm90")  # for the spawned workers
    monkeypatch.setenv("DGREG_CACHE_DIR", str(cache_dir))
    spec_file = tmp_path / "shapes.toml"
    spec_file.write_text('[[kernel]]\nop = "fp8_gemm"\nm = [64, 4096]\nn = 2112\nk = 7168\n')
    with config.scope(DGREG_PLUGINS=("sm90",)):
        assert main(["warmup", "--spec-file", str(spec_file), "--arch", "h100", "--jobs", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("compiled ") == 2 and "sm90.fp8_gemm" in out
    assert "2 kernel(s) ready" in out and "2 process(es)" in out
    assert len(KernelCache(cache_dir).entries()) == 2


def test_explain_sass_summarises_the_chosen_kernel(cache_dir, capsys):
    pytest.importorskip("dgreg_sm90", reason="the dgreg-sm90 distribution is not installed")
    from dgreg.sass import find_tool

    try:
        find_tool("cuobjdump")
    except DgregError as exc:
        pytest.skip(str(exc))
    with config.scope(DGREG_PLUGINS=("sm90",)):
        assert main(["explain", "fp8_gemm", "--m", "256", "--n", "7168", "--k", "7168",
                     "--device", "h100", "--sass", "--json"]) == 0
    sass = json.loads(capsys.readouterr().out)["sass"]
    assert sass["QGMMA"] >= 4 and sass["HGMMA"] == 0 and sass["local_memory_instructions"] == 0
    assert sass["registers"] > 0 and sass["spill_bytes"] == 0
    assert main(["explain", "bf16_gemm", "--m", "8", "--n", "8", "--k", "8", "--sass"]) == 0
    assert "not compiled by dgreg" in capsys.readouterr().out
