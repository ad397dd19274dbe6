"""Resolving and prebuilding sm90 kernels under a forced ``DGREG_SM90_CONFIG`` (shared by the
sweep, multicast and forced-A/B benchmark scripts)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import dgreg
from dgreg import dispatch


def forced_plan(op: str, problem: Any, forced: str, device: Any = None, **fields: Any) -> Any:
    """The resolution of ``op`` on ``problem`` with ``DGREG_SM90_CONFIG=forced`` ("" for the
    heuristics' own choice); the variable stays set for the calls that follow."""
    os.environ["DGREG_SM90_CONFIG"] = forced
    dispatch.clear_caches()
    return dgreg.explain(op, problem, device=device, file=None, **fields)


def prebuild(jobs: Iterable[tuple[str, Any, str]], cache_dir: str) -> int:
    """Compile into the kernel cache at ``cache_dir`` the sm90 kernel each ``(op, problem,
    forced)`` resolves to on the current (possibly simulated, ``DGREG_ARCH``) device; a job
    that is not legal or not served by sm90 is reported and skipped."""
    from pathlib import Path

    from dgreg import config
    from dgreg.device import current_device
    from dgreg.jit import KernelCache, build
    from dgreg.registry import get_registry

    cache = KernelCache(Path(cache_dir))
    count = 0
    with config.scope(DGREG_PLUGINS=("sm90",)):
        device, registry = current_device(), get_registry()
        for op, problem, forced in jobs:
            try:
                res = forced_plan(op, problem, forced, device)
            except (ValueError, dgreg.DgregError) as exc:
                print(f"{op} {problem!r} {forced}: {exc}")
                continue
            if res.chosen is None or res.chosen.plugin != "sm90":
                print(f"{op} {problem!r} {forced}: not sm90")
                continue
            build(registry, res.chosen, res.spec, res.choice.config, res.device, cache)
            count += 1
    os.environ.pop("DGREG_SM90_CONFIG", None)
    print(f"prebuilt {count} kernels into {cache_dir}")
    return 0
