"""pytest plugin: collect ``specs/conformance/*.toml`` and run each case against each plugin.

Loaded with ``-p dgreg.conformance.pytest_plugin`` (dgreg's pyproject does it; so does
``dgreg conformance``). Only TOML files inside a ``specs/conformance`` directory, or under a
``--dgreg-spec-dir``, are collected: other projects' TOML files never are.

Every case instance is expanded over every selected plugin (``--dgreg-plugin NAME``,
repeatable; default: every loaded plugin) into items such as
``fp8_gemm/nt/m128n4096k7168@reference``. A plugin *claims* an instance when
``dgreg.resolve(spec, device, problem, plugin=NAME, tensors_on=...)`` chooses one of its
candidates; an unclaimed instance is skipped with the reasons ``explain`` gives. A claimed
instance must pass: there is no xfail and nothing turns a failure into a skip. Large shapes
run on a GPU or with ``--dgreg-include-large``; ``gpu_only`` cases need CUDA tensors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dgreg.errors import DgregError, SpecFileError

_CONTEXT = pytest.StashKey["_Context"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("dgreg", "dgreg conformance suite (specs/conformance/*.toml)")
    group.addoption("--dgreg-plugin", action="append", default=[], metavar="NAME",
                    help="run the conformance cases against this plugin (repeatable; "
                         "default: every loaded plugin)")
    group.addoption("--dgreg-include-large", action="store_true",
                    help="also run cases marked size = \"large\" on the CPU (slow)")
    group.addoption("--dgreg-spec-dir", action="append", default=[], metavar="DIR",
                    help="also collect conformance TOML files under DIR")
    group.addoption("--dgreg-device", choices=("auto", "cpu", "cuda"), default="auto",
                    help="where case tensors live (auto: cuda when available)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "conformance: generated from specs/conformance/*.toml")
    config.addinivalue_line("markers", "gpu: needs an NVIDIA GPU (skipped without one)")
    if config.getoption("dgreg_plugin"):
        _context(config)  # a misspelt plugin name is a usage error before collection starts


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix != ".toml" or not _is_conformance_file(file_path, parent.config):
        return None
    return ConformanceFile.from_parent(parent, path=file_path)


def _is_conformance_file(path: Path, config: pytest.Config) -> bool:
    for parent in path.parents:
        if parent.name == "conformance" and parent.parent.name == "specs":
            return True
    roots = [Path(d).resolve() for d in config.getoption("dgreg_spec_dir")]
    resolved = path.resolve()
    return any(root == p for root in roots for p in resolved.parents)


class _Context:
    """Session-wide state: where tensors live, which plugins are tested, ops per directory."""

    def __init__(self, config: pytest.Config) -> None:
        import torch

        from dgreg.device import current_device
        from dgreg.registry import get_registry

        self.include_large = bool(config.getoption("dgreg_include_large"))
        choice = config.getoption("dgreg_device")
        cuda = torch.cuda.is_available()
        if choice == "cuda" and not cuda:
            raise pytest.UsageError("--dgreg-device cuda: torch.cuda.is_available() is False")
        self.tensors_on = "cuda" if choice == "cuda" or (choice == "auto" and cuda) else "cpu"
        self.device = current_device(torch.device(self.tensors_on))
        registry = get_registry()
        names = config.getoption("dgreg_plugin") or [p.name for p in registry.loaded()]
        self.plugins: list[str] = []
        for name in names:
            info = registry.find(name)
            if info is None or info.status != "loaded":
                raise pytest.UsageError(_plugin_problem(name, registry))
            if info.name not in self.plugins:
                self.plugins.append(info.name)
        self.ops: dict[Path, Any] = {}
        self.ids: dict[str, str] = {}

    def ops_for(self, path: Path) -> Any:
        from dgreg.conformance import specfile

        ops_dir = _ops_dir(path)
        if ops_dir not in self.ops:
            self.ops[ops_dir] = specfile.load_ops(ops_dir)
        return self.ops[ops_dir]


def _plugin_problem(name: str, registry: Any) -> str:
    info = registry.find(name)
    loaded = ", ".join(p.name for p in registry.loaded()) or "none"
    if info is None:
        return f"dgreg plugin {name!r} is not installed (loaded plugins: {loaded})"
    return f"dgreg plugin {name!r} is {info.status}: {info.reason} (loaded plugins: {loaded})"


def _context(config: pytest.Config) -> _Context:
    ctx = config.stash.get(_CONTEXT, None)
    if ctx is None:
        ctx = _Context(config)
        config.stash[_CONTEXT] = ctx
    return ctx


def _ops_dir(path: Path) -> Path:
    """``specs/ops`` beside the case file's ``specs/conformance``, else dgreg's own."""
    from dgreg.conformance.specfile import repo_specs_dir

    for parent in path.resolve().parents:
        if parent.name == "conformance" and (parent.parent / "ops").is_dir():
            return parent.parent / "ops"
    specs = repo_specs_dir()
    if specs is None:
        raise SpecFileError(path, "<ops>", "no specs/ops directory beside it or next to the "
                                           "dgreg package (the op files define each operation)")
    return specs / "ops"


class ConformanceFile(pytest.File):
    """One conformance TOML file: its cases x instances x selected plugins."""

    def collect(self) -> Any:
        from dgreg.conformance import cases, specfile

        ctx = _context(self.config)
        try:
            loaded = specfile.load_case_file(self.path, ctx.ops_for(self.path))
        except SpecFileError as exc:
            raise self.CollectError(f"malformed conformance spec: {exc}") from None
        for case in loaded:
            for inst in cases.expand(case):
                if inst.id in ctx.ids:  # ids key reports and -k selections: one instance, one id
                    raise self.CollectError(
                        f"malformed conformance spec: {self.path}: [case[{case.name}]] produces "
                        f"instance {inst.id}, which {ctx.ids[inst.id]} already produces")
                ctx.ids[inst.id] = f"{self.path.name} case {case.name!r}"
                for plugin in ctx.plugins:
                    yield ConformanceItem.from_parent(
                        self, name=f"{inst.id}@{plugin}", instance=inst, plugin=plugin, ctx=ctx)


class ConformanceItem(pytest.Item):
    """One instance run against one plugin."""

    def __init__(self, *, instance: Any, plugin: str, ctx: _Context, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        from dgreg.conformance import cases

        self.instance = instance
        self.plugin = plugin
        self.ctx = ctx
        self.add_marker(pytest.mark.conformance)
        case = instance.case
        if case.gpu_only:
            self.add_marker(pytest.mark.gpu)
        self.claim_error: BaseException | None = None
        try:
            verdict = cases.claim(instance, plugin, ctx.device, ctx.tensors_on)
        except DgregError as exc:  # e.g. a plugin's heuristic raising: a failure, not a skip
            verdict = cases.Claim("claimed", reason=str(exc))
            self.claim_error = exc
        kind, skip = verdict.kind, None
        if kind in ("unclaimed", "excluded"):
            skip = verdict.reason
        elif case.gpu_only and ctx.tensors_on != "cuda":
            kind, skip = "not_here", "gpu_only case: needs CUDA tensors (no GPU here)"
        elif case.size == "large" and ctx.tensors_on != "cuda" and not ctx.include_large:
            kind, skip = "not_here", ("large shape: runs on a GPU, or on the CPU with "
                                      "--dgreg-include-large / dgreg conformance --include-large")
        if skip is not None:
            self.add_marker(pytest.mark.skip(reason=skip))
        self.user_properties += [("dgreg_plugin", plugin), ("dgreg_claim", kind),
                                 ("dgreg_kernel", verdict.kernel_id),
                                 ("dgreg_arch", ctx.device.arch)]

    def runtest(self) -> None:
        from dgreg.conformance import cases

        if self.claim_error is not None:
            raise self.claim_error
        if self.ctx.tensors_on != "cpu":
            cases.run(self.instance, self.plugin, self.ctx.tensors_on)
            return
        import torch

        # Case tensors are small: one thread is as fast and cannot oversubscribe CI's cores.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            cases.run(self.instance, self.plugin, "cpu")
        finally:
            torch.set_num_threads(threads)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        from dgreg.conformance.cases import ConformanceFailure

        if isinstance(excinfo.value, ConformanceFailure):
            inst = self.instance
            kernel = dict(self.user_properties).get("dgreg_kernel") or "?"
            return (f"{self.name} (kernel {kernel}, case {inst.case.name!r} in "
                    f"{inst.case.path.name}):\n  {excinfo.value}")
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, self.name  # pytest's skip report needs a line number
