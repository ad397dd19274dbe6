"""Small in-process plugins for registry and dispatch tests, and the plans a real plugin
picks for the conformance suite."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from dgreg import API_VERSION, Candidate, ConfigChoice, hookimpl
from dgreg.reference import run as reference_run


@attrs.frozen
class ToyConfig:
    block_m: int
    block_n: int


class ToyPlugin:
    """Offers the given candidates on ``arch`` (all archs when None); counts hook calls."""

    def __init__(self, *candidates: Candidate, arch: str | None = None,
                 heuristic: Callable[..., ConfigChoice | None] | None = None) -> None:
        self.candidates = candidates
        self.arch = arch
        self.heuristic = heuristic
        self.register_calls = 0

    @hookimpl
    def dgreg_api_version(self) -> int:
        return API_VERSION

    @hookimpl
    def dgreg_plugin_info(self) -> dict[str, object]:
        return {"archs": [self.arch or "*"], "description": "test plugin"}

    @hookimpl
    def dgreg_register_kernels(self, register, device) -> None:
        self.register_calls += 1
        if self.arch is None or device.arch == self.arch:
            for candidate in self.candidates:
                register(candidate)

    @hookimpl
    def dgreg_heuristic(self, candidate, spec, problem, device):
        if self.heuristic is None or candidate.kernel_id not in {c.kernel_id for c in self.candidates}:
            return None
        return self.heuristic(candidate, spec, problem, device)


def python_candidate(kernel_id: str, *, priority: int = 10, supports=None, reject=None,
                     needs_cuda: bool = False, run=reference_run) -> Candidate:
    return Candidate(kernel_id, supports=supports or (lambda spec, device: None), reject=reject,
                     run=run, priority=priority, needs_cuda=needs_cuda)


SPECS = Path(__file__).resolve().parents[1] / "specs"


def conformance_resolutions(plugin: str, device: str) -> list[tuple[Any, str]]:
    """(resolution, instance id) of every valid, non-empty conformance instance that ``plugin``,
    the only plugin loaded, claims on the simulated ``device`` (a preset name), in suite order."""
    import dgreg
    from dgreg import config
    from dgreg.conformance import load_case_file, load_ops
    from dgreg.conformance.cases import expand
    from dgreg.device import preset

    ops = load_ops(SPECS / "ops")
    picked = []
    with config.scope(DGREG_PLUGINS=(plugin,)):
        target = preset(device)
        for path in sorted((SPECS / "conformance").glob("*.toml")):
            for case in load_case_file(path, ops):
                if case.expect_error is not None:
                    continue
                for inst in expand(case):
                    if inst.spec is None or inst.problem is None or inst.problem.is_empty:
                        continue
                    res = dgreg.resolve(inst.spec, target, inst.problem, plugin=plugin)
                    if res.chosen is not None and res.chosen.plugin == plugin:
                        picked.append((res, inst.id))
    return picked
