"""The JIT toolchain on the CPU: real nvcc compiles, the cache's guarantees, the capture guard."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from toy_jit_plugin import ToyJitPlugin, toy_source

import dgreg
from dgreg import CaptureError, CompileError, KernelSource, SassPass, config
from dgreg.errors import CacheError
from dgreg.jit import KernelCache, PtxasReport, build, build_source, compiler_id, gencode_flag
from dgreg.jit import builder as build_module
from dgreg.sass.passes import PassResult

pytestmark = pytest.mark.skipif(shutil.which("nvcc") is None and not os.environ.get("CUDA_HOME"),
                                reason="needs nvcc (the CUDA toolkit) on PATH or in CUDA_HOME")

ELF = b"\x7fELF"


@pytest.fixture
def cache(tmp_path) -> KernelCache:
    return KernelCache(tmp_path / "cache")


@pytest.mark.parametrize("arch", ["sm_90a", "sm_100a"])
def test_compiles_a_real_kernel_for_each_arch(arch, cache, tmp_path):
    built = build_source(toy_source(arch), cache=cache)
    assert built.built and built.cubin.startswith(ELF)
    assert built.entry.meta["arch"] == arch and built.entry.meta["compiler"].startswith("nvcc 13.")
    assert built.ptxas.registers > 0 and not built.ptxas.spills
    assert (built.entry.path / "compile.log").read_text()
    assert (built.entry.path / "kernel.cu").read_text().startswith("#define TILE 16")
    from dgreg.sass import disassemble, find_tool

    try:
        find_tool("cuobjdump")
    except dgreg.DgregError:
        return
    sass = disassemble(built.cubin)
    assert f"code for {arch}" in sass and "toy_bf16_gemm_nt" in sass


def test_gencode_flag_form():
    assert gencode_flag("sm_90a") == "-gencode=arch=compute_90a,code=sm_90a"
    assert gencode_flag("sm_100a") == "-gencode=arch=compute_100a,code=sm_100a"
    with pytest.raises(CompileError, match="sm_90a"):
        gencode_flag("hopper")


def test_cache_miss_then_hit(cache):
    first = build_source(toy_source(), cache=cache)
    second = build_source(toy_source(), cache=cache)
    assert first.built and not second.built
    assert first.key == second.key and first.cubin == second.cubin
    assert len(cache.entries()) == 1


def test_key_covers_every_input(cache):
    base = build_source(toy_source(), cache=cache).key
    flip = SassPass("noop", 1, PassResult)
    flip2 = SassPass("noop", 2, PassResult)
    keys = {
        "source": build_source(toy_source(tile=8), cache=cache).key,
        "arch": build_source(toy_source("sm_100a"), cache=cache).key,
        "options": build_source(KernelSource(toy_source().code, "toy_bf16_gemm_nt", "sm_90a",
                                             options=("-lineinfo",)), cache=cache).key,
        "headers": build_source(KernelSource(toy_source().code, "toy_bf16_gemm_nt", "sm_90a",
                                             headers={"x.cuh": "// v1"}), cache=cache).key,
        "pass": build_source(toy_source(), passes=(flip,), cache=cache).key,
        "pass version": build_source(toy_source(), passes=(flip2,), cache=cache).key,
        "plugin version": build_source(toy_source(), identity={"plugin_version": "9"},
                                       cache=cache).key,
    }
    assert base not in keys.values()
    assert len(set(keys.values())) == len(keys), keys


KEY_SCRIPT = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from dgreg.jit import KernelCache, build_source
    from toy_jit_plugin import toy_source
    built = build_source(toy_source(), cache=KernelCache({root!r}))
    print(built.key, built.built)
""")


def test_key_is_stable_across_processes(cache):
    here = build_source(toy_source(), cache=cache)
    script = KEY_SCRIPT.format(tests=str(Path(__file__).parent), root=str(cache.root))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    key, built = out.stdout.split()
    assert key == here.key and built == "False"


