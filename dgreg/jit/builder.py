"""From a plugin's kernel source to a cached cubin: the lifecycle of one JIT kernel.

``build(registry, candidate, spec, config, device)``:

1. ``dgreg_generate_source`` -> :class:`KernelSource` (raises PluginError if no plugin answers);
2. ``dgreg_sass_passes`` -> the passes to apply, whose names and versions enter the key;
3. the cache key: the source, its headers, flags, compiler id and version, arch, passes,
   and the plugin's distribution and version;
4. on a miss, and only then: refuse if a CUDA graph is being captured (:class:`CaptureError`),
   print a one-time notice in interactive processes, ``dgreg_compile`` (the core's nvcc/NVRTC
   backend unless a plugin overrides it; raises CompileError), apply the passes in order,
   publish atomically (:mod:`dgreg.jit.cache`).

Returns a :class:`BuiltKernel`; nothing here needs a GPU.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from typing import Any

import attrs

from dgreg import config
from dgreg.device import Device
from dgreg.errors import CaptureError, PluginError
from dgreg.jit.cache import CacheEntry, KernelCache, digest
from dgreg.jit.compiler import PtxasReport, compiler_id
from dgreg.kernel import Candidate, KernelSource, SassPass

__all__ = ["BuiltKernel", "build", "build_source", "is_capturing"]

_noticed = False


def is_capturing() -> bool:
    """True while the current CUDA stream is capturing a graph (tests may replace this)."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return False
    return bool(torch.cuda.is_current_stream_capturing())


@attrs.frozen
class BuiltKernel:
    key: str
    entry: CacheEntry
    source: KernelSource
    built: bool  # compiled by this call (False: a cache hit)
    seconds: float

    @property
    def cubin(self) -> bytes:
        return self.entry.cubin

    @property
    def ptxas(self) -> PtxasReport:
        return PtxasReport(**self.entry.meta.get("ptxas", {}))


def _notice(name: str) -> None:
    global _noticed
    if _noticed:
        return
    _noticed = True
    if sys.stderr.isatty():
        print(f"dgreg: compiling {name} (first use of this kernel; this can take a few seconds. "
              f"`dgreg warmup` precompiles kernels ahead of time)", file=sys.stderr)


def _dump_sass(workdir: Any) -> None:
    tool = shutil.which("cuobjdump")
    if tool is None:
        (workdir / "kernel.sass").write_text("cuobjdump not found on PATH\n")
        return
    out = subprocess.run([tool, "-sass", str(workdir / "kernel.cubin.raw")], capture_output=True,
                         text=True, check=False)
    (workdir / "kernel.sass").write_text(out.stdout + out.stderr)


def build_source(source: KernelSource, *, passes: tuple[SassPass, ...] = (),
                 compile_fn: Any = None, identity: dict[str, Any] | None = None,
                 cache: KernelCache | None = None, name: str = "") -> BuiltKernel:
    """Compile (or fetch from the cache) one kernel source; see the module doc."""
    from dgreg.jit.compiler import compile_source

    cache = cache or KernelCache()
    compile_fn = compile_fn or compile_source
    compiler = compiler_id()
    key = digest({
        "entry": source.entry, "code": source.code, "arch": source.arch,
        "headers": sorted(source.headers.items()), "options": list(source.options),
        "compiler": compiler, "passes": [f"{p.name}@{p.version}" for p in passes],
        **(identity or {}),
    })
    start = time.perf_counter()

    def make(workdir: Any) -> tuple[bytes, dict[str, Any]]:
        if is_capturing():
            raise CaptureError(
                f"dgreg would have to compile kernel {name or source.entry} while a CUDA graph "
                f"is being captured; run the same call once before capturing (warm up), or "
                f"precompile with `dgreg warmup`")
        _notice(name or source.entry)
        binary = compile_fn(source)
        cubin = binary.cubin
        (workdir / "kernel.cu").write_text(source.code)
        (workdir / "compile.log").write_text(binary.ptxas_report)
        if config.get("DGREG_DUMP_SASS"):
            (workdir / "kernel.cubin.raw").write_bytes(cubin)
            _dump_sass(workdir)
        from dgreg.sass.passes import run_passes

        cubin, applied = run_passes(cubin, passes)
        meta = {"name": name, "entry": source.entry, "arch": source.arch,
                "compiler": binary.compiler, "sass_passes": applied,
                "ptxas": attrs.asdict(PtxasReport.parse(binary.ptxas_report)),
                "compile_seconds": round(time.perf_counter() - start, 3), **(identity or {})}
        return cubin, meta

    entry, built = cache.get_or_build(key, make)
    return BuiltKernel(key, entry, source, built, time.perf_counter() - start)


def build(registry: Any, candidate: Candidate, spec: Any, cfg: Any, device: Device,
          cache: KernelCache | None = None) -> BuiltKernel:
    """Generate, compile (cached) and post-process the kernel ``candidate`` runs for ``cfg``."""
    source = registry.generate_source(candidate, spec, cfg, device)
    if not isinstance(source, KernelSource):
        raise PluginError(
            f"plugin {candidate.plugin!r}: dgreg_generate_source returned "
            f"{type(source).__name__} for {candidate.kernel_id} (a dgreg.KernelSource is needed)",
            plugin=candidate.plugin, hook="dgreg_generate_source")
    from dgreg.sass.passes import select

    passes = tuple(select(registry.sass_passes(source, device), source.arch, compiler_id()))

    def compile_via_hook(src: KernelSource) -> Any:
        binary = registry.compile(src, device)
        if binary is None:
            raise PluginError(f"no plugin compiled {candidate.kernel_id}", plugin=candidate.plugin,
                              hook="dgreg_compile")
        return binary

    identity = {"kernel_id": candidate.kernel_id, "plugin": candidate.distribution,
                "plugin_version": candidate.version, "spec": spec.name, "config": repr(cfg)}
    return build_source(source, passes=passes, compile_fn=compile_via_hook, identity=identity,
                        cache=cache, name=f"{candidate.kernel_id} {spec.name} {cfg!r}")
