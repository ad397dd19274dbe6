"""The values plugins and the core exchange: candidates, configs, kernel keys, sources, binaries.

A :class:`Candidate` is a kernel family a plugin offers; the core stamps it with the plugin's
name and distribution, ranks it, and asks it (through ``supports`` and ``reject``) whether it
serves a spec and a problem, each "no" carrying a human reason that ``explain`` shows.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from dgreg.call import GemmCall
    from dgreg.device import Device
    from dgreg.spec import GemmSpec, Problem

__all__ = [
    "Binary",
    "Candidate",
    "ConfigChoice",
    "KernelKey",
    "KernelSource",
    "LaunchSpec",
    "SassPass",
]

_KERNEL_ID_RE = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)*$")


def _kernel_id(instance: object, attribute: attrs.Attribute, value: object) -> None:
    if not isinstance(value, str) or not _KERNEL_ID_RE.match(value):
        raise ValueError(
            f"'kernel_id' must be dotted lower-case words such as 'sm90.fp8_gemm' (got {value!r})")


def _optional_callable(instance: object, attribute: attrs.Attribute, value: object) -> None:
    if value is not None and not callable(value):
        raise TypeError(f"'{attribute.name}' must be callable or None (got {value!r})")


@attrs.frozen(eq=False, repr=False)
class Candidate:
    """A kernel family offered by a plugin.

    - ``supports(spec, device)`` returns ``None`` when the family serves the spec on the
      device, else the reason it does not ("layout TN needs a K-major A").
    - ``reject(spec, problem)`` (optional) refuses particular sizes with a reason.
    - ``run(call)`` executes the call in Python (torch, a vendor library, a prebuilt kernel).
      A candidate without ``run`` is a JIT family: the core compiles and launches it through
      the ``dgreg_heuristic`` / ``dgreg_generate_source`` / ``dgreg_compile`` /
      ``dgreg_sass_passes`` / ``dgreg_launch_args`` hooks.
    - ``priority``: higher wins among accepting candidates; arch-specific kernels use 100+.
    - ``fallback``: the last resort (the torch reference); choosing it warns once.
    - ``plugin``, ``distribution``, ``version`` are filled in by the registry.
    """

    kernel_id: str = attrs.field(validator=_kernel_id)
    supports: Callable[[GemmSpec, Device], str | None] = attrs.field(
        validator=attrs.validators.is_callable())
    reject: Callable[[GemmSpec, Problem], str | None] | None = attrs.field(
        default=None, validator=_optional_callable)
    run: Callable[[GemmCall], None] | None = attrs.field(default=None, validator=_optional_callable)
    priority: int = attrs.field(default=0, validator=attrs.validators.instance_of(int))
    description: str = ""
    needs_cuda: bool = True
    fallback: bool = False
    plugin: str = ""
    distribution: str = ""
    version: str = ""

    @property
    def is_jit(self) -> bool:
        return self.run is None

    def __repr__(self) -> str:
        owner = f"@{self.plugin}" if self.plugin else ""
        return f"Candidate({self.kernel_id}{owner}, priority={self.priority})"


@attrs.frozen
class ConfigChoice:
    """What a heuristic decided: the ``config`` (a hashable plugin-defined attrs value), the
    figures that justify it (waves, SM utilisation, stages, shared memory...), and the
    scored ``alternatives`` it considered, best first, for ``explain``."""

    config: Any
    figures: Mapping[str, Any] = attrs.field(factory=dict)
    alternatives: tuple[tuple[Any, float, str], ...] = ()


@attrs.frozen
class KernelKey:
    """Identifies one compiled kernel instance: family, spec, config and arch."""

    kernel_id: str
    spec: GemmSpec
    config: Any
    arch: str

    def digest(self) -> str:
        text = f"{self.kernel_id}|{self.spec.name}|{self.config!r}|{self.arch}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def __str__(self) -> str:
        return f"{self.kernel_id}/{self.spec.name}/{self.arch}/{self.digest()}"


@attrs.frozen
class KernelSource:
    """CUDA source of one kernel instance, every config value a compile-time constant."""

    code: str
    entry: str  # the (extern "C") kernel symbol to launch
    arch: str  # "sm_90a", "sm_100a", ...
    options: tuple[str, ...] = ()  # extra compiler flags
    headers: Mapping[str, str] = attrs.field(factory=dict)  # include name -> content


@attrs.frozen
class Binary:
    """A compiled cubin with what produced it."""

    cubin: bytes = attrs.field(repr=lambda b: f"<{len(b)} bytes>")
    compiler: str  # compiler id and version, e.g. "nvcc 13.0.88"
    ptxas_report: str = ""
    sass_passes: tuple[str, ...] = ()  # "name@version" of the passes applied, in order


@attrs.frozen
class SassPass:
    """A SASS post-processing pass a plugin contributes.

    ``apply(cubin) -> dgreg.sass.PassResult`` (the new bytes and what it changed, which the
    framework verifies); ``applies(arch, compiler)`` limits it (``"sm_90a"``,
    ``"nvcc 13.0.88"``); ``default`` says whether it runs unless ``DGREG_SASS_PASSES`` says
    otherwise. The name and version are part of the kernel-cache key.
    """

    name: str
    version: int
    apply: Callable[[bytes], Any] = attrs.field(validator=attrs.validators.is_callable())
    applies: Callable[[str, str], bool] | None = attrs.field(default=None, validator=_optional_callable)
    default: bool = False


@attrs.frozen
class LaunchSpec:
    """How to launch a kernel for calls of one planned shape.

    ``pack(call)`` returns the kernel's arguments for one call, in order; ``arg_types`` gives
    each one's ctypes type (``None`` for driver objects such as a ``CUtensorMap``). The hot path
    calls ``pack`` and launches; it calls no hook. A tensor ``pack`` makes (a converted copy)
    must stay referenced until ``pack`` returns: torch's caching allocator may hand a block
    freed earlier to the next tensor ``pack`` makes, before the kernel that reads it is queued.

    ``reusable(call)`` (optional) says whether ``pack``'s result for ``call`` is a function of
    nothing but its tensors' data pointers and the current stream, for every call whose tensors
    have the same dtypes, shapes, strides and devices (``pack`` makes no tensor for it). The
    core then packs each such (pointers, stream) once, keeps the launch's argument array, and
    relaunches it on repeats without calling ``pack``.
    """

    grid: tuple[int, int, int]
    block: tuple[int, int, int]
    pack: Callable[[Any], tuple[Any, ...]] = attrs.field(validator=attrs.validators.is_callable())
    arg_types: tuple[Any, ...] = ()
    cluster: tuple[int, int, int] = (1, 1, 1)
    shared_mem: int = 0
    reusable: Callable[[Any], bool] | None = attrs.field(default=None, validator=_optional_callable)
