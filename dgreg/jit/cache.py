"""The on-disk kernel cache: pure keys, atomic publish, per-key locks, validated entries.

Layout: ``<root>/<key[:2]>/<key>/`` holds ``kernel.cubin``, ``meta.json`` (size and sha256
of the cubin, compiler, ptxas report, SASS passes, what it was built from), ``kernel.cu``
and ``compile.log``. A miss compiles into a unique directory under ``<root>/.tmp`` (same
filesystem) and renames it into place while holding ``<root>/.locks/<key>.lock``; after
taking the lock the entry is looked up again, so N processes asking for one kernel compile
it once. An entry whose cubin does not match its recorded hash is rebuilt with a warning.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs

from dgreg import config
from dgreg.errors import CacheError

__all__ = ["CacheEntry", "KernelCache", "default_root", "digest"]

FORMAT = 1  # bump when the entry layout changes: old entries then simply miss
CUBIN = "kernel.cubin"
META = "meta.json"


def default_root() -> Path:
    configured = config.get("DGREG_CACHE_DIR")
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "dgreg"


def digest(parts: dict[str, Any]) -> str:
    """A stable hash of the build inputs (JSON with sorted keys: same inputs, same key)."""
    blob = json.dumps({"format": FORMAT, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


@attrs.frozen
class CacheEntry:
    key: str
    path: Path
    cubin: bytes = attrs.field(repr=lambda b: f"<{len(b)} bytes>")
    meta: dict[str, Any] = attrs.field(repr=False)


class KernelCache:
    """One cache directory. Safe to share between processes and machines' NFS mounts that
    honour ``flock``."""

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()

    def entry_dir(self, key: str) -> Path:
        return self.root / key[:2] / key

    # -- reading ---------------------------------------------------------------------------

    def _read(self, key: str) -> tuple[CacheEntry | None, str | None]:
        """The valid entry, or (None, why it is unusable) — why is None for a plain miss."""
        path = self.entry_dir(key)
        if not path.is_dir():
            return None, None
        try:
            meta = json.loads((path / META).read_text())
            cubin = (path / CUBIN).read_bytes()
        except (OSError, ValueError) as exc:
            return None, f"unreadable ({type(exc).__name__}: {exc})"
        if len(cubin) != meta.get("cubin_size") or \
                hashlib.sha256(cubin).hexdigest() != meta.get("cubin_sha256"):
            return None, (f"cubin does not match its recorded hash ({len(cubin)} bytes, "
                          f"{meta.get('cubin_size')} recorded): truncated or corrupt")
        return CacheEntry(key, path, cubin, meta), None

    def get(self, key: str) -> CacheEntry | None:
        """The valid entry for ``key`` or None (a corrupt entry counts as missing)."""
        return self._read(key)[0]

    # -- writing ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _lock(self, key: str) -> Iterator[None]:
        locks = self.root / ".locks"
        try:
            locks.mkdir(parents=True, exist_ok=True)
            handle = open(locks / f"{key}.lock", "a+")  # noqa: SIM115 - held across the yield
        except OSError as exc:
            raise self._read_only(key, exc) from exc
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            handle.close()

    def _read_only(self, key: str, exc: OSError) -> CacheError:
        return CacheError(
            f"kernel cache {self.root} is not writable ({exc.strerror or exc}) and has no entry "
            f"for kernel {key}: precompile it with `dgreg warmup` where the cache is writable, "
            f"or point DGREG_CACHE_DIR at a writable directory")

    def get_or_build(self, key: str, build: Callable[[Path], tuple[bytes, dict[str, Any]]]
                     ) -> tuple[CacheEntry, bool]:
        """Return ``(entry, built)``: the cached entry, or one made by ``build(workdir)``.

        ``build`` gets an empty directory to leave its files in (sources, logs) and returns
        the cubin bytes and metadata to record. It runs at most once per key across processes.
        """
        entry, problem = self._read(key)
        if entry is not None:
            return entry, False
        with self._lock(key):
            entry, problem = self._read(key)
            if entry is not None:
                return entry, False
            if problem is not None:
                warnings.warn(f"dgreg: cache entry {self.entry_dir(key)} is {problem}; rebuilding",
                              stacklevel=3)
            return self._build(key, build), True

    def _build(self, key: str, build: Callable[[Path], tuple[bytes, dict[str, Any]]]) -> CacheEntry:
        staging = self.root / ".tmp"
        try:
            staging.mkdir(parents=True, exist_ok=True)
            workdir = Path(tempfile.mkdtemp(prefix=f"{key}.", dir=staging))
        except OSError as exc:
            raise self._read_only(key, exc) from exc
        try:
            cubin, meta = build(workdir)
            meta = {**meta, "key": key, "cubin_size": len(cubin),
                    "cubin_sha256": hashlib.sha256(cubin).hexdigest(), "created": time.time(),
                    "format": FORMAT}
            (workdir / CUBIN).write_bytes(cubin)
            (workdir / META).write_text(json.dumps(meta, indent=1, sort_keys=True, default=str))
            final = self.entry_dir(key)
            final.parent.mkdir(parents=True, exist_ok=True)
            if final.exists():  # a corrupt entry: move it aside, then publish atomically
                aside = Path(tempfile.mkdtemp(prefix=f"{key}.old.", dir=staging))
                os.rename(final, aside / "entry")
                shutil.rmtree(aside, ignore_errors=True)
            os.rename(workdir, final)
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        return CacheEntry(key, final, cubin, meta)

    # -- listing ---------------------------------------------------------------------------

    def entries(self) -> list[CacheEntry | tuple[str, str]]:
        """Every entry: a CacheEntry, or ``(key, problem)`` for an unusable one."""
        found: list[CacheEntry | tuple[str, str]] = []
        if not self.root.is_dir():
            return found
        for shard in sorted(self.root.iterdir()):
            if shard.name.startswith(".") or not shard.is_dir():
                continue
            for path in sorted(shard.iterdir()):
                entry, problem = self._read(path.name)
                found.append(entry if entry is not None else (path.name, problem or "missing"))
        return found

    def size_bytes(self) -> int:
        if not self.root.is_dir():
            return 0
        return sum(f.stat().st_size for f in self.root.rglob("*") if f.is_file())

    def clear(self) -> int:
        """Remove every entry (and stale temp dirs); returns the number of entries removed."""
        removed = 0
        if not self.root.is_dir():
            return 0
        for shard in self.root.iterdir():
            if shard.name in (".locks",) or not shard.is_dir():
                continue
            if shard.name != ".tmp":
                removed += sum(1 for p in shard.iterdir() if p.is_dir())
            shutil.rmtree(shard, ignore_errors=True)
        return removed
