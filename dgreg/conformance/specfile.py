"""Load and validate the TOML spec files: ``specs/ops/*.toml`` and ``specs/conformance/*.toml``.

Validation is strict because a typo in a spec file silently drops coverage: an unknown key,
a missing key, a wrong type, an unknown operation or a malformed shape raises
:class:`~dgreg.errors.SpecFileError` naming the file, the key path
(``case[dense_edges].shapes[2]``) and the problem. The op files must also agree with
:mod:`dgreg.spec`, which is the single source of truth for which dtype / layout / recipe
combinations exist: a file that declares a combination dgreg does not define, or misses one
it does, is an error.

The work is split by job: :mod:`.strict_toml` reads TOML through typed field checkers,
:mod:`.opfile` models the op files and checks them against :mod:`dgreg.spec` and the code,
:mod:`.casefile` models the case files (its docstring lists every key of a ``[[case]]``).
This module is their public surface. Loading case files does not import torch; loading op
files does (:func:`load_ops` checks entry points and alignment against the code).
"""

from __future__ import annotations

from pathlib import Path

from dgreg.conformance.casefile import (
    MUTATIONS,
    Accumulate,
    Case,
    Shape,
    iter_case_files,
    load_case_file,
)
from dgreg.conformance.opfile import Alignment, OpSpec, Tolerance, load_ops
from dgreg.conformance.strict_toml import read_toml

__all__ = [
    "MUTATIONS",
    "Accumulate",
    "Alignment",
    "Case",
    "OpSpec",
    "Shape",
    "Tolerance",
    "iter_case_files",
    "load_case_file",
    "load_ops",
    "read_toml",
    "repo_specs_dir",
]


def repo_specs_dir() -> Path | None:
    """``specs/`` of the checkout dgreg is imported from (editable installs), if there is one."""
    import dgreg

    specs = Path(dgreg.__file__).resolve().parent.parent / "specs"
    return specs if (specs / "ops").is_dir() else None
