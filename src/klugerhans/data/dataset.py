"""The in-memory sign dataset every loader returns, the dataset registry and the track-wise split.

A dataset is registered with what it can do (:class:`DatasetSpec`: the sizes it makes, whether it reads lazily,
draws its images or names its own classes), so code asks the entry, never the name. Its loader (real GTSRB,
synthetic signs, an image folder, ...) returns a :class:`SignDataset` with a ``train``
and a ``test`` :class:`SignData`, and a ``val`` one where the source ships it (:func:`select_split` picks one).
All images of one dataset share one square size, so a split is a handful of NumPy arrays
that a training loop indexes directly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from klugerhans.errors import KlugerhansError
from klugerhans.registry import Registry


@dataclass(frozen=True)
class SignData:
    """One split of sign images with labels and metadata (all arrays share the first axis N)."""

    images: np.ndarray
    """(N, S, S, 3) uint8 RGB images, cropped around the sign."""
    labels: np.ndarray
    """(N,) int64 class ids: 0..42 for GTSRB, 0..C-1 in ``info["class_names"]`` order for an image folder."""
    tracks: np.ndarray
    """(N,) int64 physical-sign track id (GTSRB trains come in tracks of ~30 frames); -1 where unknown."""
    boxes: np.ndarray
    """(N, 4) float32 sign box ``(x0, y0, x1, y1)`` in pixels of ``images``, x1/y1 exclusive."""
    sources: np.ndarray
    """(N,) str where each image came from (archive member or file path), for reports."""

    def __post_init__(self) -> None:
        n = len(self.images)
        if self.images.ndim != 4 or self.images.shape[3] != 3 or self.images.dtype != np.uint8:
            raise ValueError(f"images must be (N, S, S, 3) uint8, got {self.images.shape} {self.images.dtype}")
        for name in ("labels", "tracks", "boxes", "sources"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} rows, images have {n}")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def size(self) -> int:
        """Side length S of the square images."""
        return int(self.images.shape[1])

    def subset(self, index: np.ndarray | slice) -> SignData:
        """Return the rows selected by ``index`` (boolean mask, integer indices or slice)."""
        return SignData(
            images=self.images[index],
            labels=self.labels[index],
            tracks=self.tracks[index],
            boxes=self.boxes[index],
            sources=self.sources[index],
        )

    def with_images(self, images: np.ndarray) -> SignData:
        """Return a copy with ``images`` replaced (same shape), e.g. after applying stickers."""
        return SignData(images, self.labels, self.tracks, self.boxes, self.sources)

    def class_counts(self, num_classes: int = 43) -> np.ndarray:
        """(num_classes,) number of images per class."""
        return np.bincount(self.labels, minlength=num_classes)


@dataclass(frozen=True)
class SignDataset:
    """A dataset's official splits plus what the loader found (layout, cache state, ...)."""

    train: SignData
    test: SignData
    """The test split; empty where the source has none (an image folder with only ``train/``)."""
    info: dict[str, Any] = field(default_factory=dict)
    """Human-readable facts for ``klugerhans data``: name, layout, root, cache state, original sizes."""
    val: SignData | None = None
    """A validation split the source ships itself (an image folder's ``val/``); None where it has none."""


def select_split(ds: SignDataset, split: str) -> SignData:
    """The ``split`` ("train", "val" or "test") of ``ds``; a one-line error names the splits it has (an empty one
    counts as missing: a source without a test split returns it empty)."""
    splits = {"train": ds.train, "val": ds.val, "test": ds.test}
    data = splits.get(split)
    if data is None or len(data) == 0:
        have = ", ".join(name for name, value in splits.items() if value is not None and len(value))
        what = "no val split" if split == "val" else f"no split {split!r}"
        where = ds.info.get("root", ds.info.get("name", "the dataset"))
        raise KlugerhansError(f"{where} has {what}: " + (f"use one of {have}" if have else "it has no images at all"))
    return data


