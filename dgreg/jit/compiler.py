"""Compiler backends: CUDA source to cubin with nvcc (default) or NVRTC.

Both are reached through the core's default ``dgreg_compile`` hook implementation. nvcc is
found through ``DGREG_NVCC``, ``$CUDA_HOME/bin/nvcc``, then ``PATH``. NVRTC compiles in
process (``cuda.bindings.nvrtc``) and lacks what nvcc's driver provides: host code, system
and C++ standard headers (``<cuda.h>``, ``<cstdint>``), so sources for it must be
self-contained device code; it needs no ``nvcc`` on the machine.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import attrs

from dgreg import config
from dgreg.errors import CompileError
from dgreg.kernel import Binary, KernelSource

__all__ = ["PtxasReport", "compile_source", "compiler_id", "find_nvcc", "gencode_flag"]

_LOG_HEAD_LINES = 20
BASE_FLAGS = ("-cubin", "-O3", "-std=c++17", "--expt-relaxed-constexpr",
              "-Xptxas=-v,--warn-on-local-memory-usage", "-diag-suppress=177")


@attrs.frozen
class PtxasReport:
    """ptxas's resource usage for one kernel."""

    registers: int = 0
    spill_stores: int = 0
    spill_loads: int = 0
    stack_frame: int = 0
    shared_bytes: int = 0

    @property
    def spills(self) -> bool:
        return bool(self.spill_stores or self.spill_loads)

    @classmethod
    def parse(cls, log: str) -> PtxasReport:
        def grab(pattern: str) -> int:
            found = re.findall(pattern, log)
            return max((int(v) for v in found), default=0)

        return cls(
            registers=grab(r"Used (\d+) registers"),
            spill_stores=grab(r"(\d+) bytes spill stores"),
            spill_loads=grab(r"(\d+) bytes spill loads"),
            stack_frame=grab(r"(\d+) bytes stack frame"),
            shared_bytes=grab(r"(\d+) bytes smem"),
        )


def gencode_flag(arch: str) -> str:
    """``sm_90a`` -> ``-gencode=arch=compute_90a,code=sm_90a`` (the form that keeps wgmma legal)."""
    if not re.fullmatch(r"sm_\d{2,3}[a-z]?", arch):
        raise CompileError(f"target arch must look like 'sm_90a' (got {arch!r})")
    return f"-gencode=arch=compute_{arch[3:]},code={arch}"


def find_nvcc() -> str:
    """The nvcc to use, or CompileError saying where dgreg looked."""
    explicit = config.get("DGREG_NVCC")
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise CompileError(f"DGREG_NVCC={explicit} is not an executable file")
        return explicit
    for home in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH")):
        if home and os.access(os.path.join(home, "bin", "nvcc"), os.X_OK):
            return os.path.join(home, "bin", "nvcc")
    found = shutil.which("nvcc")
    if found:
        return found
    raise CompileError("nvcc not found: set DGREG_NVCC or CUDA_HOME, or put nvcc on PATH "
                       "(or use DGREG_JIT_BACKEND=nvrtc with cuda-bindings installed)")


@functools.lru_cache(maxsize=8)
def _nvcc_version(nvcc: str) -> str:
    out = subprocess.run([nvcc, "--version"], capture_output=True, text=True, check=False).stdout
    match = re.search(r"V(\d+\.\d+\.\d+)", out)
    if not match:
        raise CompileError(f"cannot read the version of {nvcc}: {out.strip()[:200]!r}")
    return match.group(1)


def _nvrtc_version() -> str:
    try:
        from cuda.bindings import nvrtc
    except ImportError as exc:
        raise CompileError("DGREG_JIT_BACKEND=nvrtc needs the cuda-bindings package "
                           "(pip install cuda-bindings)") from exc
    err, major, minor = nvrtc.nvrtcVersion()
    if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
        raise CompileError(f"NVRTC is not usable: nvrtcVersion returned {err}")
    return f"{major}.{minor}"


def _toolkit_include() -> list[str]:
    """``-I<toolkit>/include`` when a toolkit is around (NVRTC knows no system headers)."""
    try:
        nvcc = find_nvcc()
    except CompileError:
        return []
    include = Path(nvcc).resolve().parent.parent / "include"
    return [f"-I{include}"] if include.is_dir() else []


