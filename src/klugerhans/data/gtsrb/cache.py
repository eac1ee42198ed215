"""Decode once, load fast: a per-user cache of decoded dataset splits.

Each entry is a folder named by its key, holding one ``.npy`` file per split and array (``train_images.npy``,
``train_labels.npy``, ..., read with ``allow_pickle=False``; plain ``.npy`` files load several times faster than
the members of an ``.npz``) and ``meta.json``, written last, so an entry without
``meta.json`` is incomplete and gets rebuilt. Every file is written atomically. The key covers everything the
arrays depend on, including a cheap fingerprint (path, size, mtime) of the source files, so editing or
replacing the data invalidates the entry without hashing hundreds of megabytes on each load.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from klugerhans.data.dataset import SignData
from klugerhans.errors import DataError
from klugerhans.io import atomic_write, atomic_write_text

CACHE_ENV = "KLUGERHANS_CACHE_DIR"
"""Environment variable that overrides the per-user cache folder."""
CACHE_VERSION = 1
"""Bump when decoding changes, so old entries are not reused."""
_FIELDS = ("images", "labels", "tracks", "boxes", "sources")


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The klugerhans cache folder: ``cache_dir``, else ``$KLUGERHANS_CACHE_DIR``, else the per-user cache dir."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("klugerhans"))


def fingerprint(paths: Iterable[Path], *extra: object) -> str:
    """A short hash of the paths, sizes and mtimes of ``paths`` plus ``extra`` values (no file is read)."""
    digest = hashlib.sha256(repr((CACHE_VERSION, *extra)).encode())
    for path in sorted(paths):
        try:
            st = path.stat()
            digest.update(f"{path.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        except OSError:
            digest.update(f"{path}\0missing\n".encode())
    return digest.hexdigest()[:16]


def read_entry(folder: Path, key: str) -> tuple[dict[str, SignData], dict[str, Any]] | None:
    """Load the splits and metadata of entry ``folder``; None if it is missing, incomplete, stale or corrupt."""
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        if meta.get("key") != key or meta.get("version") != CACHE_VERSION:
            return None
        splits = {}
        for split in meta["splits"]:
            arrays = {name: np.load(folder / f"{split}_{name}.npy", allow_pickle=False) for name in _FIELDS}
            splits[split] = SignData(**arrays)
    except (OSError, ValueError, KeyError, TypeError):
        # A damaged entry is rebuilt rather than reported: the source data is still there.
        return None
    return splits, meta


def write_entry(folder: Path, key: str, splits: dict[str, SignData], meta: dict[str, Any]) -> None:
    """Write ``splits`` and ``meta`` (JSON-serialisable) as entry ``folder``, ``meta.json`` last.

    Raises:
        DataError: the cache folder is not writable.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for split, data in splits.items():
            for name in _FIELDS:
                with atomic_write(folder / f"{split}_{name}.npy") as fh:
                    np.save(fh, getattr(data, name), allow_pickle=False)
        atomic_write_text(folder / "meta.json", json.dumps({**meta, "key": key, "version": CACHE_VERSION}, indent=1))
    except OSError as err:
        raise DataError(
            f"cannot write the dataset cache in {folder} ({err.strerror or err}); set {CACHE_ENV} to a writable folder"
        ) from None


def prune_entries(parent: Path, prefix: str, keep: Path) -> None:
    """Remove entries in ``parent`` whose name starts with ``prefix`` except ``keep`` (stale versions of a source)."""
    with contextlib.suppress(OSError):
        for entry in parent.iterdir():
            if entry.name.startswith(prefix) and entry != keep and entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
