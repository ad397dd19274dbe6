"""Resolution: which kernel serves a call, why, and the hot path that runs it.

``resolve`` asks every candidate of every loaded plugin whether it serves the spec on the
device (cached per spec and device) and the problem (cached per problem), ranks the ones
that accept (pin > priority > fallback last), and asks the winner's plugin for a config.
Every "no" keeps its reason; :class:`Resolution` renders them for ``explain`` and the
:class:`NoKernelError` message.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import warnings
from collections.abc import Iterator
from typing import Any

import attrs

from dgreg import config
from dgreg.device import Device, current_device
from dgreg.errors import (
    CaptureError,
    FallbackWarning,
    InvalidArgumentError,
    NoKernelError,
    PluginError,
)
from dgreg.kernel import Candidate, ConfigChoice, KernelKey, LaunchSpec
from dgreg.registry import Registry, get_registry
from dgreg.spec import GemmSpec, Problem

__all__ = [
    "Decision",
    "Resolution",
    "clear_caches",
    "execute",
    "explain",
    "get_num_sms",
    "resolve",
    "set_num_sms",
    "use",
]

_pin: contextvars.ContextVar[str | None] = contextvars.ContextVar("dgreg_pin", default=None)
_num_sms: int | None = None
_spec_cache: dict[tuple[Any, ...], tuple[tuple[Candidate, str | None], ...]] = {}
_plan_cache: dict[tuple[Any, ...], tuple[Resolution, Any, Any]] = {}
_warned: set[tuple[str, str]] = set()

_kernels: dict[KernelKey, Any] = {}  # loaded JIT kernels of this process


@attrs.frozen
class Decision:
    """One candidate's fate: ``status`` is chosen, accepted (a runner-up) or rejected."""

    candidate: Candidate
    status: str
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        c = self.candidate
        return {"kernel_id": c.kernel_id, "plugin": c.plugin, "distribution": c.distribution,
                "version": c.version, "priority": c.priority, "status": self.status,
                "reason": self.reason, "fallback": c.fallback}


@attrs.frozen
class Resolution:
    """The whole decision for one (spec, device[, problem]): what ``explain`` returns."""

    spec: GemmSpec
    device: Device
    problem: Problem | None
    pin: str | None
    decisions: tuple[Decision, ...]
    choice: ConfigChoice | None = None
    kernel_key: KernelKey | None = None
    #: loaded plugins that serve other archs only: (name, their archs); they offer nothing here
    elsewhere: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def chosen(self) -> Candidate | None:
        for d in self.decisions:
            if d.status == "chosen":
                return d.candidate
        return None

    @property
    def is_fallback(self) -> bool:
        chosen = self.chosen
        return chosen is not None and chosen.fallback

    def as_dict(self) -> dict[str, Any]:
        return {
            "spec": self.spec.name,
            "problem": repr(self.problem) if self.problem is not None else None,
            "device": {"arch": self.device.arch, "name": self.device.name,
                       "sm_count": self.device.sm_count, "simulated": self.device.simulated},
            "pin": self.pin,
            "candidates": [d.as_dict() for d in self.decisions],
            "chosen": self.chosen.kernel_id if self.chosen else None,
            "config": repr(self.choice.config) if self.choice else None,
            "figures": dict(self.choice.figures) if self.choice else {},
            "kernel_key": str(self.kernel_key) if self.kernel_key else None,
            "plugins_for_other_archs": {name: list(archs) for name, archs in self.elsewhere},
        }

    def __str__(self) -> str:
        where = f"{self.device!r}"
        size = f" {self.problem!r}" if self.problem is not None else ""
        lines = [f"dgreg: {self.spec.name}{size} on {where}"]
        if self.pin:
            lines.append(f"  pinned to plugin {self.pin!r}")
        lines.append("  candidates (chosen, runners-up, rejected):")
        width = max((len(d.candidate.kernel_id) for d in self.decisions), default=10)
        for d in self.decisions:
            c = d.candidate
            origin = f"[{c.plugin}" + (f" {c.distribution} {c.version}".rstrip() if c.distribution else "") + "]"
            mark = {"chosen": "->", "accepted": "  ", "rejected": " x"}[d.status]
            line = f"   {mark} {c.kernel_id:<{width}}  {d.status:<8} {origin} priority {c.priority}"
            if d.reason:
                line += f": {d.reason}"
            lines.append(line)
        if not self.decisions:
            lines.append("    (no plugin offers a kernel for this device)")
        for name, archs in self.elsewhere:
            lines.append(f"    plugin {name} serves {', '.join(archs)} only: nothing on "
                         f"{self.device.arch}")
        if self.choice is not None:
            lines.append(f"  config: {self.choice.config!r}")
            for key, value in self.choice.figures.items():
                lines.append(f"    {key}: {value}")
            for cfg, score, note in self.choice.alternatives[:8]:
                lines.append(f"    considered {cfg!r} score {score:.4g}" + (f" ({note})" if note else ""))
        if self.kernel_key is not None:
            lines.append(f"  kernel key: {self.kernel_key}")
        if self.chosen is None:
            lines.append("  no candidate accepted: see the reasons above")
        elif self.is_fallback:
            lines.append("  running the torch reference (slow): no accelerated kernel accepted")
        return "\n".join(lines)


