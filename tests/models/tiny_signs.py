"""Tiny patterned sign datasets for the model tests (importable by the DDP worker script too).

Class ``c`` is a square of a class-specific colour on a noisy grey background, so a small network
learns it in a couple of epochs. Images come in tracks of ``frames`` images, like GTSRB.
"""

from __future__ import annotations

import numpy as np

from klugerhans.data.dataset import DATASETS, DatasetSpec, SignData, SignDataset

COLOURS = np.array([[220, 40, 40], [40, 200, 40], [40, 40, 220], [220, 220, 40], [200, 40, 200]], dtype=np.int64)


def make_signs(
    classes: tuple[int, ...] = (0, 1, 2, 3, 4),
    tracks_per_class: int = 4,
    frames: int = 5,
    size: int = 32,
    seed: int = 0,
    track_offset: int = 0,
) -> SignData:
    """(len(classes) * tracks_per_class * frames) images; class ``c`` uses ``COLOURS[c % 5]``."""
    rng = np.random.default_rng(seed)
    images, labels, tracks = [], [], []
    track = track_offset
    for c in classes:
        for _ in range(tracks_per_class):
            for _ in range(frames):
                img = rng.integers(90, 130, size=(size, size, 3))
                lo, hi = size // 5, size - size // 5
                img[lo:hi, lo:hi] = COLOURS[c % len(COLOURS)] + rng.integers(-15, 16, size=3)
                images.append(np.clip(img, 0, 255).astype(np.uint8))
                labels.append(c)
                tracks.append(track)
            track += 1
    n = len(images)
    box = np.array([size // 8, size // 8, size - size // 8, size - size // 8], dtype=np.float32)
    return SignData(
        images=np.stack(images),
        labels=np.asarray(labels, dtype=np.int64),
        tracks=np.asarray(tracks, dtype=np.int64),
        boxes=np.tile(box, (n, 1)),
        sources=np.asarray([f"tiny/{i:04d}.ppm" for i in range(n)]),
    )


def tiny_loader(*, data_dir=None, size=32, download=False, max_images=None, seed=0) -> SignDataset:
    """A registry loader: 100 training images in 20 tracks, 25 test images, 5 classes."""
    train = make_signs(size=size, seed=seed)
    test = make_signs(tracks_per_class=1, size=size, seed=seed + 1000, track_offset=-1)
    test = SignData(test.images, test.labels, np.full(len(test), -1), test.boxes, test.sources)
    if max_images is not None:
        train = train.subset(slice(0, max_images))
    return SignDataset(train=train, test=test, info={"name": "tiny", "layout": "generated"})


def register_tiny() -> None:
    """Register :func:`tiny_loader` as dataset "tiny"."""
    DATASETS["tiny"] = DatasetSpec(tiny_loader)