def backend() -> str:
    name = (config.get("DGREG_JIT_BACKEND") or "nvcc").lower()
    if name not in ("nvcc", "nvrtc"):
        raise CompileError(f"DGREG_JIT_BACKEND must be nvcc or nvrtc (got {name!r})")
    return name


def compiler_id() -> str:
    """``nvcc 13.0.88`` or ``nvrtc 13.0``: part of every cache key."""
    if backend() == "nvrtc":
        return f"nvrtc {_nvrtc_version()}"
    return f"nvcc {_nvcc_version(find_nvcc())}"


def _write_sources(workdir: Path, source: KernelSource) -> Path:
    for name, text in source.headers.items():
        target = workdir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    path = workdir / "kernel.cu"
    path.write_text(source.code)
    return path


def _fail(command: str, log: str, log_path: Path) -> CompileError:
    head = "\n".join(log.strip().splitlines()[:_LOG_HEAD_LINES])
    return CompileError(f"compilation failed\n  command: {command}\n  log: {log_path}\n{head}")


def compile_source(source: KernelSource, workdir: Path | None = None) -> Binary:
    """Compile ``source`` to a cubin in ``workdir`` (a fresh temp dir by default).

    The log (and for nvcc the command) stays in ``workdir/compile.log``; a failure raises
    :class:`CompileError` with the command, the first lines of the log and the log's path.
    """
    if workdir is None:
        workdir = Path(tempfile.mkdtemp(prefix="dgreg-compile-"))
    if backend() == "nvrtc":
        return _compile_nvrtc(source, workdir)
    nvcc = find_nvcc()
    src = _write_sources(workdir, source)
    out = workdir / "kernel.cubin"
    cmd = [nvcc, gencode_flag(source.arch), *BASE_FLAGS, *source.options, f"-I{workdir}",
           str(src), "-o", str(out)]
    command = " ".join(cmd)
    if config.get("DGREG_PRINT_COMPILER_COMMAND"):
        print(f"dgreg: {command}", file=sys.stderr)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=workdir)
    log = proc.stdout + proc.stderr
    log_path = workdir / "compile.log"
    log_path.write_text(f"$ {command}\n{log}")
    if proc.returncode != 0 or not out.exists():
        raise _fail(command, log, log_path)
    if config.get("DGREG_PTXAS_VERBOSE"):
        print(log, file=sys.stderr)
    return Binary(out.read_bytes(), f"nvcc {_nvcc_version(nvcc)}", ptxas_report=log)


def _compile_nvrtc(source: KernelSource, workdir: Path) -> Binary:
    from cuda.bindings import nvrtc

    _write_sources(workdir, source)
    options = [f"--gpu-architecture={source.arch}".encode(), b"-default-device", b"-std=c++17",
               b"--ptxas-options=-v", f"-I{workdir}".encode(),
               *(o.encode() for o in _toolkit_include()), *(o.encode() for o in source.options)]
    headers = list(source.headers.items())
    command = "nvrtc " + " ".join(o.decode() for o in options)
    if config.get("DGREG_PRINT_COMPILER_COMMAND"):
        print(f"dgreg: {command}", file=sys.stderr)
    err, prog = nvrtc.nvrtcCreateProgram(
        source.code.encode(), b"kernel.cu", len(headers),
        [h[1].encode() for h in headers], [h[0].encode() for h in headers])
    err, = nvrtc.nvrtcCompileProgram(prog, len(options), options)
    _, size = nvrtc.nvrtcGetProgramLogSize(prog)
    log_buf = b" " * size
    nvrtc.nvrtcGetProgramLog(prog, log_buf)
    log = log_buf.decode(errors="replace").rstrip("\x00 ")
    log_path = workdir / "compile.log"
    log_path.write_text(f"$ {command}\n{log}")
    if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
        nvrtc.nvrtcDestroyProgram(prog)
        raise _fail(command, log, log_path)
    _, cubin_size = nvrtc.nvrtcGetCUBINSize(prog)
    cubin = b" " * cubin_size
    nvrtc.nvrtcGetCUBIN(prog, cubin)
    nvrtc.nvrtcDestroyProgram(prog)
    return Binary(cubin, f"nvrtc {_nvrtc_version()}", ptxas_report=log)
