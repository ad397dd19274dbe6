"""``dgreg explain OP --m M --n N --k K ...``: which kernel would serve a call, and why.

Prints :func:`dgreg.explain` (every candidate, accepted or rejected with its reason, the
chosen config and kernel key) or, with ``--json``, ``Resolution.as_dict()``.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from dgreg.cli.args import int_at_least
from dgreg.cli.plugins_cmd import print_json

if TYPE_CHECKING:
    from dgreg.device import Device
    from dgreg.spec import GemmSpec, Problem

__all__ = ["add_parser", "build_problem", "parse_ks", "run"]


_size = int_at_least(0)


def parse_ks(text: str) -> tuple[int, ...]:
    """argparse type for ``--ks 128,256,...``: the per-group K of a K-grouped op."""
    try:
        ks = tuple(_size(part.strip()) for part in text.split(",") if part.strip())
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"--ks takes comma-separated ints: {exc}") from None
    if not ks:
        raise argparse.ArgumentTypeError("--ks takes at least one group size, e.g. 128,256")
    return ks


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "explain", help="show which kernel serves a GEMM and why the others do not",
        description="Resolve one operation and size on a device (the current one, or a "
                    "simulated one with --device) and print every candidate with its verdict.")
    parser.add_argument("op", help="operation name, e.g. fp8_gemm, m_grouped_bf16_gemm_masked")
    parser.add_argument("--m", type=_size, required=True, help="rows of A (M_max per group "
                        "when masked, M_sum when contiguous)")
    parser.add_argument("--n", type=_size, required=True, help="columns of D")
    parser.add_argument("--k", type=_size, help="reduction size (K-grouped: the sum; see --ks)")
    parser.add_argument("--ks", type=parse_ks, metavar="K1,K2,...",
                        help="K-grouped ops: per-group K (sets --groups and --k)")
    parser.add_argument("--groups", type=_size, help="number of groups of a grouped op")
    parser.add_argument("--expected-m", type=_size, help="grouped ops: typical rows per group")
    parser.add_argument("--layout", type=str.upper, choices=("NT", "NN", "TN", "TT"),
                        help="operand major-ness (default: NT, TN for K-grouped)")
    parser.add_argument("--recipe", type=str.lower, choices=("1d2d", "1d1d", "ue8m0", "none"),
                        help="FP8 scaling recipe (default: 1d2d, 1d1d for K-grouped)")
    parser.add_argument("--out-dtype", choices=("bf16", "fp32"),
                        help="dtype of D (default: bf16, fp32 for K-grouped)")
    parser.add_argument("--accumulate", action="store_true", help="D = C + A @ B")
    parser.add_argument("--device", help="h100, h200, b200, sm90a, sm100a, cpu, or a plugin's "
                        "arch tag (default: the current device, or DGREG_ARCH)")
    parser.add_argument("--plugin", help="pin resolution to this plugin")
    parser.add_argument("--json", action="store_true", help="print Resolution.as_dict() as JSON")
    parser.add_argument("--sass", action="store_true",
                        help="compile the chosen kernel (needs nvcc, not a GPU) and summarise its "
                             "SASS: tensor-core instructions, local memory, registers, passes")
    parser.set_defaults(func=run)


def _check_grouping(spec: GemmSpec, args: argparse.Namespace) -> None:
    from dgreg.errors import InvalidArgumentError
    from dgreg.spec import Grouping

    if args.ks is not None and spec.grouping != Grouping.K_CONTIGUOUS:
        raise InvalidArgumentError("--ks", f"omitted: {spec.op} is not K-grouped", args.ks)
    if spec.grouping == Grouping.NONE:
        if args.groups not in (None, 1):
            raise InvalidArgumentError("--groups", f"1 or omitted: {spec.op} is not grouped",
                                       args.groups)
        if args.expected_m is not None:
            raise InvalidArgumentError("--expected-m", f"omitted: {spec.op} is not grouped",
                                       args.expected_m)


def build_problem(spec: GemmSpec, args: argparse.Namespace) -> Problem:
    """The :class:`Problem` the options describe; inconsistent sizes are an InvalidArgumentError."""
    from dgreg.errors import InvalidArgumentError
    from dgreg.spec import Problem

    _check_grouping(spec, args)
    k, groups = args.k, args.groups
    if args.ks is not None:
        if k is not None and k != sum(args.ks):
            raise InvalidArgumentError("--k", f"the sum of --ks ({sum(args.ks)}) or omitted", k)
        if groups is not None and groups != len(args.ks):
            raise InvalidArgumentError("--groups", f"the number of --ks ({len(args.ks)}) or "
                                       "omitted", groups)
        k, groups = sum(args.ks), len(args.ks)
    if k is None:
        raise InvalidArgumentError("--k", "given (or --ks for a K-grouped op)", "nothing")
    try:
        return Problem(args.m, args.n, k, groups if groups is not None else 1,
                       expected_m=args.expected_m or None, group_ks=args.ks)
    except ValueError as exc:  # Problem's validators name the field; keep the one-line shape
        raise InvalidArgumentError("sizes", "consistent", exc) from None


def _device(name: str | None) -> Device | None:
    from dgreg.device import preset

    return None if name is None else preset(name, argument="--device")


def run(args: argparse.Namespace) -> int:
    from dgreg.dispatch import explain
    from dgreg.errors import UnsupportedSpecError
    from dgreg.spec import spec_for

    try:
        spec = spec_for(args.op, layout=args.layout, recipe=args.recipe,
                        d_dtype=args.out_dtype, accumulate=args.accumulate)
    except ValueError as exc:  # an enum converter's message; UnsupportedSpecError passes through
        raise UnsupportedSpecError(str(exc)) from None
    result = explain(spec, build_problem(spec, args), device=_device(args.device),
                     plugin=args.plugin, file=None)
    sass = sass_summary(result) if args.sass else None
    if args.json:
        print_json({**result.as_dict(), **({"sass": sass} if sass is not None else {})})
    else:
        print(result)
        if sass is not None:
            print("  sass: " + ", ".join(f"{k} {v}" for k, v in sass.items()))
    return 0


def sass_summary(result: object) -> dict[str, object]:
    """Build the chosen JIT kernel (cached) and count what matters in its SASS."""
    from dgreg.jit import build
    from dgreg.registry import get_registry
    from dgreg.sass import disassemble, summarize

    chosen = result.chosen
    if chosen is None or not chosen.is_jit or result.choice is None:
        return {"note": "the chosen kernel is not compiled by dgreg (nothing to disassemble)"}
    built = build(get_registry(), chosen, result.spec, result.choice.config, result.device)
    summary = summarize(disassemble(built.cubin))
    ptxas = built.ptxas
    return {"QGMMA": summary.count("QGMMA"), "HGMMA": summary.count("HGMMA"),
            "UTCQMMA": summary.count("UTCQMMA"), "UTCHMMA": summary.count("UTCHMMA"),
            "FFMA": summary.count("FFMA"), "local_memory_instructions": summary.local_memory,
            "registers": ptxas.registers, "spill_bytes": ptxas.spill_stores + ptxas.spill_loads,
            "sass_passes": [p["pass"] for p in built.entry.meta.get("sass_passes", [])],
            "cache_entry": str(built.entry.path)}
