"""A strict, typed reader over TOML tables: the spec files' field checkers.

Each value is read through :class:`Table` with the type it must have; a key the reader never
asked for is an error (:meth:`Table.done`), so a misspelt key cannot silently drop coverage.
Every problem is a :class:`~dgreg.errors.SpecFileError` naming the file, the key path
(``case[dense_edges].shapes[2]``) and what is wrong.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from dgreg.errors import SpecFileError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = ["Table", "kind_of", "parse_word", "read_toml"]

_MISSING = object()


def kind_of(value: object) -> str:
    """How a problem names the TOML type of ``value``: ``an integer``, ``a table``..."""
    return {bool: "a boolean", int: "an integer", float: "a float", str: "a string",
            list: "an array", dict: "a table"}.get(type(value), type(value).__name__)


class Table:
    """Typed access to one TOML table; keys never read are reported as unknown by :meth:`done`."""

    def __init__(self, path: Path, where: str, data: dict[str, Any]) -> None:
        self.path = path
        self.where = where
        self.data = data
        self.known: list[str] = []

    def key(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def fail(self, key: str, problem: str) -> SpecFileError:
        return SpecFileError(self.path, self.key(key), problem)

    def get(self, key: str, required: bool) -> Any:
        self.known.append(key)
        if key in self.data:
            return self.data[key]
        if required:
            raise self.fail(key, "missing (required)")
        return _MISSING

    def has(self, key: str) -> bool:
        return key in self.data

    def typed(self, key: str, types: tuple[type, ...], what: str, *, required: bool = True,
              default: Any = None) -> Any:
        value = self.get(key, required)
        if value is _MISSING:
            return default
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise self.fail(key, f"must be {what} (got {kind_of(value)}: {value!r})")
        return value

    def string(self, key: str, **kw: Any) -> Any:
        return self.typed(key, (str,), "a string", **kw)

    def boolean(self, key: str, **kw: Any) -> Any:
        return self.typed(key, (bool,), "a boolean", **kw)

    def integer(self, key: str, minimum: int = 0, **kw: Any) -> Any:
        value = self.typed(key, (int,), "an integer", **kw)
        if value is not None and value < minimum:
            raise self.fail(key, f"must be an integer >= {minimum} (got {value})")
        return value

    def positive_number(self, key: str, **kw: Any) -> Any:
        value = self.typed(key, (int, float), "a number", **kw)
        if value is not None and not value > 0:
            raise self.fail(key, f"must be a positive number (got {value!r})")
        return None if value is None else float(value)

    def one(self, key: str, parse: Callable[[str], Any], *, required: bool = True,
            default: Any = None) -> Any:
        """A string parsed by ``parse`` (whose ValueError message becomes the problem)."""
        value = self.string(key, required=required)
        if value is None:
            return default
        try:
            return parse(value)
        except ValueError as exc:
            raise self.fail(key, str(exc)) from None

    def choices(self, key: str, parse: Callable[[Any], Any], what: str, *,
                default: tuple[Any, ...],
                scalar_types: tuple[type, ...] = (str,)) -> tuple[Any, ...]:
        """A value or an array of values (the case expands over each), each parsed by ``parse``."""
        value = self.get(key, False)
        if value is _MISSING:
            return default
        items = value if isinstance(value, list) else [value]
        if not items:
            raise self.fail(key, f"must be {what} or a non-empty array of them (got [])")
        out = []
        for i, item in enumerate(items):
            label = f"{key}[{i}]" if isinstance(value, list) else key
            is_bool = isinstance(item, bool)
            if not isinstance(item, scalar_types) or (is_bool and bool not in scalar_types):
                raise self.fail(label, f"must be {what} (got {kind_of(item)}: {item!r})")
            try:
                parsed = parse(item)
            except ValueError as exc:
                raise self.fail(label, str(exc)) from None
            if parsed in out:
                raise self.fail(label, f"repeats {item!r}")
            out.append(parsed)
        return tuple(out)

    def int_rows(self, key: str, width: int | None,
                 what: str) -> tuple[tuple[int, ...], ...] | None:
        """An array of integer arrays: each of ``width`` items (or any non-zero length)."""
        value = self.get(key, False)
        if value is _MISSING:
            return None
        if not isinstance(value, list) or not value:
            raise self.fail(key, f"must be a non-empty array of {what} "
                                 f"(got {kind_of(value)}: {value!r})")
        rows = []
        for i, row in enumerate(value):
            if not isinstance(row, list) or (width is not None and len(row) != width) or not row:
                raise self.fail(f"{key}[{i}]", f"must be {what} (got {row!r})")
            for j, item in enumerate(row):
                if not isinstance(item, int) or isinstance(item, bool) or item < 0:
                    raise self.fail(f"{key}[{i}][{j}]",
                                    f"must be a non-negative integer (got {item!r})")
            rows.append(tuple(row))
        return tuple(rows)

    def int_list(self, key: str) -> tuple[int, ...] | None:
        value = self.get(key, False)
        if value is _MISSING:
            return None
        if not isinstance(value, list) or not value:
            raise self.fail(key, f"must be a non-empty array of integers (got {value!r})")
        for i, item in enumerate(value):
            if not isinstance(item, int) or isinstance(item, bool) or item < 0:
                raise self.fail(f"{key}[{i}]", f"must be a non-negative integer (got {item!r})")
        return tuple(value)

    def table(self, key: str, **kw: Any) -> Table | None:
        value = self.typed(key, (dict,), "a table", **kw)
        return None if value is None else Table(self.path, self.key(key), value)

    def done(self) -> None:
        unknown = [k for k in self.data if k not in self.known]
        if unknown:
            known = ", ".join(sorted(set(self.known)))
            raise self.fail(unknown[0], f"unknown key (known keys here: {known})")


def read_toml(path: Path) -> dict[str, Any]:
    """Parse ``path``; unreadable files and TOML syntax errors become :class:`SpecFileError`."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise SpecFileError(path, "<file>", f"cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecFileError(path, "<syntax>", f"is not valid TOML: {exc}") from None


def parse_word(words: Sequence[str]) -> Callable[[str], str]:
    """A parser (for :meth:`Table.one` / :meth:`Table.choices`) accepting only ``words``."""
    def parse(value: str) -> str:
        if value not in words:
            raise ValueError(f"must be one of {', '.join(words)} (got {value!r})")
        return value

    return parse
