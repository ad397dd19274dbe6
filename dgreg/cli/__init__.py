"""The ``dgreg`` command: one small module per subcommand.

Each command module defines ``add_parser(subparsers)`` (registering its parser and setting
``func`` to its ``run(args) -> int``). Modules import torch and the rest lazily, in ``run``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

COMMANDS = ("info", "plugins", "explain", "demo", "conformance", "config", "cache", "warmup", "bench")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dgreg", description="FP8/BF16 GEMMs for NVIDIA GPUs through per-arch plugins.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"dgreg.cli.{name}_cmd").add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from dgreg.errors import DgregError

    try:
        return int(args.func(args) or 0)
    except DgregError as exc:
        print(f"dgreg {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
