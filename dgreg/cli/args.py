"""argparse helpers shared by the command modules."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse ``type``: an int >= ``minimum`` (anything else is a usage error, exit 2)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an int (got {text!r})") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an int >= {minimum} (got {value})")
        return value

    parse.__name__ = f"int>={minimum}"
    return parse