RACE_SCRIPT = textwrap.dedent("""
    import hashlib, sys
    sys.path.insert(0, {tests!r})
    from dgreg.jit import KernelCache, build_source
    from toy_jit_plugin import toy_source
    built = build_source(toy_source(tile=4), cache=KernelCache({root!r}))
    print(built.built, hashlib.sha256(built.cubin).hexdigest())
""")


def test_four_racing_processes_compile_once(cache, tmp_path):
    counter = tmp_path / "compiles"
    wrapper = tmp_path / "nvcc"
    real = shutil.which("nvcc") or os.path.join(os.environ["CUDA_HOME"], "bin", "nvcc")
    wrapper.write_text(f'#!/bin/sh\ncase "$*" in *--version*) ;; *) echo x >> {counter} ;; esac\n'
                       f'exec {real} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    env = {**os.environ, "DGREG_NVCC": str(wrapper)}
    script = RACE_SCRIPT.format(tests=str(Path(__file__).parent), root=str(cache.root))
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for _ in range(4)]
    results = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [r[1] for r in results]
    lines = [r[0].split() for r in results]
    assert sorted(b for b, _ in lines) == ["False", "False", "False", "True"]
    assert len({h for _, h in lines}) == 1
    assert counter.read_text().count("x") == 1
    assert not list((cache.root / ".tmp").iterdir())  # no staging debris


