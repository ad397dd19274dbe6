"""``dgreg config``: every ``DGREG_*`` setting, its current value, default and doc."""

from __future__ import annotations

import argparse

from dgreg.cli.plugins_cmd import format_table, print_json

__all__ = ["add_parser", "format_value", "run"]

HEADERS = ("NAME", "VALUE", "DEFAULT", "SET", "TYPE", "DOC")


def format_value(value: object) -> str:
    """A setting's value as the environment would spell it; unset and empty stay distinct."""
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value) or "(empty)"
    return str(value)


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "config", help="list every DGREG_* setting with its value, default and doc",
        description="List every DGREG_* environment variable dgreg reads: current value, "
                    "default, whether it is set, its type and what it does.")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dgreg import config

    settings = config.describe()
    if args.json:
        print_json(settings)
        return 0
    rows = [[s["name"], format_value(s["value"]), format_value(s["default"]),
             "yes" if s["set"] else "no", s["type"], s["doc"]] for s in settings]
    print(format_table(HEADERS, rows, wrap_last=True))
    return 0