# -- user controls --------------------------------------------------------------------------

@contextlib.contextmanager
def use(plugin: str | None) -> Iterator[None]:
    """Pin calls in this block to ``plugin`` (entry-point or distribution name; None unpins)."""
    token = _pin.set(plugin)
    try:
        yield
    finally:
        _pin.reset(token)


def set_num_sms(num_sms: int) -> None:
    """Limit the SMs kernels may use (e.g. to leave room for communication kernels)."""
    if not isinstance(num_sms, int) or isinstance(num_sms, bool) or num_sms < 1:
        raise InvalidArgumentError("num_sms", "a positive int", repr(num_sms))
    device = current_device()
    if device.sm_count and num_sms > device.sm_count:
        raise InvalidArgumentError("num_sms", f"at most {device.sm_count} (the SMs of {device.name})",
                                   num_sms)
    global _num_sms
    _num_sms = num_sms
    clear_caches()


def get_num_sms() -> int:
    """The SM count kernels are planned for: the ``set_num_sms`` value, else the device's."""
    return _num_sms if _num_sms is not None else current_device().sm_count


def _effective(device: Device) -> Device:
    if _num_sms is not None and device.sm_count and _num_sms < device.sm_count:
        return attrs.evolve(device, sm_count=_num_sms)
    return device


#: Caches of callers built on resolutions (the API's fast path) register their clear() here.
cache_listeners: list[Any] = []


def clear_caches() -> None:
    """Forget resolutions and plans (after plugins or settings change).

    ``DGREG_*`` variables are read when a shape is first planned; after changing one in
    ``os.environ`` mid-process, call this (``config.scope`` does it itself).
    """
    _spec_cache.clear()
    _plan_cache.clear()
    _kernels.clear()  # settings such as DGREG_SASS_PASSES change the binary behind a key
    for listener in cache_listeners:
        listener()


config.on_change(clear_caches)


# -- resolution -----------------------------------------------------------------------------

def _ask(candidate: Candidate, fn: Any, *args: Any) -> str | None:
    try:
        reason = fn(*args)
    except Exception as exc:  # a plugin bug must read as a reason, not crash resolution
        warnings.warn(f"dgreg plugin {candidate.plugin!r}: {candidate.kernel_id} raised "
                      f"{type(exc).__name__}: {exc}", stacklevel=4)
        return f"plugin error: {type(exc).__name__}: {exc}"
    if reason is not None and not isinstance(reason, str):
        return f"plugin error: expected a reason string or None (got {reason!r})"
    return reason


