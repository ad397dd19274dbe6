"""The core's own JIT plugin: the default ``dgreg_compile`` (nvcc or NVRTC), ``trylast`` so
that a plugin may compile its own sources differently."""

from __future__ import annotations

from dgreg.hookspecs import API_VERSION, hookimpl
from dgreg.kernel import Binary, KernelSource


class JitPlugin:
    @hookimpl
    def dgreg_api_version(self) -> int:
        return API_VERSION

    @hookimpl
    def dgreg_plugin_info(self) -> dict[str, object]:
        return {"archs": ["*"], "description": "default compiler backend (nvcc or NVRTC)"}

    @hookimpl(trylast=True)
    def dgreg_compile(self, source: KernelSource, device: object) -> Binary:
        from dgreg.jit.compiler import compile_source

        return compile_source(source)
