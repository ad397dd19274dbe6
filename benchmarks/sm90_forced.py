"""Resolving, timing and prebuilding sm90 kernels under a forced ``DGREG_SM90_CONFIG``, patched
kernel variants and the scripts' JSON output (shared by the sweep, multicast, forced-A/B,
split-K probe and timeline probe benchmark scripts)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

import dgreg_sm90.codegen as codegen

import dgreg
from dgreg import dispatch

_HEADER = codegen.header


def patch_kernel(label: str, patches: Sequence[tuple[str, str]]) -> None:
    """Make the sm90 code generator emit ``sm90_gemm.cuh`` with each ``(old, new)`` replacement
    applied (``old`` must occur exactly once), headed by the comment ``label`` so that the
    variant has its own cache key; no patches: the header as shipped."""
    def header(name: str) -> str:
        text = _HEADER(name)
        if name != "sm90_gemm.cuh" or not patches:
            return text
        for old, new in patches:
            if text.count(old) != 1:
                raise SystemExit(f"{label}: the kernel has {old!r} {text.count(old)} times, "
                                 "not once")
            text = text.replace(old, new)
        return f"// {label}\n{text}"
    codegen.header = header


def forced_plan(op: str, problem: Any, forced: str, device: Any = None, **fields: Any) -> Any:
    """The resolution of ``op`` on ``problem`` with ``DGREG_SM90_CONFIG=forced`` ("" for the
    heuristics' own choice); the variable stays set for the calls that follow."""
    os.environ["DGREG_SM90_CONFIG"] = forced
    dispatch.clear_caches()
    return dgreg.explain(op, problem, device=device, file=None, **fields)


def op_problem(key: list) -> tuple[str, Any]:
    """(op, problem) of a case key: ``["fp8" | "bf16", M, N, K]`` or ``["masked" |
    "contiguous", G, M per group, N, K]`` (the FP8 MoE shapes of ``dgreg bench grouped``)."""
    if key[0] in ("fp8", "bf16"):
        return f"{key[0]}_gemm", dgreg.Problem(*key[1:])
    kind, groups, per, n, k = key
    if kind == "masked":
        return "m_grouped_fp8_gemm_masked", dgreg.Problem(per, n, k, groups, expected_m=per)
    return "m_grouped_fp8_gemm_contiguous", dgreg.Problem(groups * per, n, k, groups)


def prepared_case(key: list) -> dict:
    """The ``dgreg bench`` case (inputs, reference, our call, FLOPs) of a case key (see
    `op_problem`)."""
    from dgreg.bench import _SUITES

    if key[0] in ("fp8", "bf16"):
        return _SUITES[key[0]][0](*key[1:])
    return _SUITES["grouped"][0](*key)


def checked_kernel_us(case: dict, op: str, problem: Any, forced: str, what: str,
                      calls: int = 20, check: bool = True) -> tuple[float, Any]:
    """(kernel time in us, resolution) of a prepared ``dgreg bench`` case under
    ``DGREG_SM90_CONFIG=forced``: D is poisoned, the call checked against the float64
    reference (unless ``check`` is False: a timing-only variant), then timed."""
    from dgreg.bench import _checked, kernel_time_us

    res = forced_plan(op, problem, forced)
    if check:
        _checked(case, what)
    else:
        case["ours"]()
    return kernel_time_us(case["ours"], calls=calls)[0], res


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


def write_json(path: str | None, data: Any) -> None:
    """The script's results as JSON at ``path`` (its ``--json`` option), if one was given."""
    if path:
        import json

        with open(path, "w") as f:
            json.dump(data, f, indent=1)
