"""PLACEHOLDER created by the CLI engineer for local testing; the conformance owner replaces it."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("conformance", help="run the conformance suite (placeholder)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print("dgreg conformance: not available yet")
    return 1
