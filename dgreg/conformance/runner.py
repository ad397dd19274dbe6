"""Run the conformance suite programmatically (``dgreg conformance``) and report coverage.

One pytest session (in this process, so the plugins are the ones this process loads) runs
the cases against the chosen plugins; afterwards each plugin gets a coverage line::

    conformance reference (dgreg 0.1.0) on cpu: 443 passed / 443 claimed / 539 total

``claimed`` counts the instances the plugin claims and that run here; ``total`` every
instance selected for it. The exit code is pytest's: nonzero on any failure or collection
error. Nothing here turns a failure into a skip.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from dgreg.errors import PluginError, SpecFileError

__all__ = ["Tally", "default_spec_dir", "run"]

_CLAIMED = ("claimed", "core")


def default_spec_dir() -> Path:
    """``specs/conformance`` next to the dgreg package (a checkout or an editable install)."""
    from dgreg.conformance.specfile import repo_specs_dir

    specs = repo_specs_dir()
    if specs is None or not (specs / "conformance").is_dir():
        import dgreg

        where = Path(dgreg.__file__).resolve().parent.parent / "specs" / "conformance"
        raise SpecFileError(where, "--spec-dir",
                            "not found: this dgreg is installed without its specs; pass "
                            "--spec-dir DIR (the specs/conformance directory of a dgreg checkout "
                            "or your own cases)")
    return specs / "conformance"


class Tally:
    """A pytest plugin object counting, per dgreg plugin, what was claimed, run and passed."""

    def __init__(self) -> None:
        self.kinds: dict[str, Counter[str]] = {}
        self.arch: dict[str, str] = {}
        self.outcome: dict[str, tuple[str, str]] = {}  # nodeid -> (plugin, passed|failed)

    def pytest_collection_finish(self, session: Any) -> None:
        for item in session.items:
            props = dict(item.user_properties)
            plugin = props.get("dgreg_plugin")
            if plugin is None:
                continue
            self.kinds.setdefault(plugin, Counter())[props["dgreg_claim"]] += 1
            self.arch[plugin] = props.get("dgreg_arch", "?")

    def pytest_runtest_logreport(self, report: Any) -> None:
        props = dict(report.user_properties)
        plugin = props.get("dgreg_plugin")
        if plugin is None or props.get("dgreg_claim") not in _CLAIMED:
            return
        previous = self.outcome.get(report.nodeid, (plugin, "passed"))[1]
        if report.failed:
            self.outcome[report.nodeid] = (plugin, "failed")
        elif report.when == "call" and previous != "failed":
            self.outcome[report.nodeid] = (plugin, "passed" if report.passed else "failed")

    def summary(self, plugin: str, registry: Any) -> str:
        kinds = self.kinds.get(plugin, Counter())
        info = registry.find(plugin)
        origin = f"{info.distribution} {info.version}".strip() if info else ""
        done = Counter(state for p, state in self.outcome.values() if p == plugin)
        claimed = sum(kinds[k] for k in _CLAIMED)
        total = sum(kinds.values())
        line = (f"conformance {plugin} ({origin or 'no distribution'}) on "
                f"{self.arch.get(plugin, '?')}: {done['passed']} passed / {claimed} claimed / "
                f"{total} total")
        notes = []
        if done["failed"]:
            notes.append(f"{done['failed']} FAILED")
        unrun = claimed - done["passed"] - done["failed"]
        if unrun:
            notes.append(f"{unrun} claimed but not run (interrupted?)")
        if kinds["unclaimed"] + kinds["excluded"]:
            notes.append(f"{kinds['unclaimed'] + kinds['excluded']} not claimed")
        if kinds["not_here"]:
            notes.append(f"{kinds['not_here']} claimed but not run here (large or GPU-only; "
                         f"--include-large or a GPU runs them)")
        return line + (f"\n  ({'; '.join(notes)})" if notes else "")


def run(plugins: Sequence[str] | None = None, *, spec_dir: Path | str | None = None,
        keyword: str | None = None, include_large: bool = False, device: str = "auto",
        verbose: bool = False, extra_args: Sequence[str] = (), observers: Sequence[object] = (),
        out: TextIO | None = None) -> int:
    """Run the suite against ``plugins`` (default: every loaded one); returns the exit code.

    ``observers`` are extra pytest plugin objects for this session (a report collector, say).

    Raises :class:`PluginError` for a plugin that is not loaded and :class:`SpecFileError`
    when there is no spec directory, before running anything.
    """
    import pytest

    from dgreg.registry import get_registry

    out = out or sys.stdout
    spec_dir = Path(spec_dir) if spec_dir is not None else default_spec_dir()
    if not spec_dir.is_dir():
        raise SpecFileError(spec_dir, "--spec-dir", "is not a directory")
    registry = get_registry()
    names = list(plugins) if plugins else [p.name for p in registry.loaded()]
    for name in names:
        info = registry.find(name)
        if info is None or info.status != "loaded":
            from dgreg.conformance.pytest_plugin import _plugin_problem

            raise PluginError(_plugin_problem(name, registry), plugin=name)
    names = [registry.find(name).name for name in names]
    args = [str(spec_dir), "-p", "dgreg.conformance.pytest_plugin", "-p", "no:cacheprovider",
            "--dgreg-spec-dir", str(spec_dir), "--dgreg-device", device,
            "-rfE", "-v" if verbose else "-q"]
    for name in names:
        args += ["--dgreg-plugin", name]
    if keyword:
        args += ["-k", keyword]
    if include_large:
        args.append("--dgreg-include-large")
    args += list(extra_args)
    tally = Tally()
    code = int(pytest.main(args, plugins=[tally, *observers]))
    for name in names:
        print(tally.summary(name, registry), file=out)
    if code == pytest.ExitCode.NO_TESTS_COLLECTED:
        print(f"conformance: no cases collected under {spec_dir}", file=out)
    return code