def test_truncated_cubin_is_detected_and_rebuilt(cache):
    first = build_source(toy_source(), cache=cache)
    cubin_path = first.entry.path / "kernel.cubin"
    cubin_path.write_bytes(first.cubin[: len(first.cubin) // 2])
    with pytest.warns(UserWarning, match="truncated or corrupt; rebuilding"):
        again = build_source(toy_source(), cache=cache)
    assert again.built and again.cubin == first.cubin
    assert cubin_path.read_bytes() == first.cubin
    garbage = json.loads((first.entry.path / "meta.json").read_text())
    garbage["cubin_sha256"] = "0" * 64
    (first.entry.path / "meta.json").write_text(json.dumps(garbage))
    with pytest.warns(UserWarning, match="rebuilding"):
        assert build_source(toy_source(), cache=cache).built


def test_read_only_cache_serves_hits_and_refuses_misses(cache, tmp_path):
    build_source(toy_source(), cache=cache)
    if os.geteuid() == 0:  # root ignores permission bits: block the writes another way
        shutil.rmtree(cache.root / ".locks")
        (cache.root / ".locks").write_text("not a directory")
    else:
        for path in [cache.root, *cache.root.rglob("*")]:
            if path.is_dir():
                path.chmod(0o555)
    try:
        assert not build_source(toy_source(), cache=cache).built  # a hit needs no write
        with pytest.raises(CacheError, match=r"not writable .* has no entry for kernel"):
            build_source(toy_source(tile=2), cache=cache)
    finally:
        for path in [cache.root, *cache.root.rglob("*")]:
            if path.is_dir():
                path.chmod(0o755)


def test_compile_error_carries_command_log_and_path(cache):
    bad = KernelSource('extern "C" __global__ void broken() { this is not cuda; }', "broken",
                       "sm_90a")
    with pytest.raises(CompileError) as exc:
        build_source(bad, cache=cache)
    message = str(exc.value)
    assert "command: " in message and "-gencode=arch=compute_90a,code=sm_90a" in message
    assert "error" in message
    log_path = Path(message.split("log: ")[1].splitlines()[0])
    assert log_path.exists() and "this is not cuda" not in log_path.name
    assert not cache.entries()


def test_capture_guard_refuses_to_compile_but_serves_hits(cache, monkeypatch):
    build_source(toy_source(), cache=cache)
    monkeypatch.setattr(build_module, "is_capturing", lambda: True)
    assert not build_source(toy_source(), cache=cache).built
    with pytest.raises(CaptureError, match="warm up"):
        build_source(toy_source(tile=32), cache=cache)


def test_compiler_settings(cache, capsys, monkeypatch):
    with config.scope(DGREG_PRINT_COMPILER_COMMAND=True, DGREG_PTXAS_VERBOSE=True):
        build_source(toy_source(tile=12), cache=cache)
    err = capsys.readouterr().err
    assert "dgreg: " in err and "nvcc" in err and "Used " in err
    assert compiler_id().startswith("nvcc 13.")
    with config.scope(DGREG_NVCC="/nonexistent/nvcc"), pytest.raises(CompileError, match="DGREG_NVCC"):
        compiler_id()


def test_ptxas_report_parsing():
    log = ("ptxas info    : Used 168 registers, used 1 barriers, 24 bytes smem\n"
           "ptxas info    : 8 bytes stack frame, 4 bytes spill stores, 4 bytes spill loads\n")
    report = PtxasReport.parse(log)
    assert report == PtxasReport(168, 4, 4, 8, 24) and report.spills


def test_toy_plugin_builds_through_the_hooks(make_registry, tmp_path):
    from dgreg import dispatch
    from dgreg.device import preset
    from dgreg.spec import Problem, spec_for

    plugin = ToyJitPlugin()
    registry = make_registry(("toy", plugin))
    spec = spec_for("bf16_gemm")
    res = dispatch.resolve(spec, preset("h100"), Problem(64, 64, 64))
    assert res.chosen.kernel_id == "toy.bf16_gemm_naive"
    built = build(registry, res.chosen, spec, res.choice.config, res.device,
                  cache=KernelCache(tmp_path / "c"))
    assert built.built and built.entry.meta["plugin"] == "test-toy"
    assert built.entry.meta["kernel_id"] == "toy.bf16_gemm_naive"
    assert plugin.source_calls == 1
    digest = hashlib.sha256(built.cubin).hexdigest()
    assert built.entry.meta["cubin_sha256"] == digest


def test_launch_argument_slots_hold_each_value_at_its_own_8_byte_slot():
    import ctypes
    import struct

    from dgreg.jit.launch import _arg_layout

    types = (None, None, ctypes.c_void_p, ctypes.c_longlong, ctypes.c_int, ctypes.c_float,
             ctypes.c_int)
    fmt, objects, first, last = _arg_layout(types)
    assert (objects, first, last) == ((0, 1), 2, 7)
    assert struct.calcsize(fmt) == 8 * (last - first)
    values = (0xDEADBEEF000, -3, 7, 1.5, -1)
    buffer = bytearray(8 * len(types))
    struct.pack_into(fmt, buffer, 8 * first, *values)
    slot = lambda i, t: t.from_buffer(buffer, 8 * i).value  # noqa: E731
    assert slot(2, ctypes.c_void_p) == 0xDEADBEEF000
    assert slot(3, ctypes.c_longlong) == -3
    assert slot(4, ctypes.c_int) == 7
    assert slot(5, ctypes.c_float) == 1.5
    assert slot(6, ctypes.c_int) == -1


def test_launch_argument_layout_rejects_objects_between_scalars_and_unknown_types():
    import ctypes

    from dgreg.errors import DgregError
    from dgreg.jit.launch import _arg_layout

    with pytest.raises(DgregError, match="before or after every scalar"):
        _arg_layout((ctypes.c_int, None, ctypes.c_int))
    with pytest.raises(DgregError, match="unsupported ctypes type"):
        _arg_layout((ctypes.c_char_p,))
    assert _arg_layout(()) == ("", (), 0, 0)


def test_launch_config_structs_match_the_driver_abi():
    import ctypes

    from dgreg.jit.launch import _LaunchAttribute, _LaunchConfig

    assert ctypes.sizeof(_LaunchConfig) == 56  # CUlaunchConfig on 64-bit Linux
    assert _LaunchConfig.hStream.offset == 32 and _LaunchConfig.numAttrs.offset == 48
    assert ctypes.sizeof(_LaunchAttribute) == 72 and _LaunchAttribute.cluster.offset == 8


class _DriverObject:
    """Stands in for a cuda-bindings driver object (a ``CUtensorMap``): an address."""

    def __init__(self, address):
        self.address = address

    def getPtr(self):
        return self.address


def _recording_driver(monkeypatch, arg_types):
    """(seen, kernel): the driver's launch replaced by a recorder of each launch's config and
    arguments (driver objects' addresses, scalars' values), and a kernel without a GPU that
    has only what binding reads."""
    import ctypes

    from dgreg.jit import launch as launch_module
    from dgreg.jit.launch import LoadedKernel, _LaunchAttribute, _LaunchConfig

    seen = []

    def fake_driver(config_ref, function, array_ref, extra):
        cfg = _LaunchConfig.from_address(config_ref)
        array = (ctypes.c_void_p * len(arg_types)).from_address(array_ref)
        cluster = tuple(_LaunchAttribute.from_address(cfg.attrs).cluster) if cfg.numAttrs else None
        args = tuple(array[i] if t is None else t.from_address(array[i]).value
                     for i, t in enumerate(arg_types))
        seen.append({"grid": cfg.gridDimX, "smem": cfg.sharedMemBytes, "stream": cfg.hStream,
                     "cluster": cluster, "function": function, "args": args})
        return 0

    monkeypatch.setattr(launch_module, "_driver_launch", lambda: fake_driver)
    kernel = object.__new__(LoadedKernel)
    kernel._handle, kernel.entry, kernel.shared_mem = 0x77, "toy", 1 << 20
    return seen, kernel


def test_a_bound_launch_passes_config_scalars_and_object_addresses(monkeypatch):
    """The ctypes launch with the driver replaced by a recorder: grid, cluster and stream in
    the config, scalars in their slots, and each driver object's address, rewritten only
    when a call passes another object."""
    import ctypes

    from dgreg.jit import launch as launch_module

    types = (None, None, ctypes.c_longlong, ctypes.c_int)
    seen, kernel = _recording_driver(monkeypatch, types)
    monkeypatch.setattr(launch_module, "raw_stream_getter", lambda: lambda device: 0x5000 + device)
    kernel.device = 1
    launch = kernel.bind((6, 1, 1), (384, 1, 1), types, cluster=(2, 1, 1), shared_mem=4096)
    first, second, third = _DriverObject(0x1000), _DriverObject(0x2000), _DriverObject(0x3000)
    launch((first, second, -(1 << 40), 7))
    launch((first, second, 5, -2))
    launch((first, third, 5, -2))
    assert [s["args"][:2] for s in seen] == [(0x1000, 0x2000), (0x1000, 0x2000), (0x1000, 0x3000)]
    assert [s["args"][2:] for s in seen] == [(-(1 << 40), 7), (5, -2), (5, -2)]
    assert {(s["grid"], s["smem"], s["stream"], s["cluster"], s["function"]) for s in seen} == \
        {(6, 4096, 0x5001, (2, 1, 1), 0x77)}


def test_a_prepared_launch_keeps_its_own_arguments_and_sets_only_the_stream(monkeypatch):
    """``bind_prepared``: each prepared array holds its own scalars and object addresses (a
    later ``prepare`` leaves an earlier one as it was), and a launch passes the array as
    built with the stream it is given."""
    import ctypes

    types = (None, ctypes.c_longlong, ctypes.c_int)
    recorded, kernel = _recording_driver(monkeypatch, types)
    kernel.device = 0
    prepare, launch = kernel.bind_prepared((6, 1, 1), (384, 1, 1), types, cluster=(2, 1, 1),
                                           shared_mem=4096)
    first = prepare((_DriverObject(0x1000), -(1 << 40), 7))
    second = prepare((_DriverObject(0x2000), 5, -2))
    launch(first, 0x5000)
    launch(second, 0x6000)
    launch(first, 0x6000)
    seen = [(s["grid"], s["smem"], s["stream"], s["cluster"], s["function"], *s["args"])
            for s in recorded]
    assert seen == [(6, 4096, 0x5000, (2, 1, 1), 0x77, 0x1000, -(1 << 40), 7),
                    (6, 4096, 0x6000, (2, 1, 1), 0x77, 0x2000, 5, -2),
                    (6, 4096, 0x6000, (2, 1, 1), 0x77, 0x1000, -(1 << 40), 7)]
