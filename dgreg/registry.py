"""The plugin registry: entry-point discovery, validation, isolation, and a typed hook facade.

The registry loads the built-in reference plugin and every plugin of the ``dgreg.plugins``
entry-point group allowed by ``DGREG_PLUGINS`` / ``DGREG_DISABLE_PLUGINS``. A plugin that
fails to import, misspells a hook, targets another contract version or raises inside a hook
is skipped with a :class:`PluginWarning` and listed as failed, with the reason, by
``dgreg plugins``. Two plugins registering one kernel id is a :class:`DuplicateKernelError`.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterable, Sequence
from importlib import metadata
from typing import Any

import attrs
import pluggy

from dgreg import config, hookspecs
from dgreg.device import Device
from dgreg.errors import DuplicateKernelError, PluginError
from dgreg.kernel import Binary, Candidate, ConfigChoice, KernelSource, LaunchSpec, SassPass
from dgreg.spec import GemmSpec, Problem

__all__ = [
    "ENTRY_POINT_GROUP",
    "PluginInfo",
    "PluginWarning",
    "Registry",
    "get_registry",
    "reset_registry",
]

ENTRY_POINT_GROUP = "dgreg.plugins"
BUILTIN = "reference"


class PluginWarning(UserWarning):
    """A plugin was skipped; the message names it and says why."""


@attrs.define
class PluginInfo:
    """One plugin as ``dgreg plugins`` lists it."""

    name: str
    distribution: str = ""
    version: str = ""
    status: str = "loaded"  # loaded | failed | disabled
    reason: str = ""
    hooks: tuple[str, ...] = ()
    api_version: int | None = None
    archs: tuple[str, ...] = ()
    description: str = ""
    note: str = ""  # a caveat shown to users ("compiled and inspected, not run on hardware")
    builtin: bool = False

    def matches(self, name: str) -> bool:
        return name in (self.name, self.distribution)

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


class Registry:
    """A pluggy manager with dgreg's loading rules and a typed facade over its hooks."""

    def __init__(
        self,
        *,
        autoload: bool = True,
        allow: Sequence[str] | None = None,
        block: Sequence[str] = (),
        trace: bool = False,
    ) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.allow = None if allow is None else tuple(allow)
        self.block = tuple(block)
        self.plugins: dict[str, PluginInfo] = {}
        self._candidates: dict[Device, tuple[Candidate, ...]] = {}
        self.generation = 0
        if trace:
            self.pm.trace.root.setwriter(sys.stderr.write)
            self.pm.enable_tracing()
        from dgreg import reference
        from dgreg.jit.plugin import JitPlugin

        version = _dist_version("dgreg")
        self.add(reference.ReferencePlugin(), BUILTIN, distribution="dgreg", version=version,
                 builtin=True)
        self.add(JitPlugin(), "jit", distribution="dgreg", version=version, builtin=True)
        if autoload:
            self.load_entry_points()

    # -- loading -------------------------------------------------------------------------------

    def _refused_by_settings(self, name: str, dist: str) -> str | None:
        names = {name, dist}
        if self.allow is not None and not names & set(self.allow):
            return "not named in DGREG_PLUGINS"
        if names & set(self.block):
            return "named in DGREG_DISABLE_PLUGINS"
        return None

    def load_entry_points(self, entry_points: Iterable[metadata.EntryPoint] | None = None) -> None:
        """Load the plugins of the ``dgreg.plugins`` group (or the given entry points)."""
        if entry_points is None:
            entry_points = metadata.entry_points(group=ENTRY_POINT_GROUP)
        for ep in sorted(entry_points, key=lambda e: e.name):
            dist = ep.dist.name if ep.dist is not None else ""
            version = ep.dist.version if ep.dist is not None else ""
            if ep.name in self.plugins:
                self._fail(PluginInfo(ep.name, dist, version),
                           f"the name {ep.name!r} is taken by "
                           f"{self.plugins[ep.name].distribution or 'another plugin'}")
                continue
            refused = self._refused_by_settings(ep.name, dist)
            if refused:
                self.plugins[ep.name] = PluginInfo(ep.name, dist, version, "disabled", refused)
                continue
            try:
                plugin = ep.load()
            except Exception as exc:  # a broken third-party plugin must not break dgreg
                self._fail(PluginInfo(ep.name, dist, version),
                           f"import of {ep.value!r} failed: {type(exc).__name__}: {exc}")
                continue
            self.add(plugin, ep.name, distribution=dist, version=version)

    def add(self, plugin: object, name: str, *, distribution: str = "", version: str = "",
            builtin: bool = False) -> PluginInfo:
        """Register ``plugin`` under ``name`` and validate it; returns its :class:`PluginInfo`.

        Validation failures do not raise: the plugin is unregistered, warned about and listed
        as failed, so one broken plugin cannot take the others down.
        """
        info = PluginInfo(name, distribution, version, builtin=builtin)
        if name in self.plugins and self.plugins[name].status == "loaded":
            return self._fail(info, f"the name {name!r} is already registered")
        try:
            self.pm.register(plugin, name=name)
        except (pluggy.PluginValidationError, ValueError) as exc:
            if self.pm.get_plugin(name) is plugin:  # pluggy may have half-registered it
                self.pm.unregister(name=name)
            return self._fail(info, f"invalid hook implementation: {exc}")
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            self.pm.unregister(name=name)
            return self._fail(info, f"implements a hook dgreg does not define: {exc}")
        info.hooks = tuple(sorted(
            caller.name for caller in self.pm.get_hookcallers(plugin) or ()))
        try:
            version_impl = self._impl_of("dgreg_api_version", name)
            if version_impl is None:
                raise PluginError("does not implement dgreg_api_version()", plugin=name,
                                  hook="dgreg_api_version")
            info.api_version = version_impl.function()
            if info.api_version != hookspecs.API_VERSION:
                raise PluginError(
                    f"targets dgreg plugin API {info.api_version!r}, this dgreg implements "
                    f"{hookspecs.API_VERSION}", plugin=name, hook="dgreg_api_version")
            info_impl = self._impl_of("dgreg_plugin_info", name)
            if info_impl is not None:
                meta = info_impl.function() or {}
                info.archs = tuple(meta.get("archs", ()))
                info.description = str(meta.get("description", ""))
                info.note = str(meta.get("status", ""))
        except Exception as exc:
            self.pm.unregister(name=name)
            return self._fail(info, str(exc) if isinstance(exc, PluginError) else
                              f"{type(exc).__name__} in its metadata hooks: {exc}")
        self.plugins[name] = info
        self._invalidate()
        return info

    def _impl_of(self, hook: str, plugin_name: str) -> pluggy.HookImpl | None:
        for impl in getattr(self.pm.hook, hook).get_hookimpls():
            if impl.plugin_name == plugin_name:
                return impl
        return None

    def _fail(self, info: PluginInfo, reason: str) -> PluginInfo:
        info.status = "failed"
        info.reason = reason
        self.plugins[info.name] = info
        warnings.warn(f"dgreg plugin {info.name!r} skipped: {reason}", PluginWarning, stacklevel=3)
        return info

    def disable(self, name: str, reason: str) -> None:
        """Unregister a loaded plugin after it misbehaved at run time; lists it as failed."""
        if self.pm.get_plugin(name) is not None:
            self.pm.unregister(name=name)
        info = self.plugins.get(name) or PluginInfo(name)
        self._fail(info, reason)
        self._invalidate()

    def _invalidate(self) -> None:
        self._candidates.clear()
        self.generation += 1
        from dgreg import dispatch

        dispatch.clear_caches()

    # -- queries -------------------------------------------------------------------------------

    def loaded(self) -> list[PluginInfo]:
        return [p for p in self.plugins.values() if p.status == "loaded"]

    def find(self, name: str) -> PluginInfo | None:
        """The plugin with this entry-point name or distribution name."""
        for info in self.plugins.values():
            if info.matches(name):
                return info
        return None

    def candidates(self, device: Device) -> tuple[Candidate, ...]:
        """Every kernel family the loaded plugins offer on ``device`` (cached per device)."""
        cached = self._candidates.get(device)
        if cached is not None:
            return cached
        collected: dict[str, Candidate] = {}
        for info in list(self.loaded()):
            plugin = self.pm.get_plugin(info.name)
            others = [p for p in self.pm.get_plugins() if p is not plugin]
            caller = self.pm.subset_hook_caller("dgreg_register_kernels", remove_plugins=others)
            offered: list[Candidate] = []

            def register(candidate: Candidate, _info: PluginInfo = info,
                         _offered: list[Candidate] = offered) -> None:
                if not isinstance(candidate, Candidate):
                    raise PluginError(
                        f"plugin {_info.name!r}: register() takes a dgreg.Candidate "
                        f"(got {type(candidate).__name__})",
                        plugin=_info.name, hook="dgreg_register_kernels")
                _offered.append(attrs.evolve(candidate, plugin=_info.name,
                                             distribution=_info.distribution,
                                             version=_info.version))

            try:
                caller(register=register, device=device)
            except Exception as exc:
                self.disable(info.name, f"dgreg_register_kernels raised {type(exc).__name__}: {exc}")
                return self.candidates(device)
            for candidate in offered:
                previous = collected.get(candidate.kernel_id)
                if previous is not None:
                    raise DuplicateKernelError(
                        f"kernel id {candidate.kernel_id!r} is registered by both plugin "
                        f"{previous.plugin!r} ({previous.distribution or 'no distribution'}) and "
                        f"plugin {candidate.plugin!r} ({candidate.distribution or 'no distribution'}); "
                        f"disable one with DGREG_DISABLE_PLUGINS",
                        plugin=candidate.plugin, hook="dgreg_register_kernels")
                collected[candidate.kernel_id] = candidate
        result = tuple(collected.values())
        self._candidates[device] = result
        return result

    # -- typed facade over the remaining hooks ----------------------------------------------

    def heuristic(self, candidate: Candidate, spec: GemmSpec, problem: Problem,
                  device: Device) -> ConfigChoice | None:
        return self.pm.hook.dgreg_heuristic(candidate=candidate, spec=spec, problem=problem,
                                            device=device)

    def generate_source(self, candidate: Candidate, spec: GemmSpec, config: Any,
                        device: Device) -> KernelSource | None:
        return self.pm.hook.dgreg_generate_source(candidate=candidate, spec=spec, config=config,
                                                  device=device)

    def compile(self, source: KernelSource, device: Device) -> Binary | None:
        return self.pm.hook.dgreg_compile(source=source, device=device)

    def sass_passes(self, source: KernelSource, device: Device) -> list[SassPass]:
        lists = self.pm.hook.dgreg_sass_passes(source=source, device=device)
        # pluggy returns the last-registered plugin's answer first; passes run in load order
        return [p for answer in reversed(lists) for p in (answer or ())]

    def launch_args(self, candidate: Candidate, config: Any, call: Any) -> LaunchSpec | None:
        return self.pm.hook.dgreg_launch_args(candidate=candidate, config=config, call=call)


def _dist_version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return ""


_registry: Registry | None = None
_registry_key: tuple[Any, ...] | None = None


def _settings_key() -> tuple[Any, ...]:
    """The settings a registry is built from: (allow, block, trace)."""
    return (config.get("DGREG_PLUGINS"), config.get("DGREG_DISABLE_PLUGINS"),
            config.get("DGREG_TRACE_PLUGINS"))


def get_registry() -> Registry:
    """The process-wide registry, rebuilt when the plugin settings change."""
    global _registry, _registry_key
    key = _settings_key()
    if _registry is None or key != _registry_key:
        _registry = Registry(allow=key[0], block=key[1] or (), trace=key[2])
        _registry_key = key
    return _registry


def set_registry(registry: Registry | None) -> Registry | None:
    """Install ``registry`` as the process-wide one (``None``: rebuild on next use); returns the old."""
    global _registry, _registry_key
    old = _registry
    _registry = registry
    from dgreg import dispatch

    dispatch.clear_caches()
    _registry_key = None if registry is None else _settings_key()
    return old


def reset_registry() -> None:
    set_registry(None)
