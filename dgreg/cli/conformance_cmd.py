"""``dgreg conformance``: run the conformance suite against installed plugins.

Runs ``specs/conformance/*.toml`` (or ``--spec-dir``) through pytest in this process, so the
plugins tested are the ones this process loads (entry points, ``DGREG_PLUGINS``,
``DGREG_ARCH``), and prints one coverage line per plugin: passed / claimed / total.
Arguments after ``--`` go to pytest unchanged (``dgreg conformance -- -x --tb=short``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "conformance", help="run the conformance suite against plugins",
        description="Run the TOML conformance cases against dgreg plugins and print "
                    "'N passed / M claimed / T total' per plugin. A plugin claims a case when "
                    "resolution pinned to it chooses one of its kernels; a claimed case must "
                    "pass. The exit code is nonzero on any failure.")
    parser.add_argument("--plugin", action="append", metavar="NAME",
                        help="plugin to test (entry-point or distribution name; repeatable; "
                             "default: every loaded plugin)")
    parser.add_argument("--spec-dir", type=Path, metavar="DIR",
                        help="directory of conformance TOML files (default: specs/conformance "
                             "of the checkout dgreg is installed from)")
    parser.add_argument("-k", dest="keyword", metavar="EXPR",
                        help="only run instances whose ids match this pytest -k expression, "
                             "e.g. 'fp8_gemm/nt and not compat'")
    parser.add_argument("--include-large", action="store_true",
                        help="also run the large (DeepSeek-V3) shapes on the CPU (slow)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="where the case tensors live (default: cuda when available)")
    parser.add_argument("-v", "--verbose", action="store_true", help="one line per instance")
    parser.add_argument("pytest_args", nargs="*", metavar="-- PYTEST_ARGS",
                        help="extra pytest arguments, after --")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dgreg.conformance.runner import run as run_suite

    return run_suite(args.plugin, spec_dir=args.spec_dir, keyword=args.keyword,
                     include_large=args.include_large, device=args.device,
                     verbose=args.verbose, extra_args=args.pytest_args)