def _spec_ranking(registry: Registry, spec: GemmSpec, device: Device
                  ) -> tuple[tuple[Candidate, str | None], ...]:
    key = (spec, device, registry.generation, id(registry))
    ranked = _spec_cache.get(key)
    if ranked is None:
        candidates = registry.candidates(device)
        verdicts = [(c, _ask(c, c.supports, spec, device)) for c in candidates]
        verdicts.sort(key=lambda cv: (cv[0].fallback, -cv[0].priority, cv[0].kernel_id))
        ranked = tuple(verdicts)
        _spec_cache[key] = ranked
    return ranked


def _pin_of(plugin: object) -> str | None:
    """The pin in force: the ``plugin=`` argument, else ``dgreg.use``, else DGREG_FORCE_PLUGIN."""
    if plugin is not None:
        if not isinstance(plugin, str) or not plugin:
            raise InvalidArgumentError("plugin", "a plugin name (str) or None", repr(plugin))
        return plugin
    return _pin.get() or config.get("DGREG_FORCE_PLUGIN")


def check_pin(plugin: object) -> None:
    """Validate a ``plugin=`` argument (for calls that return before any resolution)."""
    _pinned(get_registry(), _pin_of(plugin))


def _pinned(registry: Registry, pin: str | None) -> str | None:
    """The loaded plugin name a pin refers to; a pin to a missing plugin is an error."""
    if pin is None:
        return None
    info = registry.find(pin)
    if info is None:
        known = ", ".join(sorted(registry.plugins)) or "none"
        raise NoKernelError(f"pinned plugin {pin!r} is not installed (known plugins: {known})")
    if info.status != "loaded":
        raise NoKernelError(f"pinned plugin {pin!r} is {info.status}: {info.reason}")
    return info.name


def resolve(spec: GemmSpec, device: Device | None = None, problem: Problem | None = None, *,
            plugin: str | None = None, tensors_on: str | None = None) -> Resolution:
    """Rank every candidate for ``spec`` on ``device`` (and ``problem`` if given).

    ``plugin`` pins (else ``dgreg.use`` / ``DGREG_FORCE_PLUGIN``); ``tensors_on`` is the
    device type of the call's tensors ("cpu"/"cuda") when resolving a real call.
    """
    registry = get_registry()
    device = _effective(device if device is not None else current_device())
    pin = _pinned(registry, _pin_of(plugin))
    decisions: list[Decision] = []
    chosen: Candidate | None = None
    for candidate, reason in _spec_ranking(registry, spec, device):
        if reason is None and pin is not None and candidate.plugin != pin:
            reason = f"not the pinned plugin {pin!r}"
        if reason is None and tensors_on is not None and candidate.needs_cuda:
            if tensors_on != "cuda":
                reason = f"needs CUDA tensors (the inputs are on {tensors_on})"
            elif device.simulated:
                reason = f"the device is simulated ({device.arch} via DGREG_ARCH); cannot launch"
        if reason is None and problem is not None and candidate.reject is not None:
            reason = _ask(candidate, candidate.reject, spec, problem)
        if reason is None and chosen is None:
            chosen = candidate
            decisions.append(Decision(candidate, "chosen"))
        else:
            decisions.append(Decision(candidate, "accepted" if reason is None else "rejected", reason))
    # chosen first, then the runners-up in rank order, then the rejected ones
    order = {"chosen": 0, "accepted": 1, "rejected": 2}
    decisions.sort(key=lambda d: order[d.status])
    choice = key = None
    if chosen is not None and problem is not None:
        try:
            choice = registry.heuristic(chosen, spec, problem, device)
        except Exception as exc:
            raise PluginError(f"plugin {chosen.plugin!r}: dgreg_heuristic raised "
                              f"{type(exc).__name__}: {exc}", plugin=chosen.plugin,
                              hook="dgreg_heuristic") from exc
        if choice is not None and not isinstance(choice, ConfigChoice):
            raise PluginError(f"plugin {chosen.plugin!r}: dgreg_heuristic must return a "
                              f"dgreg.ConfigChoice or None (got {type(choice).__name__})",
                              plugin=chosen.plugin, hook="dgreg_heuristic")
        if choice is not None:
            key = KernelKey(chosen.kernel_id, spec, choice.config, device.arch)
        elif chosen.is_jit:
            raise PluginError(f"plugin {chosen.plugin!r} offered JIT kernel {chosen.kernel_id} but "
                              f"its dgreg_heuristic gave no config for {spec.name} {problem!r}",
                              plugin=chosen.plugin, hook="dgreg_heuristic")
    offering = {d.candidate.plugin for d in decisions}
    elsewhere = tuple((info.name, info.archs) for info in registry.plugins.values()
                      if info.status == "loaded" and info.archs and "*" not in info.archs
                      and device.arch not in info.archs and info.name not in offering)
    return Resolution(spec, device, problem, pin, tuple(decisions), choice, key, elsewhere)


