"""Every ``DGREG_*`` environment variable in one typed place.

Read a value with ``config.get("DGREG_STRICT")`` or the attribute shortcut ``config.strict``;
override for a block of code (tests, the CLI) with ``config.scope(DGREG_STRICT=True)``. The
listing behind ``dgreg config`` comes from :func:`describe`. Values are read from the
environment on each access so a change made before a call is seen by that call.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any

import attrs

__all__ = ["KNOBS", "Knob", "describe", "get", "scope"]


def _parse_bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"environment variable {name} must be one of 1/0/true/false (got {raw!r})")


def _parse_list(name: str, raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _parse_str(name: str, raw: str) -> str | None:
    return raw.strip() or None


_PARSERS: dict[str, Callable[[str, str], Any]] = {
    "bool": _parse_bool,
    "list": _parse_list,
    "str": _parse_str,
    "path": _parse_str,
}


@attrs.frozen
class Knob:
    name: str
    kind: str  # "bool" | "list" | "str" | "path"
    default: Any
    doc: str

    def parse(self, raw: str) -> Any:
        return _PARSERS[self.kind](self.name, raw)


def _knobs(*knobs: Knob) -> dict[str, Knob]:
    return {k.name: k for k in knobs}


KNOBS: dict[str, Knob] = _knobs(
    Knob("DGREG_ARCH", "str", None,
         "Pretend the GPU is this arch (sm90a, sm100a, cpu, or a plugin's tag) for resolution, "
         "explain and code generation; a known tag also supplies that GPU's SM count and limits."),
    Knob("DGREG_PLUGINS", "list", None,
         "Comma-separated allow-list of external plugins to load (entry-point names). Unset: load "
         "all installed; empty: load none. The built-in reference plugin is always loaded."),
    Knob("DGREG_DISABLE_PLUGINS", "list", (),
         "Comma-separated block-list of plugins not to load (applies after DGREG_PLUGINS)."),
    Knob("DGREG_TRACE_PLUGINS", "bool", False,
         "Print every plugin hook call and its result to stderr."),
    Knob("DGREG_FORCE_PLUGIN", "str", None,
         "Pin every call to this plugin (same as dgreg.use(plugin=...)); its failure to serve a "
         "call is an error, not a fallback."),
    Knob("DGREG_STRICT", "bool", False,
         "Make falling back to the torch reference an error (NoKernelError) instead of a "
         "one-time warning."),
    Knob("DGREG_CACHE_DIR", "path", None,
         "Kernel cache directory (default ~/.cache/dgreg). A read-only directory serves hits "
         "and turns a miss into CacheError."),
    Knob("DGREG_NVCC", "path", None,
         "nvcc to compile with (default: $CUDA_HOME/bin/nvcc, then nvcc on PATH)."),
    Knob("DGREG_JIT_BACKEND", "str", "nvcc",
         "Compiler backend: nvcc (default) or nvrtc (in-process, needs cuda-bindings; no host "
         "code, no system headers)."),
    Knob("DGREG_PRINT_COMPILER_COMMAND", "bool", False,
         "Print each compiler command (or NVRTC option list) to stderr."),
    Knob("DGREG_PTXAS_VERBOSE", "bool", False,
         "Print ptxas's resource report (registers, spills, shared memory) after each compile; "
         "the report is always kept in the cache entry."),
    Knob("DGREG_DUMP_SASS", "bool", False,
         "Also write the disassembly (kernel.sass, via cuobjdump) into each new cache entry."),
    Knob("DGREG_SASS_PASSES", "list", None,
         "SASS passes to switch on or off: 'name' enables, '-name' disables, 'none' disables "
         "all (unset: each pass's default). Part of the kernel-cache key."),
    Knob("DGREG_SASS_DEBUG", "bool", False, "Print each SASS pass's statistics to stderr."),
)

_overrides: list[dict[str, Any]] = []
_listeners: list[Callable[[], None]] = []


def on_change(listener: Callable[[], None]) -> None:
    """Call ``listener`` whenever a ``scope`` begins or ends (caches built on settings)."""
    _listeners.append(listener)


def _changed() -> None:
    for listener in _listeners:
        listener()


def get(name: str) -> Any:
    """Return the typed value of ``name``: a scope override, else the environment, else default."""
    knob = KNOBS.get(name)
    if knob is None:
        raise KeyError(f"unknown dgreg setting {name!r}; known: {', '.join(sorted(KNOBS))}")
    for layer in reversed(_overrides):
        if name in layer:
            return layer[name]
    raw = os.environ.get(name)
    if raw is None:
        return knob.default
    return knob.parse(raw)


def _attr_name(name: str) -> str:
    return name.removeprefix("DGREG_").lower()


_BY_ATTR = {_attr_name(n): n for n in KNOBS}


def __getattr__(attr: str) -> Any:  # config.strict, config.arch, ...
    name = _BY_ATTR.get(attr)
    if name is None:
        raise AttributeError(f"module 'dgreg.config' has no attribute {attr!r}")
    return get(name)


@contextlib.contextmanager
def scope(**overrides: Any) -> Iterator[None]:
    """Override settings for the duration of a ``with`` block (keys are the variable names).

    A value of ``None`` means "unset" for settings whose default is ``None``.
    """
    unknown = sorted(set(overrides) - set(KNOBS))
    if unknown:
        raise KeyError(f"unknown dgreg setting(s) {unknown}; known: {', '.join(sorted(KNOBS))}")
    _overrides.append(dict(overrides))
    _changed()
    try:
        yield
    finally:
        _overrides.pop()
        _changed()


def describe() -> list[dict[str, Any]]:
    """Every setting with its current value, whether it is set, its default and its doc."""
    rows = []
    for name, knob in KNOBS.items():
        rows.append({
            "name": name,
            "value": get(name),
            "set": name in os.environ or any(name in layer for layer in _overrides),
            "default": knob.default,
            "type": knob.kind,
            "doc": knob.doc,
        })
    return rows


def register(knob: Knob) -> Knob:
    """Add a setting (used by dgreg subpackages that own their variables, e.g. the JIT)."""
    if knob.name in KNOBS and KNOBS[knob.name] != knob:
        raise ValueError(f"setting {knob.name} is already defined differently")
    KNOBS[knob.name] = knob
    _BY_ATTR[_attr_name(knob.name)] = knob.name
    return knob