def check_class_count(ds: SignDataset, num_classes: int) -> None:
    """One line if ``ds`` names its classes (an image folder's ``info["class_names"]``) and has not ``num_classes``."""
    names = ds.info.get("class_names")
    if names is not None and len(names) != num_classes:
        where = ds.info.get("root", ds.info.get("name", "the data"))
        raise KlugerhansError(
            f"{where} has {len(names)} classes ({', '.join(map(str, names[:5]))}{', ...' if len(names) > 5 else ''}) "
            f"but the model has {num_classes} outputs; give the images of the classes the model was trained on"
        )


Loader = Callable[..., SignDataset]
MIN_IMAGE_SIZE = 8
"""Smallest image side a dataset of any size (:attr:`DatasetSpec.sizes` None) returns."""


@dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset: its loader and what it can do, so that no caller checks its name."""

    load: Loader
    """``fn(*, data_dir, size, download, max_images, seed, **extra) -> SignDataset``."""
    title: str | None = None
    """Its name in a sentence ("GTSRB", "synthetic signs"); None: the registry name."""
    sizes: tuple[int, ...] | None = (32, 48, 64)
    """The image sides it makes; None: any side from :data:`MIN_IMAGE_SIZE` on (it resizes photos of any shape)."""
    lazy: bool = False
    """It can leave the images in their files (the loader takes ``lazy=True``), so memory does not grow with them."""
    generated: bool = False
    """It draws its images, so the number of training images per class is a choice (the loader takes
    ``train_per_class``)."""
    class_names: Callable[[str | None], tuple[str, ...]] | None = None
    """Reads the dataset's own class names from ``data_dir`` without decoding an image (an image folder's class
    folders); None: its labels are GTSRB's 43 class ids, which stickers and the teaching case's figure name."""


DATASETS: Registry[DatasetSpec] = Registry("dataset")
"""Datasets by name (see :func:`register_dataset`)."""


def register_dataset(name: str, **capabilities: Any) -> Callable[[Loader], Loader]:
    """Decorator: register a loader as dataset ``name``, with what it can do (fields of :class:`DatasetSpec`).

    Example:
        >>> @register_dataset("photos", sizes=None)
        ... def load_photos(*, data_dir, size, download, max_images, seed) -> SignDataset: ...
    """

    def wrap(load: Loader) -> Loader:
        DATASETS.register(name)(DatasetSpec(load, **capabilities))
        return load

    return wrap


def dataset_title(name: str) -> str:
    """Dataset ``name`` in a sentence: its registered title, else the name itself (also for unregistered ones)."""
    spec = DATASETS.get(name)
    return (spec.title if spec is not None else None) or name


def dataset_names(**capabilities: bool) -> str:
    """The registered datasets with these capabilities (``lazy=True``, ...), as "a, b", for messages that say what
    to use."""
    able = (name for name, spec in DATASETS.items() if all(getattr(spec, k) == v for k, v in capabilities.items()))
    return ", ".join(sorted(able))


def load_dataset(
    name: str,
    *,
    data_dir: str | None = None,
    size: int = 32,
    download: bool = False,
    max_images: int | None = None,
    seed: int = 0,
    per_class: int | None = None,
    lazy: bool = False,
) -> SignDataset:
    """Load a registered dataset by name ("gtsrb", "synthetic", "folder", or one registered by the caller).

    Args:
        name: registry name.
        data_dir: where the files are (real datasets); ignored by synthetic data.
        size: side length S of the returned square images: one of the dataset's :attr:`DatasetSpec.sizes` (32, 48
            or 64), any S >= 8 for a dataset of any size ("folder").
        download: fetch missing archives (real GTSRB only).
        max_images: keep at most this many images per split (a class-balanced subset), for quick trials.
        seed: seed for generated data and for the subset choice.
        per_class: training images drawn per class (generated datasets only; None: the dataset's default).
        lazy: leave the images in their files and decode the rows a reader asks for, so memory does not grow with
            the number of images (datasets that can, "folder"; the others are decoded into one array, or cached).
    """
    spec = DATASETS.get_or_raise(name)
    if spec.sizes is None:
        if size < MIN_IMAGE_SIZE:
            raise KlugerhansError(
                f"image size {size} is too small: use {MIN_IMAGE_SIZE} pixels or more (the model's input size)"
            )
    elif size not in spec.sizes:
        raise KlugerhansError(f"unsupported image size {size}: use {_listing(spec.sizes)}")
    if max_images is not None and max_images < 1:
        raise KlugerhansError(f"--max-images must be a positive number, got {max_images}")
    extra: dict[str, int | bool] = {}
    if lazy:
        if not spec.lazy:
            raise KlugerhansError(
                f"{name!r} is decoded into memory; only {dataset_names(lazy=True)} can be read lazily"
            )
        extra["lazy"] = True
    if per_class is not None:
        if not spec.generated:
            raise KlugerhansError(
                f"--per-class sets how many images per class {dataset_names(generated=True)} draws; "
                f"{name!r} is read from files"
            )
        if per_class < 2:
            raise KlugerhansError(f"need at least 2 training images per class, got {per_class}")
        extra["train_per_class"] = per_class
    return spec.load(data_dir=data_dir, size=size, download=download, max_images=max_images, seed=seed, **extra)


def _listing(sizes: tuple[int, ...]) -> str:
    words = [str(s) for s in sizes]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def take_balanced(data: SignData, max_images: int | None, seed: int = 0) -> SignData:
    """Return at most ``max_images`` rows, drawn round-robin over classes so every class stays present."""
    if max_images is None or len(data) <= max_images:
        return data
    return data.subset(balanced_index(data.labels, max_images, seed))


def balanced_index(labels: np.ndarray, max_images: int, seed: int = 0) -> np.ndarray:
    """(min(N, max_images),) sorted row indices that :func:`take_balanced` keeps, from the (N,) labels alone."""
    if len(labels) <= max_images:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    per_class = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    order: list[int] = []
    depth = 0
    while len(order) < max_images:
        order.extend(int(idx[depth]) for idx in per_class if depth < len(idx))
        depth += 1
    return np.sort(np.asarray(order[:max_images]))


def split_by_track(data: SignData, val_fraction: float = 0.1, seed: int = 0) -> tuple[SignData, SignData]:
    """Split ``data`` into (train, val) so that no physical sign (track) is in both.

    GTSRB training images come in tracks of ~30 frames of one sign; an image-level split would put
    near-duplicates on both sides and overstate validation accuracy. Tracks are drawn per class, so every
    class with at least two tracks appears in both splits. Images without a track id (-1) count as a track
    of their own.

    Args:
        data: the training split.
        val_fraction: share of each class's tracks that go to validation, in [0, 1).
        seed: seed of the track draw.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise KlugerhansError(f"validation fraction must be in [0, 1), got {val_fraction}")
    if val_fraction == 0.0 or len(data) == 0:
        return data, data.subset(np.zeros(len(data), dtype=bool))
    rng = np.random.default_rng(seed)
    # Untracked images get unique negative ids so each is its own group.
    tracks = data.tracks.copy()
    untracked = tracks < 0
    tracks[untracked] = -1 - np.arange(int(untracked.sum()))
    is_val = np.zeros(len(data), dtype=bool)
    for c in np.unique(data.labels):
        in_class = data.labels == c
        class_tracks = np.unique(tracks[in_class])
        if len(class_tracks) < 2:
            continue
        n_val = min(len(class_tracks) - 1, max(1, round(val_fraction * len(class_tracks))))
        chosen = rng.choice(class_tracks, size=n_val, replace=False)
        is_val |= in_class & np.isin(tracks, chosen)
    return data.subset(~is_val), data.subset(is_val)