def _plan(call: Any, plugin: str | None) -> tuple[Resolution, Any, Any]:
    """The resolution for this call's (spec, problem, device), the function that runs it
    (``runner(call)``), and None or, for a JIT kernel whose plugin marks its arguments
    reusable, ``reuse(call)``: a launcher for repeats of calls with ``call``'s metadata, or None
    when the plugin says that ``call``'s arguments are not reusable (see
    :func:`_pointer_launcher`)."""
    device_type = call.a.device.type
    device = current_device(call.a.device)
    pin = _pin_of(plugin)
    strict = config.get("DGREG_STRICT")
    registry = get_registry()
    key = (call.spec, call.problem, device, device_type, pin, strict, _num_sms,
           registry.generation, id(registry))
    planned = _plan_cache.get(key)
    if planned is None:
        plan = resolve(call.spec, device, call.problem, plugin=pin, tensors_on=device_type)
        if plan.chosen is None:
            raise NoKernelError(f"no kernel can run {call.spec.name} {call.problem!r}", plan)
        if plan.is_fallback and plan.pin is None:
            if strict:
                raise NoKernelError(
                    f"DGREG_STRICT=1 forbids the torch reference fallback for "
                    f"{call.spec.name} {call.problem!r}", plan)
            _warn_fallback(plan)
        runner, reuse = (plan.chosen.run, None) if not plan.chosen.is_jit else \
            _jit_runner(registry, plan, call)
        planned = _plan_cache[key] = (plan, runner, reuse)
    return planned


def _jit_runner(registry: Registry, plan: Resolution, call: Any) -> tuple[Any, Any]:
    """Build (or fetch) and load the kernel, and ask its plugin once how to launch it: the
    runner, and ``reuse`` (see :func:`_plan`) or None."""
    from dgreg import jit
    from dgreg.jit.launch import LoadedKernel

    candidate, cfg = plan.chosen, plan.choice.config
    if jit.is_capturing():
        raise CaptureError(
            f"dgreg has not run {call.spec.name} {call.problem!r} in this process yet and would "
            f"have to compile or load {candidate.kernel_id} while a CUDA graph is being captured; "
            f"run the same call once before capturing (warm up)")
    spec_launch = registry.launch_args(candidate, cfg, call)
    if not isinstance(spec_launch, LaunchSpec):
        raise PluginError(f"plugin {candidate.plugin!r}: dgreg_launch_args must return a "
                          f"dgreg.LaunchSpec for {candidate.kernel_id} "
                          f"(got {type(spec_launch).__name__})",
                          plugin=candidate.plugin, hook="dgreg_launch_args")
    kernel = _kernels.get(plan.kernel_key)
    if kernel is None:
        built = jit.build(registry, candidate, call.spec, cfg, plan.device)
        kernel = LoadedKernel(built.cubin, built.source.entry, spec_launch.shared_mem)
        _kernels[plan.kernel_key] = kernel
    launch = kernel.bind(spec_launch.grid, spec_launch.block, spec_launch.arg_types,
                         cluster=spec_launch.cluster, shared_mem=spec_launch.shared_mem)
    pack = spec_launch.pack

    def run(call: Any) -> None:
        launch(pack(call))

    if spec_launch.reusable is None:
        return run, None
    return run, functools.partial(_pointer_launcher, kernel, spec_launch)


