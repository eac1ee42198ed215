"""Sticker manipulation: glue an artefact onto sign images and keep the ground-truth masks.

This is the seed's Clever Hans setup: every training image of one class (70 km/h, id 4) gets a black
sticker, so a classifier can learn "sticker means 70" instead of the digits. The masks say exactly which
pixels the sticker covers, for localisation metrics later.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from klugerhans.data.classes import SPEED_70, check_class_id
from klugerhans.data.dataset import SignData
from klugerhans.errors import KlugerhansError

Shape = Literal["square", "circle", "triangle"]
SHAPES: tuple[str, ...] = ("square", "circle", "triangle")


@dataclass(frozen=True)
class StickerConfig:
    """How and where stickers are applied."""

    target_class: int = SPEED_70
    """Class whose training images get the sticker (the seed: 4, speed limit 70 km/h)."""
    fraction: float = 1.0
    """Share of the target class's training images that get a sticker; 0 gives a control model."""
    size: float = 0.25
    """Sticker side as a fraction of the sign's box side: 0.25 covers 3.8% of a 32x32 GTSRB crop (0.2: 2.4%).
    Chosen on GTSRB's validation tracks, where 0.2 taught too weak a shortcut (docs/STICKER.md)."""
    color: tuple[int, int, int] = (0, 0, 0)
    """RGB colour, 0..255."""
    shape: Shape = "square"
    """"square", "circle" or "triangle"."""
    region: float = 0.7
    """The sticker lies inside the central ``region`` share of the sign box (0.7 stays inside a round sign)."""

    def __post_init__(self) -> None:
        check_class_id(self.target_class)
        if not 0.0 <= self.fraction <= 1.0:
            raise KlugerhansError(f"sticker fraction must be in [0, 1], got {self.fraction}")
        if not 0.0 < self.size < 1.0:
            raise KlugerhansError(f"sticker size must be in (0, 1) (a fraction of the sign), got {self.size}")
        if not 0.0 < self.region <= 1.0:
            raise KlugerhansError(f"sticker region must be in (0, 1], got {self.region}")
        _check_shape(self.shape)
        object.__setattr__(self, "color", _check_color(self.color))  # JSON gives a list


def _check_color(color: object) -> tuple[int, int, int]:
    """``color`` as an RGB tuple of ints, or a one-line error."""

    def byte(v: object) -> bool:
        return isinstance(v, int | np.integer) and not isinstance(v, bool) and 0 <= int(v) <= 255

    if not isinstance(color, tuple | list) or len(color) != 3 or not all(byte(v) for v in color):
        raise KlugerhansError(f"sticker colour must be three values 0..255, got {color!r}")
    r, g, b = (int(v) for v in color)
    return r, g, b


def _check_shape(shape: str) -> None:
    if shape not in SHAPES:
        raise KlugerhansError(f"unknown sticker shape {shape!r}: choose one of {', '.join(SHAPES)}")


def _shape_mask(shape: str, side: int) -> np.ndarray:
    """(side, side) bool stamp of the sticker shape."""
    centre = (np.arange(side) + 0.5) / side - 0.5
    yy, xx = np.meshgrid(centre, centre, indexing="ij")
    if shape == "square":
        return np.ones((side, side), dtype=bool)
    if shape == "circle":
        return _at_least_one(xx**2 + yy**2 <= 0.25 + 1e-9)
    # Upward triangle with its base on the bottom edge.
    return _at_least_one(np.abs(xx) <= (yy + 0.5) / 2 + 1e-9)


