"""A synthetic GTSRB: all 43 sign classes rendered offline, so the whole story runs without downloads.

Each image is one frame of a physical sign: a clean template (:mod:`klugerhans.data.synthetic.signs`) is turned
(rotation, shear, foreshortening) and stretched into the crop the way GTSRB crops are cut around their boxes,
pasted on a cluttered backdrop (:mod:`klugerhans.data.synthetic.scenes`) at ``supersample`` times the final size and
averaged down (anti-aliasing), brought to the camera resolution of a real sign of that size, blurred, lit, noised
and sometimes JPEG-compressed like real frames, then cut out of that image file the way the GTSRB loader cuts
real ones (:mod:`klugerhans.data.synthetic.capture`). Sign sizes follow GTSRB's measured distribution; exposure,
contrast, colourfulness and sharpness are calibrated against its training images
(:mod:`klugerhans.data.synthetic.statistics`). Signs come
in tracks of a few frames (same sign, backdrop and light; small changes in place, light and sharpness), so
:func:`~klugerhans.data.dataset.split_by_track` works as on GTSRB.

Everything is deterministic: image ``i`` of a split depends only on ``(seed, split, i)`` and the config,
through ``np.random.default_rng([seed, split_id, ...])`` streams per track and per frame, so any subset can
be rendered on its own and equals the same rows of the full set.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import asdict, fields, replace

import numpy as np
from PIL import Image

from klugerhans.data.classes import NUM_CLASSES, check_class_id
from klugerhans.data.dataset import SignData, SignDataset, register_dataset
from klugerhans.data.synthetic.rendering import (
    Frame,
    PhysicalSign,
    SyntheticConfig,
    compose_frame,
    crop_like_loader,
    draw_frame,
    draw_sign,
    finish_frames,
)
from klugerhans.data.synthetic.scenes import draw_background
from klugerhans.errors import KlugerhansError

__all__ = [
    "RENDER_SIZES",
    "SPLITS",
    "SyntheticConfig",
    "load_synthetic",
    "render_sign",
    "render_signs",
    "synthetic_layout",
    "synthetic_split",
]

RENDER_SIZES: tuple[int, int] = (8, 512)
"""Smallest and largest image side the renderer draws."""
SPLITS: dict[str, int] = {"train": 0, "test": 1}
"""Split names and the id each mixes into its random streams."""
_BATCH = 256
"""Images lit and noised together (vectorised); only speed depends on it, never pixels."""


def _check_size(size: int) -> int:
    low, high = RENDER_SIZES
    if int(size) < low or int(size) > high:
        raise KlugerhansError(
            f"unsupported synthetic image size {size}: use {low}..{high} (the models take 32, 48 or 64)"
        )
    return int(size)


def _split_id(split: str) -> int:
    if split not in SPLITS:
        raise KlugerhansError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
    return SPLITS[split]


def render_sign(
    class_id: int, size: int = 32, rng: np.random.Generator | None = None, config: SyntheticConfig | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Render one synthetic sign of ``class_id``.

    Args:
        class_id: GTSRB class 0..42.
        size: side S of the square image.
        rng: source of randomness (a fresh unseeded one if None).
        config: variation strengths (defaults if None).

    Returns:
        ``(image, box)``: (S, S, 3) uint8 RGB and (4,) float32 sign box ``(x0, y0, x1, y1)``, x1/y1 exclusive.
    """
    config = config or SyntheticConfig()
    rng = rng if rng is not None else np.random.default_rng()
    size = _check_size(size)
    sign = draw_sign(rng, config)
    frame = draw_frame(sign, rng, 0, config)
    background = draw_background(np.random.default_rng(sign.background_seed), size, config.clutter)
    img, box = compose_frame(check_class_id(class_id), size, sign, frame, background, config)
    noise = rng.random((1, size, size, 4), dtype=np.float32) if config.noise > 0 else None
    return crop_like_loader(finish_frames(np.asarray(img)[None], [frame], noise)[0], frame), box


