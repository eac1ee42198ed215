"""Atomic file writes: a reader never sees a half-written cache, checkpoint, report or download; and the values
those files hold made JSON-ready."""

from __future__ import annotations

import contextlib
import errno
import io
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file next to ``path``; on success flush, fsync and rename it over ``path``.

    On any exception (including KeyboardInterrupt or a full disk) the temporary file is removed and
    ``path`` keeps its previous content.
    """
    target = Path(path)
    if target.is_dir():
        # Checked first: os.replace would fail only after the work, naming the temporary file.
        raise IsADirectoryError(errno.EISDIR, "is a folder, expected a file path", str(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as err:
        err.filename = str(target)  # the user knows the file they asked for, not our temporary name
        raise
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        # mkstemp creates 0600 files; give the result the permissions an ordinary open() would.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(err, OSError) and err.filename in (None, tmp):
            err.filename = str(target)  # write/fsync on a full disk know no file name; the user's is the target
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_write(path, "wb") as fh:
        fh.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_figure(path: str | os.PathLike[str], fig: Any, dpi: int = 100, fmt: str = "png") -> Path:
    """Render a matplotlib figure (anything with ``savefig``) as ``fmt`` and write it to ``path`` atomically."""
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def to_jsonable(obj: Any) -> Any:
    """Convert NumPy/torch scalars and arrays, tuples and non-finite floats (-> None) into plain JSON values."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if callable(getattr(obj, "tolist", None)):  # NumPy arrays and scalars, torch tensors: no import of either here
        return to_jsonable(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
