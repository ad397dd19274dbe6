"""Named access to the scheduling ("control") bits of a Volta-to-Blackwell instruction.

Each 16-byte instruction keeps its control information in the high 64-bit word: a 17-bit
field at bits 41-57 (stall, yield, write and read scoreboards, wait mask) and the operand
reuse flags at bits 58-61. The yield bit is stored inverted: 0 means "yield" (the scheduler
may switch warps), which is how disassemblers print ``Y``.
"""

from __future__ import annotations

__all__ = ["FIELDS", "get", "replace"]

#: field -> (first bit in the high word, width)
FIELDS: dict[str, tuple[int, int]] = {
    "stall": (41, 4),
    "yield": (45, 1),  # 1 = no yield hint, 0 = yield
    "write_barrier": (46, 3),  # 7 = none
    "read_barrier": (49, 3),  # 7 = none
    "wait_mask": (52, 6),
    "reuse_a": (58, 1),
    "reuse_b": (59, 1),
    "reuse_c": (60, 1),
    "reuse_d": (61, 1),
}


def get(high: int, field: str) -> int:
    shift, width = FIELDS[field]
    return (high >> shift) & ((1 << width) - 1)


def replace(high: int, **values: int) -> int:
    """``high`` with the named fields set, e.g. ``replace(hi, yield_=0)`` is spelt
    ``replace(hi, **{"yield": 0})``; other bits are untouched."""
    for field, value in values.items():
        shift, width = FIELDS[field]
        mask = ((1 << width) - 1) << shift
        if value < 0 or value >= 1 << width:
            raise ValueError(f"{field} takes {width} bit(s) (got {value})")
        high = (high & ~mask) | (value << shift)
    return high


def differing(old: int, new: int) -> set[str]:
    """The fields in which two high words differ, plus ``"other"`` for any bit outside them."""
    names = {name for name in FIELDS if get(old, name) != get(new, name)}
    covered = 0
    for shift, width in FIELDS.values():
        covered |= ((1 << width) - 1) << shift
    if (old ^ new) & ~covered:
        names.add("other")
    return names