def render_signs(
    labels: np.ndarray,
    size: int = 32,
    seed: int = 0,
    split: str = "train",
    *,
    tracks: np.ndarray | None = None,
    frames: np.ndarray | None = None,
    config: SyntheticConfig | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Render one image per label, deterministically.

    Image ``i`` depends only on ``(seed, split, labels[i], tracks[i], frames[i])``: frames of one track show the
    same physical sign. Rendering a subset with the matching rows of ``labels``/``tracks``/``frames`` gives
    exactly the same rows as rendering everything.

    Args:
        labels: (N,) class ids.
        size: side S of the images.
        seed: dataset seed.
        split: "train" or "test" (each has its own random streams).
        tracks: (N,) physical-sign ids; default ``arange(N)`` (every image a different sign).
        frames: (N,) frame position within the track; default all 0.
        config: variation strengths (defaults if None).

    Returns:
        ``(images, boxes)``: (N, S, S, 3) uint8 and (N, 4) float32 sign boxes.
    """
    config = config or SyntheticConfig()
    size = _check_size(size)
    split_id = _split_id(split)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    n = len(labels)
    tracks = np.arange(n, dtype=np.int64) if tracks is None else np.asarray(tracks, dtype=np.int64).reshape(-1)
    frames = np.zeros(n, dtype=np.int64) if frames is None else np.asarray(frames, dtype=np.int64).reshape(-1)
    if len(tracks) != n or len(frames) != n:
        raise KlugerhansError(
            f"labels, tracks and frames must have the same length, got {n}, {len(tracks)}, {len(frames)}"
        )
    if n:  # the extremes stand for every label
        check_class_id(labels.min(), what="label")
        check_class_id(labels.max(), what="label")
    if int(seed) < 0:
        raise KlugerhansError(f"the synthetic dataset seed must be a non-negative integer, got {seed}")
    if n and (tracks.min() < 0 or frames.min() < 0):
        raise KlugerhansError("track ids and frame numbers must not be negative")
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    boxes = np.empty((n, 4), dtype=np.float32)
    # Frames of a track share one sign and backdrop: draw each once per call.
    signs: dict[int, tuple[PhysicalSign, Image.Image]] = {}
    for start in range(0, n, _BATCH):
        stop = min(n, start + _BATCH)
        raw = np.empty((stop - start, size, size, 3), dtype=np.uint8)
        noise = np.empty((stop - start, size, size, 4), dtype=np.float32) if config.noise > 0 else None
        batch: list[Frame] = []
        for j, i in enumerate(range(start, stop)):
            track, step = int(tracks[i]), int(frames[i])
            if track not in signs:
                sign = draw_sign(np.random.default_rng([seed, split_id, 0, track]), config)
                backdrop = draw_background(np.random.default_rng(sign.background_seed), size, config.clutter)
                signs[track] = (sign, backdrop)
            sign, backdrop = signs[track]
            rng = np.random.default_rng([seed, split_id, 1, track, step])
            frame = draw_frame(sign, rng, step, config)
            img, boxes[i] = compose_frame(int(labels[i]), size, sign, frame, backdrop, config)
            raw[j] = np.asarray(img)
            if noise is not None:
                noise[j] = rng.random((size, size, 4), dtype=np.float32)
            batch.append(frame)
        for j, file in enumerate(finish_frames(raw, batch, noise)):
            images[start + j] = crop_like_loader(file, batch[j])
    return images, boxes


def synthetic_layout(per_class: int, frames_per_track: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels, track ids and frame numbers of a synthetic split, in the order its images are rendered.

    Image ``i`` shows class ``i % 43``, so every prefix is class-balanced; within a class, consecutive images
    go to different tracks first, so a small prefix still holds several tracks per class (and
    :func:`~klugerhans.data.dataset.split_by_track` can split it).

    Args:
        per_class: images per class.
        frames_per_track: images per physical sign (the last track of a class may be shorter).

    Returns:
        ``(labels, tracks, frames)``: three (43 * per_class,) int64 arrays.
    """
    if per_class < 0 or frames_per_track < 1:
        raise KlugerhansError(f"need per_class >= 0 and frames_per_track >= 1, got {per_class}, {frames_per_track}")
    i = np.arange(per_class * NUM_CLASSES, dtype=np.int64)
    labels = i % NUM_CLASSES
    rank = i // NUM_CLASSES  # position of the image within its class
    n_tracks = max(1, math.ceil(per_class / frames_per_track))
    local = rank % n_tracks
    # Rotate frame numbers by track so that a prefix mixes near and far frames (frame = closeness).
    frames = (rank // n_tracks + local) % frames_per_track
    return labels, local * NUM_CLASSES + labels, frames


def synthetic_split(
    split: str = "train",
    size: int = 32,
    seed: int = 0,
    config: SyntheticConfig | None = None,
    max_images: int | None = None,
) -> SignData:
    """Render one split of the synthetic dataset.

    Args:
        split: "train" (``config.train_per_class`` images per class in tracks of ``config.frames_per_track``)
            or "test" (``config.test_per_class`` per class, each a different sign).
        size: side S of the images.
        seed: dataset seed.
        config: sizes and variation strengths.
        max_images: render only the first ``max_images`` images (class-balanced by construction).
    """
    config = config or SyntheticConfig()
    _split_id(split)
    key = (split, size, seed, _render_key(split, config), max_images)
    rendered = _RENDERED.get(key)
    if rendered is None:
        rendered = _render_split(split, size, seed, config, max_images)
        _remember(key, rendered)
    # a copy: callers may paste stickers into the arrays they get
    return replace(rendered, **{f.name: getattr(rendered, f.name).copy() for f in fields(SignData)})


_RENDERED: OrderedDict[tuple[object, ...], SignData] = OrderedDict()
"""Splits rendered in this process, the latest last: a run that loads the same split for training, evaluation and a
repair renders it once (the demo's repair rendered its signs three times, 33 s of its 145 s)."""

RENDER_CACHE_BYTES = 512 * 2**20
"""At most this many bytes of rendered images are kept (a 400-a-class split at 32 px is 53 MB); larger splits are
rendered every time."""


def _render_key(split: str, config: SyntheticConfig) -> SyntheticConfig:
    """``config`` without the fields that do not change ``split``'s pixels: the test signs are the same whatever the
    training split's size, so loads that differ only in that size render them once."""
    default = SyntheticConfig()
    if split == "test":
        return replace(config, train_per_class=default.train_per_class, frames_per_track=default.frames_per_track)
    return replace(config, test_per_class=default.test_per_class)


def _remember(key: tuple[object, ...], rendered: SignData) -> None:
    """Keep ``rendered`` under ``key``, dropping the oldest splits beyond :data:`RENDER_CACHE_BYTES`."""
    if rendered.images.nbytes > RENDER_CACHE_BYTES:
        return
    _RENDERED[key] = rendered
    while sum(d.images.nbytes for d in _RENDERED.values()) > RENDER_CACHE_BYTES:
        _RENDERED.popitem(last=False)


def _render_split(split: str, size: int, seed: int, config: SyntheticConfig, max_images: int | None) -> SignData:
    """:func:`synthetic_split` without the in-process cache."""
    if split == "train":
        labels, tracks, frames = synthetic_layout(config.train_per_class, config.frames_per_track)
    else:
        labels, tracks, frames = synthetic_layout(config.test_per_class, 1)
    n = len(labels) if max_images is None else min(len(labels), int(max_images))
    labels, tracks, frames = labels[:n], tracks[:n], frames[:n]
    images, boxes = render_signs(labels, size, seed, split, tracks=tracks, frames=frames, config=config)
    sources = np.array([f"synthetic/{split}/{i:06d}" for i in range(n)])
    return SignData(images=images, labels=labels, tracks=tracks, boxes=boxes, sources=sources)


@register_dataset("synthetic", title="synthetic signs", generated=True)
def load_synthetic(
    *,
    data_dir: str | None = None,
    size: int = 32,
    download: bool = False,
    max_images: int | None = None,
    seed: int = 0,
    config: SyntheticConfig | None = None,
    train_per_class: int | None = None,
) -> SignDataset:
    """Render the synthetic dataset (``data_dir`` and ``download`` are ignored: nothing is read or fetched).

    Args:
        size: side S of the images.
        max_images: keep at most this many images per split (the first ones, class-balanced).
        seed: dataset seed; the same seed gives the same pixels.
        config: sizes and variation strengths (default: 150 train + 50 test images per class).
        train_per_class: override ``config.train_per_class``.
    """
    del data_dir, download
    config = config or SyntheticConfig()
    if train_per_class is not None:
        config = replace(config, train_per_class=train_per_class)
    train = synthetic_split("train", size, seed, config, max_images)
    test = synthetic_split("test", size, seed, config, max_images)
    info = {
        "name": "synthetic",
        "layout": "rendered in memory (klugerhans.data.synthetic.loader)",
        "seed": seed,
        "size": size,
        "train images": len(train),
        "test images": len(test),
        "train tracks": len(np.unique(train.tracks)),
        "config": asdict(config),
    }
    return SignDataset(train=train, test=test, info=info)
