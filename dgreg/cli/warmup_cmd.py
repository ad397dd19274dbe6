"""``dgreg warmup --spec-file FILE``: precompile every kernel a list of shapes resolves to.

The file is TOML with one ``[[kernel]]`` table per operation::

    [[kernel]]
    op = "fp8_gemm"            # any name of dgreg.spec.OPS
    m = [64, 128, 4096]        # an int or a list; lists expand to their product
    n = [2112, 7168]
    k = 7168
    # optional: layout, recipe, out_dtype, accumulate, groups, expected_m

Shapes resolve on the current device (or ``--arch``); JIT kernels are compiled in parallel
processes into the kernel cache, so servers never compile on their hot path.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path
from typing import Any

_KEYS = {"op", "m", "n", "k", "layout", "recipe", "out_dtype", "accumulate", "groups",
         "expected_m"}


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("warmup", help="precompile the kernels a list of shapes needs")
    parser.add_argument("--spec-file", required=True, type=Path)
    parser.add_argument("--arch", help="resolve for this arch or preset instead of the GPU here")
    parser.add_argument("--jobs", type=int, default=0,
                        help="parallel compile processes (default: CPU count, at most 8)")
    parser.set_defaults(func=run)


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def load(path: Path) -> list[tuple[Any, Any]]:
    """(spec, problem) pairs from a warmup file; SpecFileError names the file and key."""
    from dgreg.errors import DgregError, SpecFileError
    from dgreg.spec import Problem, spec_for

    try:
        import tomllib
    except ModuleNotFoundError:  # Python < 3.11
        import tomli as tomllib
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SpecFileError(path, "-", f"cannot read TOML: {exc}") from exc
    tables = data.get("kernel")
    if not isinstance(tables, list) or not tables:
        raise SpecFileError(path, "kernel", "expected one or more [[kernel]] tables")
    pairs = []
    for i, table in enumerate(tables):
        where = f"kernel[{i}]"
        unknown = set(table) - _KEYS
        if unknown:
            raise SpecFileError(path, where, f"unknown keys {sorted(unknown)}; known: {sorted(_KEYS)}")
        for key in ("op", "m", "n", "k"):
            if key not in table:
                raise SpecFileError(path, f"{where}.{key}", "missing")
        try:
            spec = spec_for(table["op"], layout=table.get("layout"), recipe=table.get("recipe"),
                            d_dtype=table.get("out_dtype"),
                            accumulate=bool(table.get("accumulate", False)))
            for m, n, k in itertools.product(*(_as_list(table[x]) for x in "mnk")):
                pairs.append((spec, Problem(m, n, k, table.get("groups", 1),
                                            expected_m=table.get("expected_m"))))
        except DgregError as exc:
            raise SpecFileError(path, where, str(exc)) from exc
    return pairs


def _build_one(job: tuple[Any, Any, Any]) -> tuple[str, bool, float]:
    from dgreg import jit
    from dgreg.dispatch import resolve
    from dgreg.registry import get_registry

    spec, problem, device = job
    plan = resolve(spec, device, problem)
    built = jit.build(get_registry(), plan.chosen, spec, plan.choice.config, plan.device)
    return str(plan.kernel_key), built.built, built.seconds


def _bar(done: int, total: int) -> None:
    if sys.stderr.isatty():
        filled = int(30 * done / max(total, 1))
        print(f"\r[{'#' * filled}{'.' * (30 - filled)}] {done}/{total}", end="", file=sys.stderr,
              flush=True)
        if done == total:
            print(file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from dgreg.device import current_device, preset

    device = preset(args.arch, argument="--arch") if args.arch else current_device()
    return precompile(load(args.spec_file), device, args.jobs)


def precompile(pairs: list[tuple[Any, Any]], device: Any, jobs: int = 0) -> int:
    """Compile, into the kernel cache, the JIT kernel each ``(spec, problem)`` resolves to on
    ``device``, once per kernel key, in ``jobs`` processes (0: CPU count, at most 8). The
    processes resolve again from the environment: plugin selection must be in ``DGREG_*``
    variables, not a ``config.scope``."""
    import os
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from multiprocessing import get_context

    from dgreg.dispatch import resolve

    work, skipped, seen = [], [], set()
    for spec, problem in pairs:
        plan = resolve(spec, device, problem)
        chosen = plan.chosen
        if chosen is None or not chosen.is_jit:
            skipped.append(f"{spec.name} {problem!r}: "
                           f"{chosen.kernel_id if chosen else 'no kernel'} (nothing to compile)")
            continue
        if plan.kernel_key not in seen:
            seen.add(plan.kernel_key)
            work.append((spec, problem, plan.device))
    for line in skipped:
        print(f"skip     {line}")
    if not work:
        print(f"nothing to compile on {device!r}: no shape resolves to a JIT kernel")
        return 0
    workers = jobs or min(8, os.cpu_count() or 1)
    start = time.perf_counter()
    results = []
    if workers == 1 or len(work) == 1:
        for i, job in enumerate(work):
            results.append(_build_one(job))
            _bar(i + 1, len(work))
    else:  # spawn: a forked CUDA-initialised parent would break the children
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(_build_one, job) for job in work]
            for i, future in enumerate(as_completed(futures)):
                results.append(future.result())
                _bar(i + 1, len(work))
    for key, built, seconds in sorted(results):
        print(f"{'compiled' if built else 'cached  '} {seconds:7.2f} s  {key}")
    print(f"{len(results)} kernel(s) ready in {time.perf_counter() - start:.1f} s "
          f"({sum(1 for r in results if r[1])} compiled, {workers} process(es))")
    return 0
