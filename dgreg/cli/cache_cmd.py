"""``dgreg cache ls|info|clear``: the on-disk kernel cache."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("cache", help="list, describe or clear the kernel cache")
    parser.add_argument("action", choices=("ls", "info", "clear"))
    parser.add_argument("--dir", help="cache directory (default: DGREG_CACHE_DIR or ~/.cache/dgreg)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dgreg.jit.cache import CacheEntry, KernelCache

    cache = KernelCache(args.dir)
    if args.action == "clear":
        removed = cache.clear()
        print(f"removed {removed} entr{'y' if removed == 1 else 'ies'} from {cache.root}")
        return 0
    entries = cache.entries()
    if args.action == "info":
        bad = sum(1 for e in entries if not isinstance(e, CacheEntry))
        print(f"cache      {cache.root}")
        print(f"entries    {len(entries)} ({bad} unusable)")
        print(f"size       {cache.size_bytes() / 2**20:.1f} MiB")
        return 0
    if not entries:
        print(f"no entries in {cache.root}")
    for entry in entries:
        if not isinstance(entry, CacheEntry):
            key, problem = entry
            print(f"{key}  UNUSABLE: {problem}")
            continue
        meta = entry.meta
        ptxas = meta.get("ptxas", {})
        print(f"{entry.key}  {meta.get('arch', '?'):<8} {meta.get('compiler', '?'):<14} "
              f"{ptxas.get('registers', 0):>3} regs  spills {ptxas.get('spill_stores', 0)}/"
              f"{ptxas.get('spill_loads', 0)}  {meta.get('name') or meta.get('entry')}")
    return 0
