"""Images decoded from their files when they are read, so memory does not grow with the number of images.

Decoding 5,000 photos at 224 px into one array takes 750 MB. :class:`LazyImages` holds only the file paths and
decodes the rows an index asks for; it can stand in for ``SignData.images`` wherever a split is read by
indexing (``images[i:i + batch]``, ``images[rows]``), and :func:`iter_batches` walks any split batch by batch.
Nothing is cached: every read decodes again, so a consumer should read each batch once.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from klugerhans.data.dataset import SignData
from klugerhans.data.images import read_image, resize_center_crop
from klugerhans.errors import DataError, ImageError, KlugerhansError

_PROGRESS_MIN = 500  # below this many images, no progress bar


def decode_file(path: str | os.PathLike[str], size: int) -> np.ndarray:
    """Read one image file and bring it to (size, size, 3) uint8 with :func:`resize_center_crop`.

    Raises:
        DataError: the file is missing, empty, not an image or damaged (one line naming it).
    """
    try:
        return resize_center_crop(read_image(path), size)
    except ImageError as err:
        raise DataError(str(err)) from None


def decode_files(
    paths: Sequence[str] | np.ndarray, size: int, *, progress: bool = False, desc: str = "decoding"
) -> np.ndarray:
    """(N, size, size, 3) uint8: every file of ``paths`` through :func:`decode_file`, into one array.

    Args:
        paths: (N,) image file paths.
        size: output side S.
        progress: show a progress bar on stderr (from 500 images on).
        desc: the bar's label.
    """
    from tqdm import tqdm

    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    bar = tqdm(
        paths, desc=desc, unit="img", file=sys.stderr, leave=False, disable=not progress or len(paths) < _PROGRESS_MIN
    )
    with bar:
        for i, path in enumerate(bar):
            out[i] = decode_file(str(path), size)
    return out


@dataclass(frozen=True, eq=False)
class LazyImages:
    """(N, S, S, 3) uint8 images that are decoded from their files only when rows are read.

    Supports what the loops over ``SignData.images`` use: ``len``, ``shape``, ``dtype``, ``ndim``, and indexing by
    an int, a slice, an integer array or a boolean mask (optionally followed by pixel/channel indices), which
    returns a decoded ``np.ndarray`` as NumPy would. ``np.asarray(lazy)`` decodes everything (the in-memory
    path); :meth:`take` selects rows without decoding. Nothing is cached: each read decodes again.
    """

    paths: np.ndarray
    """(N,) str image file paths."""
    side: int
    """Side S of the decoded images (each file is resized on its short side and centre-cropped)."""

    def __post_init__(self) -> None:
        if self.side < 1:
            raise KlugerhansError(f"image size must be at least 1 pixel, got {self.side}")
        if np.ndim(self.paths) != 1:
            raise ValueError(f"paths must be one-dimensional, got shape {np.shape(self.paths)}")

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """``(N, S, S, 3)``, as the decoded array would have."""
        return (len(self.paths), self.side, self.side, 3)

    @property
    def dtype(self) -> np.dtype[Any]:
        """Always uint8."""
        return np.dtype(np.uint8)

    @property
    def ndim(self) -> int:
        """Always 4."""
        return 4

    def rows(self, key: Any) -> np.ndarray:
        """The row indices an index over the first axis selects (NumPy's rules, including its IndexErrors)."""
        return np.arange(len(self.paths))[key]

    def take(self, key: Any) -> LazyImages:
        """The rows selected by ``key`` (slice, integer array or boolean mask), still undecoded."""
        return LazyImages(self.paths[np.atleast_1d(self.rows(key))], self.side)

    def __getitem__(self, key: Any) -> np.ndarray:
        rest: tuple[Any, ...] = ()
        if isinstance(key, tuple):
            key, rest = (key[0], key[1:]) if key else (slice(None), ())
        rows = self.rows(key)
        if np.ndim(rows) == 0:
            image = decode_file(str(self.paths[int(rows)]), self.side)
            return image[rest] if rest else image
        images = decode_files(self.paths[rows], self.side)
        return images[(slice(None), *rest)] if rest else images

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        images = decode_files(self.paths, self.side)
        return images if dtype is None else images.astype(dtype, copy=False)

    def __repr__(self) -> str:
        return f"LazyImages({len(self)} files, {self.side} px)"


def lazy_sign_data(paths: np.ndarray, labels: np.ndarray, size: int) -> SignData:
    """A :class:`SignData` whose ``images`` is a :class:`LazyImages` over ``paths`` (whole-image boxes, no tracks).

    ``subset`` of it decodes the rows it keeps; :func:`iter_batches` reads it batch by batch.
    """
    n = len(paths)
    return SignData(
        images=cast(np.ndarray, LazyImages(np.asarray(paths, dtype=str), size)),
        labels=np.asarray(labels, dtype=np.int64),
        tracks=np.full(n, -1, dtype=np.int64),
        boxes=np.tile(np.array([0, 0, size, size], dtype=np.float32), (n, 1)),
        sources=np.asarray(paths, dtype=str),
    )


def is_lazy(data: SignData) -> bool:
    """Whether ``data.images`` decodes on access (a :class:`LazyImages`)."""
    return isinstance(data.images, LazyImages)


def iter_batches(data: SignData, batch_size: int) -> Iterator[SignData]:
    """Yield ``data`` in consecutive batches of at most ``batch_size`` rows, each with decoded images.

    For a lazy split (:func:`lazy_sign_data`) only one batch is decoded at a time, so memory stays flat when the
    caller drops each batch before asking for the next; an in-memory split is sliced (views, no copies).
    """
    if batch_size < 1:
        raise KlugerhansError(f"batch size must be at least 1, got {batch_size}")
    for start in range(0, len(data), batch_size):
        yield data.subset(slice(start, start + batch_size))
