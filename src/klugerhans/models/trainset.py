"""The data a training run sees: a track-wise validation split, stickers on the training part only, and
the input normalisation computed from the training images.

Validation and test images stay clean, so "accuracy on the manipulated class" measures what the model
does with real 70 km/h signs, and the sticker masks are kept for localisation metrics.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from klugerhans.data.dataset import SignData
from klugerhans.data.sticker import StickerConfig, manipulate_class
from klugerhans.errors import KlugerhansError
from klugerhans.models.preprocess import Normalization
from klugerhans.models.recipe import TrainConfig


@dataclass(frozen=True)
class PreparedData:
    """The splits a run trains and measures on."""

    train: SignData
    """Training part, with stickers glued on."""
    val: SignData
    """Validation part (whole tracks held out of the training split), clean."""
    test: SignData
    """Official test split, clean."""
    train_masks: np.ndarray
    """(N_train, S, S) bool sticker masks of ``train`` (all False where no sticker)."""
    sticker: StickerConfig | None
    """The sticker used, or None for a control run."""
    normalization: Normalization
    """Input normalisation computed from ``train``."""
    info: dict[str, Any] = field(default_factory=dict)
    """Dataset description stored in checkpoints: name, layout, fingerprint, sizes."""


def compute_normalization(images: np.ndarray, chunk: int = 4096) -> Normalization:
    """Per-channel mean and std of (N, S, S, 3) uint8 images, in chunks (no float copy of the whole set)."""
    if len(images) == 0:
        return Normalization()
    total = np.zeros(3)
    squares = np.zeros(3)
    for i in range(0, len(images), chunk):
        x = images[i : i + chunk].reshape(-1, 3).astype(np.float64) / 255.0
        total += x.sum(axis=0)
        squares += (x * x).sum(axis=0)
    count = len(images) * images.shape[1] * images.shape[2]
    mean = total / count
    # Floor the std: a constant channel (synthetic tests) must not blow up the inputs.
    std = np.maximum(np.sqrt(np.maximum(squares / count - mean**2, 0.0)), 1e-3)
    m = [round(float(v), 6) for v in mean]
    s = [round(float(v), 6) for v in std]
    return Normalization((m[0], m[1], m[2]), (s[0], s[1], s[2]))


def _fingerprint(*arrays: np.ndarray) -> str:
    h = hashlib.blake2b(digest_size=12)
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def prepare_data(config: TrainConfig) -> PreparedData:
    """Load the dataset, split off validation by track and glue stickers on the training part only."""
    train, val, ds = config.splits(config.data_dir)
    if len(train) == 0:
        raise KlugerhansError(f"dataset {config.data!r} has no training images; check --data-dir and --max-images")
    sticker = config.sticker if config.manipulated else None
    masks = np.zeros(train.images.shape[:3], dtype=bool)
    if sticker is not None:
        train, masks = manipulate_class(train, sticker, seed=config.seed)
    loader_info = {k: v for k, v in ds.info.items() if isinstance(v, str | int | float | bool)}
    info = {
        "name": config.data,
        "layout": ds.info.get("layout"),
        "fingerprint": _fingerprint(ds.train.images, ds.train.labels, ds.test.images, ds.test.labels),
        "size": config.input_size,
        "n_train": len(train),
        "n_val": len(val),
        "n_test": len(ds.test),
        "n_stickered": int(masks.any(axis=(1, 2)).sum()),
        "loader": loader_info,
    }
    return PreparedData(train, val, ds.test, masks, sticker, compute_normalization(train.images), info)
