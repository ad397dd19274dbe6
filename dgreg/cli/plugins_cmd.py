"""``dgreg plugins``: every plugin the registry knows, loaded or not, and why.

Also home of the small plain-text table formatter the other commands share.
"""

from __future__ import annotations

import argparse
import json
import textwrap
import warnings
from collections.abc import Sequence
from typing import Any

from dgreg.registry import PluginInfo

__all__ = ["add_parser", "format_table", "known_plugins", "plugin_row", "print_json", "run"]

#: Width the last column of a table is wrapped to fit (the project's line length).
TABLE_WIDTH = 100
_GAP = "  "


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]], *,
                 wrap_last: bool = False, width: int = TABLE_WIDTH) -> str:
    """Left-aligned columns under a header and a dashed rule; no colours.

    ``wrap_last`` wraps the last column so lines fit ``width``; continuation lines are
    indented to that column, which keeps the table readable for long notes and docs.
    """
    cells = [[str(c) for c in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    indent = sum(widths[:-1]) + len(_GAP) * (len(headers) - 1)  # where the last column starts
    last_width = max(30, width - indent) if wrap_last else None

    def line(row: Sequence[str]) -> list[str]:
        head = _GAP.join(c.ljust(w) for c, w in zip(row[:-1], widths[:-1], strict=True))
        pieces = textwrap.wrap(row[-1], last_width) if last_width and row[-1] else [row[-1]]
        first = (head + _GAP + pieces[0]) if head else pieces[0]
        return [first.rstrip()] + [" " * indent + p for p in pieces[1:]]

    rules = [*widths[:-1], min(widths[-1], last_width or widths[-1])]
    out = line(list(headers))
    out.append(_GAP.join("-" * w for w in rules))
    for row in cells:
        out.extend(line(row))
    return "\n".join(out)


def print_json(data: Any) -> None:
    """The ``--json`` output: one JSON document on stdout, nothing else."""
    print(json.dumps(data, indent=2, default=str))


def known_plugins() -> list[PluginInfo]:
    """Every plugin the registry knows, loaded or not (loading it if needed), without its
    skip warnings.

    A plugin that fails to load warns through :class:`PluginWarning`; the listings show the
    same reason in their own rows, so the warning would only repeat it on stderr.
    """
    from dgreg.registry import PluginWarning, get_registry

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginWarning)
        registry = get_registry()
    return list(registry.plugins.values())


def _hook_names(info: PluginInfo) -> str:
    return ", ".join(info.hooks) or "-"


def plugin_row(info: PluginInfo) -> list[str]:
    """name, distribution, version, status, api, archs, note (a failed plugin: its reason)."""
    note = info.reason if info.status != "loaded" else (info.note or info.description)
    return [info.name, info.distribution or "-", info.version or "-", info.status,
            "-" if info.api_version is None else str(info.api_version),
            ",".join(info.archs) or "-", note]


PLUGIN_HEADERS = ("NAME", "DISTRIBUTION", "VERSION", "STATUS", "API", "ARCHS", "NOTE / REASON")


def _settings_line(plugins: Sequence[PluginInfo]) -> str:
    from dgreg import config

    allow = config.get("DGREG_PLUGINS")
    block = config.get("DGREG_DISABLE_PLUGINS")
    allowed = "unset (all installed)" if allow is None else (",".join(allow) or "empty (none)")
    return (f"loading: DGREG_PLUGINS={allowed}; DGREG_DISABLE_PLUGINS={','.join(block) or 'unset'}"
            f"\n         (built-in plugins always load: "
            f"{', '.join(p.name for p in plugins if p.builtin)})")


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "plugins", help="list plugins: loaded, failed (with the reason) or disabled",
        description="List every dgreg plugin: distribution, version, status, plugin API "
                    "version, archs, hooks and notes. DGREG_PLUGINS / DGREG_DISABLE_PLUGINS "
                    "control which installed plugins load.")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    plugins = known_plugins()
    if args.json:
        print_json([p.as_dict() for p in plugins])
        return 0
    print(format_table(PLUGIN_HEADERS, [plugin_row(p) for p in plugins], wrap_last=True))
    print()
    # hooks get a table of their own: a plugin implementing all of them is wider than a row
    print(format_table(("NAME", "HOOKS IMPLEMENTED"),
                       [[p.name, _hook_names(p)] for p in plugins], wrap_last=True))
    print()
    print(_settings_line(plugins))
    return 0