def _pointer_launcher(kernel: Any, spec_launch: LaunchSpec, call: Any) -> Any:
    """None when the plugin says ``call``'s arguments are not reusable; else
    ``launch(pointers, make_call)`` for calls with ``call``'s metadata (dtypes, shapes,
    strides, devices, options), which the caller checks: it packs ``make_call()`` once per
    (``pointers``, current stream), keeps the argument array, and launches the kept one on
    every repeat, calling no ``pack``. ``pointers`` must name every tensor's data pointer."""
    from dgreg.jit.launch import raw_stream_getter

    if not spec_launch.reusable(call):
        return None
    prepare, launch = kernel.bind_prepared(
        spec_launch.grid, spec_launch.block, spec_launch.arg_types,
        cluster=spec_launch.cluster, shared_mem=spec_launch.shared_mem)
    pack, stream_of, device = spec_launch.pack, raw_stream_getter(), kernel.device
    kept: dict[tuple[Any, int], Any] = {}

    def launch_at(pointers: tuple[int, ...], make_call: Any) -> None:
        stream = stream_of(device)
        found = kept.get((pointers, stream))
        if found is None:
            if len(kept) >= 256:  # a few hundred tensor sets at most; then start again
                kept.clear()
            found = kept[pointers, stream] = prepare(pack(make_call()))
        launch(found, stream)

    return launch_at


def _warn_fallback(plan: Resolution) -> None:
    tag = (plan.spec.name, plan.device.arch)
    if tag in _warned:
        return
    _warned.add(tag)
    reasons = "; ".join(f"{d.candidate.kernel_id}: {d.reason}" for d in plan.decisions
                        if d.status == "rejected") or "no plugin offers a kernel for this device"
    warnings.warn(
        f"dgreg: no accelerated kernel for {plan.spec.name} on {plan.device.arch} "
        f"({plan.device.name}); running the slow torch reference. Reasons: {reasons}. "
        f"(Warned once; `dgreg explain` shows the whole decision; DGREG_STRICT=1 makes this an "
        f"error.)", FallbackWarning, stacklevel=4)


def execute(call: Any, plugin: str | None = None) -> Any:
    """Resolve (cached) and run ``call``; returns ``call.d``."""
    _, runner, _ = _plan(call, plugin)
    runner(call)
    return call.d


def explain(spec: GemmSpec | str, problem: Problem | tuple[int, ...] | None = None, *,
            device: Device | str | None = None, plugin: str | None = None,
            file: Any = "stdout", **spec_fields: Any) -> Resolution:
    """Return (and print to ``file``, None for silence) the whole resolution decision.

    ``spec`` is a :class:`GemmSpec` or an operation name (``"fp8_gemm"``) completed by
    ``spec_fields`` (``layout``, ``recipe``, ``d_dtype``, ``accumulate``); ``problem`` a
    :class:`Problem` or ``(m, n, k[, groups])``; ``device`` a :class:`Device`, a preset or arch
    name (``"h100"``, ``"sm100a"``), or None for the current one.
    """
    import sys

    from dgreg.device import preset
    from dgreg.spec import spec_for

    if isinstance(spec, str):
        spec = spec_for(spec, **spec_fields)
    elif spec_fields:
        raise TypeError(f"explain() takes spec fields only with an operation name (got {spec!r})")
    if isinstance(problem, tuple):
        problem = Problem(*problem)
    if isinstance(device, str):
        device = preset(device, argument="device")
    result = resolve(spec, device, problem, plugin=plugin)
    if file == "stdout":
        file = sys.stdout
    if file is not None:
        print(result, file=file)
    return result
