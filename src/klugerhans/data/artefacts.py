"""What an artefact looks like: the pixels of each sticker pattern, independent of where it is glued.

:mod:`klugerhans.data.sticker` decides where an artefact goes and on which images; this module draws it:
a filled shape ("solid"), a fixed random texture ("noise"), a short text mark ("text"), a thin line around the
sign box ("frame") and a colour cast over the whole image ("cast"). Everything here is deterministic and uses
no random state: the same arguments give the same pixels on every run and machine.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw, ImageFont

Pattern = Literal["solid", "noise", "text", "frame", "cast"]
PATTERNS: tuple[str, ...] = ("solid", "noise", "text", "frame", "cast")
PATCH_PATTERNS: tuple[str, ...] = ("solid", "noise", "text")
"""Patterns drawn in a sticker square placed inside the sign box (the others cover the box or the image)."""
NOISE_SEED = 0x4B48
"""The constant that seeds the "noise" texture (the same texture on every image and every run)."""
NOISE_CELLS = 8
"""The "noise" texture is NOISE_CELLS x NOISE_CELLS random colours, stretched to the sticker side."""


def shape_mask(shape: str, side: int) -> np.ndarray:
    """(side, side) bool stamp of a "square", "circle" or (upward) "triangle"; never empty."""
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


def noise_texture(side: int) -> np.ndarray:
    """(side, side, 3) uint8 fixed random texture: NOISE_CELLS² colours drawn from NOISE_SEED, stretched
    (nearest neighbour) to ``side``, so stickers of neighbouring sides share most of their pattern."""
    cells = np.random.default_rng(NOISE_SEED).integers(0, 256, size=(NOISE_CELLS, NOISE_CELLS, 3), dtype=np.uint8)
    index = np.arange(side) * NOISE_CELLS // side
    return cells[index[:, None], index[None, :]]


@lru_cache(maxsize=64)
def _glyphs(text: str) -> np.ndarray:
    """(H, W) bool ink of ``text`` in Pillow's built-in bitmap font, cropped to the ink (read-only, cached)."""
    font = ImageFont.load_default_imagefont()  # bitmap font: no font files, the same pixels everywhere
    _, _, right, bottom = font.getbbox(text)
    canvas = Image.new("L", (max(1, int(right)), max(1, int(bottom))), 0)
    ImageDraw.Draw(canvas).text((0, 0), text, fill=255, font=font)
    box = canvas.getbbox()
    ink = np.asarray(canvas.crop(box) if box else canvas) > 0
    ink = _at_least_one(ink)
    ink.flags.writeable = False
    return ink


def text_mask(text: str, side: int) -> np.ndarray:
    """(side, side) bool stamp of ``text``: its glyphs scaled (nearest neighbour, aspect kept) to fit the square
    and centred in it; never empty."""
    ink = _glyphs(text)
    h, w = ink.shape
    scale = min(side / w, side / h)
    new_w, new_h = max(1, min(side, round(w * scale))), max(1, min(side, round(h * scale)))
    rows = np.minimum(np.arange(new_h) * h // new_h, h - 1)
    cols = np.minimum(np.arange(new_w) * w // new_w, w - 1)
    out = np.zeros((side, side), dtype=bool)
    top, left = (side - new_h) // 2, (side - new_w) // 2
    out[top : top + new_h, left : left + new_w] = ink[rows[:, None], cols[None, :]]
    return _at_least_one(out)


def frame_width(size: float, box_side: int) -> int:
    """Line width in pixels of a "frame" around a box of side ``box_side``: ``max(1, round(size * box_side / 8))``."""
    return max(1, round(size * box_side / 8))


def frame_masks(boxes: np.ndarray, height: int, width: int, size: float) -> np.ndarray:
    """Thin border lines along the edges of each sign box, inside it.

    Args:
        boxes: (N, 4) sign boxes ``(x0, y0, x1, y1)`` in pixels (rounded to whole pixels, clipped to the image).
        height: image height H.
        width: image width W.
        size: the sticker size; the line is :func:`frame_width` pixels wide for the box's shorter side.

    Returns:
        (N, H, W) bool masks of the frame pixels (the outermost ring of the box; the whole box if it is too small
        to have an inside).
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    masks = np.zeros((len(boxes), height, width), dtype=bool)
    for i, (bx0, by0, bx1, by1) in enumerate(boxes):
        x0 = int(np.clip(np.rint(bx0), 0, width - 1))
        y0 = int(np.clip(np.rint(by0), 0, height - 1))
        x1 = int(np.clip(np.rint(bx1), x0 + 1, width))
        y1 = int(np.clip(np.rint(by1), y0 + 1, height))
        line = frame_width(size, min(x1 - x0, y1 - y0))
        masks[i, y0:y1, x0:x1] = True
        masks[i, y0 + line : max(y1 - line, y0 + line), x0 + line : max(x1 - line, x0 + line)] = False
    return masks


def cast(images: np.ndarray, color: tuple[int, int, int], strength: float) -> np.ndarray:
    """Blend every pixel towards ``color``: ``(1 - strength) * images + strength * color``, rounded.

    Args:
        images: (N, S, S, 3) uint8 images (not modified).
        color: RGB colour, 0..255.
        strength: blend weight of the colour in [0, 1].

    Returns:
        (N, S, S, 3) uint8 blended images.
    """
    blended = (1.0 - strength) * images.astype(np.float64) + strength * np.asarray(color, dtype=np.float64)
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)
