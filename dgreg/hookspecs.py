"""The plugin contract: every hook a dgreg plugin may implement.

A plugin is any object or module with functions marked ``@dgreg.hookimpl`` whose names match
the specs below, exposed through the ``dgreg.plugins`` entry-point group::

    [project.entry-points."dgreg.plugins"]
    sm120 = "dgreg_sm120.plugin"

Hooks are *collecting* (every plugin answers; the core combines the answers and owns the
policy: ranking, conflicts, fallback) unless marked *firstresult* (the first non-``None``
answer wins; plugins answer ``None`` for candidates that are not theirs). Arguments may be
omitted from an implementation's signature; pluggy passes only those it names.

Call order within one ``dgreg.gemm`` call: ``dgreg_register_kernels`` (once per device, at
first resolution) -> ``dgreg_heuristic`` (once per spec and problem) -> for a JIT candidate
whose kernel is not yet built: ``dgreg_generate_source`` -> ``dgreg_compile`` ->
``dgreg_sass_passes`` -> then ``dgreg_launch_args`` on each call that is not already planned.
The hot path (a repeated call with a seen shape) calls no hook.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from dgreg.call import GemmCall
    from dgreg.device import Device
    from dgreg.kernel import Binary, Candidate, ConfigChoice, KernelSource, LaunchSpec, SassPass
    from dgreg.spec import GemmSpec, Problem

PROJECT = "dgreg"

#: The contract version this core implements; plugins return it from ``dgreg_api_version``.
API_VERSION = 1

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def dgreg_api_version() -> int:
    """Return the plugin contract version this plugin was written against.

    Collecting; called once per plugin when the registry loads it. Required: a plugin that
    does not implement it, or returns a version other than :data:`API_VERSION`, is refused
    and listed as failed by ``dgreg plugins`` with the reason.
    """


@hookspec
def dgreg_plugin_info() -> dict[str, Any]:
    """Describe the plugin for ``dgreg plugins`` and ``dgreg info``.

    Collecting; called once per plugin when the registry loads it. Optional. Return a dict
    with any of: ``archs`` (list of arch tags the plugin serves, e.g. ``["sm90a"]``),
    ``description`` (one line), ``status`` (a caveat users must see, e.g. "compiled and
    inspected, not run on hardware").
    """


@hookspec
def dgreg_register_kernels(register: Callable[[Candidate], None], device: Device) -> None:
    """Offer kernel families for ``device`` by calling ``register(Candidate(...))``.

    Collecting; called once per plugin per device, at the first resolution for that device.
    Offer nothing for devices you cannot serve (an sm90 plugin registers nothing on sm100a).
    The registry stamps each candidate with the plugin's name and distribution. Registering
    a ``kernel_id`` another plugin already registered raises ``DuplicateKernelError``; an
    exception inside this hook disables the plugin with a warning naming it.
    """


@hookspec(firstresult=True)
def dgreg_heuristic(
    candidate: Candidate, spec: GemmSpec, problem: Problem, device: Device
) -> ConfigChoice | None:
    """Choose the kernel configuration for ``candidate`` on ``problem``.

    firstresult; called once per (candidate, spec, problem, device), the result cached by the
    core. Return ``None`` if ``candidate`` is not yours. Must be deterministic: the same
    arguments give the same ``ConfigChoice``. Put the scored losers in ``alternatives`` and
    the deciding figures in ``figures`` so ``explain`` can show why.
    """


@hookspec(firstresult=True)
def dgreg_generate_source(
    candidate: Candidate, spec: GemmSpec, config: Any, device: Device
) -> KernelSource | None:
    """Return the CUDA source of one kernel instance (every config value a compile-time constant).

    firstresult; called on a kernel-cache miss only. Return ``None`` if ``candidate`` is not
    yours. The source and every header it includes are hashed into the cache key.
    """


@hookspec(firstresult=True)
def dgreg_compile(source: KernelSource, device: Device) -> Binary | None:
    """Compile ``source`` to a cubin.

    firstresult; called on a kernel-cache miss only, after ``dgreg_generate_source``. The core's
    JIT provides the default implementation (``trylast``); a plugin overrides it only for its
    own sources (return ``None`` for others). Raise ``CompileError`` on failure.
    """


@hookspec
def dgreg_sass_passes(source: KernelSource, device: Device) -> Sequence[SassPass]:
    """Return the SASS post-processing passes to apply to the cubin compiled from ``source``.

    Collecting; called on every kernel build, *before* compiling, because each pass's name
    and version is part of the kernel-cache key; the passes then run in order on the fresh
    cubin, before it is published to the cache. Lists from all plugins are concatenated in
    load order. Return ``[]`` for sources that are not yours; a pass that finds nothing to
    change returns the cubin unchanged.
    """


@hookspec(firstresult=True)
def dgreg_launch_args(candidate: Candidate, config: Any, call: GemmCall) -> LaunchSpec | None:
    """Describe how to launch ``candidate``'s kernel for calls shaped like ``call``.

    firstresult; called once per planned (spec, problem, device), not per call: the returned
    :class:`LaunchSpec` holds the grid, block, cluster and dynamic shared memory, plus a
    ``pack(call)`` function the hot path calls to produce the kernel arguments (pointers,
    sizes, TMA descriptors), and optionally ``reusable(call)``: where it says the arguments
    depend on the tensors' data pointers and the stream alone, the core packs each such set
    once and relaunches the kept arguments. Return ``None`` if ``candidate`` is not yours.
    """


#: Hook names in contract order; the docs test checks each appears in the README.
HOOK_NAMES: tuple[str, ...] = (
    "dgreg_api_version",
    "dgreg_plugin_info",
    "dgreg_register_kernels",
    "dgreg_heuristic",
    "dgreg_generate_source",
    "dgreg_compile",
    "dgreg_sass_passes",
    "dgreg_launch_args",
)
