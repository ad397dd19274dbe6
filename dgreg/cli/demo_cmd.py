from __future__ import annotations


def add_parser(sub):
    sub.add_parser("demo").set_defaults(func=lambda a: 0)
