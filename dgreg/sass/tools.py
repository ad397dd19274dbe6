"""Locating ``cuobjdump`` and ``nvdisasm``: PATH, ``$CUDA_HOME/bin``, then the
``nvidia-cuda-cuobjdump`` / ``nvidia-cuda-nvdisasm`` wheels (``pip install -e ".[test]"``)."""

from __future__ import annotations

import functools
import os
import shutil
from pathlib import Path

from dgreg.errors import DgregError

__all__ = ["find_tool"]


def _wheel_dirs() -> list[Path]:
    try:
        import nvidia
    except ImportError:
        return []
    dirs = []
    for root in getattr(nvidia, "__path__", []):
        root = Path(root)
        dirs += [p / "bin" for p in root.iterdir() if p.is_dir()]
    return dirs


@functools.cache
def find_tool(name: str) -> str:
    """The path of ``name`` (``cuobjdump`` or ``nvdisasm``), or DgregError saying where we looked."""
    found = shutil.which(name)
    if found:
        return found
    places = [Path(h) / "bin" for h in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH")) if h]
    places += _wheel_dirs()
    for place in places:
        candidate = place / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise DgregError(f"{name} not found on PATH, in $CUDA_HOME/bin or in the nvidia-cuda-{name} "
                     f"wheel: pip install nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm")