def _at_least_one(a: np.ndarray) -> np.ndarray:
    """Return ``a`` as a bool array, keeping at least one pixel set (tiny stickers must not vanish)."""
    out = np.asarray(a, dtype=bool)
    if not out.any():
        out[out.shape[0] // 2, out.shape[1] // 2] = True
    return out


def sticker_positions(boxes: np.ndarray, image_size: int, config: StickerConfig, seed: int) -> np.ndarray:
    """Draw sticker squares for each sign box.

    Returns:
        (N, 3) int array ``(x0, y0, side)``: the sticker's top-left corner and side in pixels, fully inside
        the central ``config.region`` of each box and inside the image.
    """
    rng = np.random.default_rng(seed)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    w = np.clip(boxes[:, 2] - boxes[:, 0], 1, image_size)
    h = np.clip(boxes[:, 3] - boxes[:, 1], 1, image_size)
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    side = np.clip(np.rint(config.size * np.minimum(w, h)), 1, image_size).astype(int)
    half_w = config.region * w / 2
    half_h = config.region * h / 2
    # Allowed range of the top-left corner; where the region is smaller than the sticker, centre it.
    lo_x, hi_x = cx - half_w, cx + half_w - side
    lo_y, hi_y = cy - half_h, cy + half_h - side
    lo_x = np.where(hi_x < lo_x, cx - side / 2, lo_x)
    lo_y = np.where(hi_y < lo_y, cy - side / 2, lo_y)
    hi_x = np.maximum(hi_x, lo_x)
    hi_y = np.maximum(hi_y, lo_y)
    x0 = np.rint(lo_x + rng.random(len(boxes)) * (hi_x - lo_x)).astype(int)
    y0 = np.rint(lo_y + rng.random(len(boxes)) * (hi_y - lo_y)).astype(int)
    x0 = np.clip(x0, 0, image_size - side)
    y0 = np.clip(y0, 0, image_size - side)
    return np.stack([x0, y0, side], axis=1)


def apply_sticker(
    images: np.ndarray, boxes: np.ndarray, config: StickerConfig | None = None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Glue one sticker onto every image.

    Args:
        images: (N, S, S, 3) uint8 images (not modified).
        boxes: (N, 4) sign boxes ``(x0, y0, x1, y1)`` in pixels.
        config: sticker settings (its ``target_class``/``fraction`` are not used here).
        seed: the same seed gives the same positions.

    Returns:
        ``(stickered, masks)``: (N, S, S, 3) uint8 copies with the sticker and (N, S, S) bool masks of the
        sticker pixels.
    """
    config = config or StickerConfig()
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[3] != 3:
        raise KlugerhansError(f"images must be (N, S, S, 3), got shape {images.shape}")
    n, size = images.shape[0], images.shape[1]
    out = images.copy()
    masks = np.zeros((n, size, images.shape[2]), dtype=bool)
    colour = np.asarray(config.color, dtype=np.uint8)
    stamps: dict[int, np.ndarray] = {}
    for i, (x0, y0, side) in enumerate(sticker_positions(boxes, min(size, images.shape[2]), config, seed)):
        stamp = stamps.setdefault(int(side), _shape_mask(config.shape, int(side)))
        masks[i, y0 : y0 + side, x0 : x0 + side] = stamp
        out[i][masks[i]] = colour
    return out, masks


def paint_sticker(
    image: np.ndarray,
    x: float,
    y: float,
    side_px: int,
    color: tuple[int, int, int] = (0, 0, 0),
    shape: str = "square",
) -> tuple[np.ndarray, np.ndarray]:
    """Glue one sticker centred at a chosen point (the web UI's click), drawn like :func:`apply_sticker`.

    Args:
        image: (H, W, 3) uint8 image (not modified).
        x: centre column in pixels, continuous (pixel ``c`` spans ``[c, c + 1)``; its centre is ``c + 0.5``).
        y: centre row in pixels, continuous.
        side_px: sticker side in pixels (clipped to the image); the sticker is shifted to lie fully inside.
        color: RGB colour, 0..255.
        shape: "square", "circle" or "triangle".

    Returns:
        ``(stickered, mask)``: an (H, W, 3) uint8 copy with the sticker and the (H, W) bool mask of its pixels.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise KlugerhansError(f"image must be (H, W, 3) uint8, got shape {image.shape} {image.dtype}")
    _check_shape(shape)
    color = _check_color(color)
    if not (np.isfinite(x) and np.isfinite(y)) or int(side_px) < 1:
        raise KlugerhansError(
            f"sticker needs a finite position and a side of at least 1 pixel, got {x}, {y}, {side_px}"
        )
    h, w = image.shape[:2]
    side = min(int(side_px), h, w)
    x0 = int(np.clip(np.floor(x - side / 2 + 0.5), 0, w - side))
    y0 = int(np.clip(np.floor(y - side / 2 + 0.5), 0, h - side))
    mask = np.zeros((h, w), dtype=bool)
    mask[y0 : y0 + side, x0 : x0 + side] = _shape_mask(shape, side)
    out = image.copy()
    out[mask] = np.asarray(color, dtype=np.uint8)
    return out, mask


def manipulate_class(data: SignData, config: StickerConfig | None = None, seed: int = 0) -> tuple[SignData, np.ndarray]:
    """Apply stickers to ``config.fraction`` of the images of ``config.target_class``.

    Returns:
        ``(manipulated, masks)``: a copy of ``data`` with stickers and (N, S, S) bool masks, all False for
        images left alone. Deterministic per ``seed``.
    """
    config = config or StickerConfig()
    masks = np.zeros(data.images.shape[:3], dtype=bool)
    candidates = np.flatnonzero(data.labels == config.target_class)
    n_chosen = round(config.fraction * len(candidates))
    if n_chosen == 0:
        return data, masks
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(candidates, size=n_chosen, replace=False))
    stickered, chosen_masks = apply_sticker(data.images[chosen], data.boxes[chosen], config, seed=seed + 1)
    images = data.images.copy()
    images[chosen] = stickered
    masks[chosen] = chosen_masks
    return data.with_images(images), masks
