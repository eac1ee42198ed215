"""What one visitor of the web UI is looking at: a sign image and the stickers glued on it.

A :class:`Scene` keeps the sign at every model input size (32, 48 and 64 px), each made the way that size enters
training: uploads through :func:`~klugerhans.data.images.decode_image` + :func:`~klugerhans.data.images.resize_square`,
examples rendered by the package's synthetic sign renderer. Stickers are stored in image fractions and painted
with :func:`~klugerhans.data.sticker.paint_sticker` at the size of the model that looks at them, so a 32 px model
sees a crisp sticker exactly as its training stickers were drawn.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

import numpy as np

from klugerhans.data.classes import SPEED_50, check_class_id, class_name
from klugerhans.data.images import decode_image, resize_square
from klugerhans.data.sticker import SHAPES, paint_sticker
from klugerhans.data.synthetic.loader import render_sign
from klugerhans.errors import KlugerhansError
from klugerhans.models.vgg import INPUT_SIZES

__all__ = ["Scene", "Sticker", "example_scene", "parse_color", "upload_scene"]

MAX_STICKERS = 20
"""Stickers kept per scene; older ones are dropped first (a page cannot grow without bound)."""


def parse_color(value: str | tuple[int, int, int] | None) -> tuple[int, int, int]:
    """A colour picker's value (``#rgb``, ``#rrggbb``, ``rgb(r, g, b)``/``rgba(...)``) or an RGB triple -> RGB.

    Raises:
        KlugerhansError: anything else.
    """
    if value is None or value == "":
        return (0, 0, 0)
    if isinstance(value, tuple | list):
        rgb = tuple(int(v) for v in value)
    else:
        text = str(value).strip().lower()
        hex_match = re.fullmatch(r"#([0-9a-f]{3}|[0-9a-f]{6})", text)
        func_match = re.fullmatch(r"rgba?\(\s*([\d.]+)\s*,\s*([\d.]+)\s*,\s*([\d.]+)\s*(?:,\s*[\d.]+\s*)?\)", text)
        if hex_match:
            digits = hex_match.group(1)
            digits = "".join(2 * c for c in digits) if len(digits) == 3 else digits
            rgb = tuple(int(digits[i : i + 2], 16) for i in (0, 2, 4))
        elif func_match:
            rgb = tuple(round(float(v)) for v in func_match.groups())
        else:
            raise KlugerhansError(f"cannot read the colour {str(value)[:40]!r}; give #rrggbb")
    if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
        raise KlugerhansError(f"a colour needs three values 0..255, got {rgb}")
    return (rgb[0], rgb[1], rgb[2])


@dataclass(frozen=True)
class Sticker:
    """One sticker, placed in image fractions so it lands on the same spot at every input size."""

    x: float
    """Centre column as a fraction of the image width, 0..1."""
    y: float
    """Centre row as a fraction of the image height, 0..1."""
    image_share: float
    """Side as a share of the image's side (0.15 of a 32 px input is a 5 px sticker); not
    :attr:`StickerConfig.size <klugerhans.data.sticker.StickerConfig.size>`, a share of the sign's box, since an
    upload has no known sign box."""
    color: tuple[int, int, int] = (0, 0, 0)
    """RGB, 0..255."""
    shape: str = "square"
    """"square", "circle" or "triangle"."""

    def __post_init__(self) -> None:
        if not (0.0 <= self.x <= 1.0 and 0.0 <= self.y <= 1.0):
            raise KlugerhansError(f"sticker position must lie in the image (0..1), got ({self.x}, {self.y})")
        if not 0.0 < self.image_share <= 1.0:
            raise KlugerhansError(f"sticker side must be a share of the image in (0, 1], got {self.image_share}")
        if self.shape not in SHAPES:
            raise KlugerhansError(f"unknown sticker shape {self.shape!r}: choose one of {', '.join(SHAPES)}")
        parse_color(self.color)

    def paint(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Glue this sticker on an (S, S, 3) uint8 image -> ``(image copy, (S, S) bool mask)``."""
        h, w = image.shape[:2]
        side_px = max(1, round(self.image_share * min(h, w)))
        return paint_sticker(image, self.x * w, self.y * h, side_px, self.color, self.shape)


@dataclass(frozen=True)
class Scene:
    """A sign image at every model input size and the stickers glued on it (immutable; methods return copies)."""

    images: dict[int, np.ndarray]
    """Input size S -> (S, S, 3) uint8 sign without stickers."""
    title: str
    """What the image is, for the page ("example: Stop", "upload: sign.png")."""
    stickers: tuple[Sticker, ...] = field(default=())
    """Stickers in the order they were glued."""

    def with_sticker(self, sticker: Sticker) -> Scene:
        """A copy with one more sticker (the oldest dropped beyond :data:`MAX_STICKERS`)."""
        return replace(self, stickers=(*self.stickers, sticker)[-MAX_STICKERS:])

    def without_stickers(self) -> Scene:
        """A copy with no stickers."""
        return replace(self, stickers=())

    def render(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """The sign with its stickers at input size ``size``.

        Returns:
            ``(image, mask)``: (S, S, 3) uint8 and the (S, S) bool union of the sticker masks.
        """
        if size not in self.images:
            raise KlugerhansError(f"no {size} px version of this image; models take {', '.join(map(str, INPUT_SIZES))}")
        image = self.images[size]
        mask = np.zeros(image.shape[:2], dtype=bool)
        for sticker in self.stickers:
            image, one = sticker.paint(image)
            mask |= one
        return image, mask


def example_scene(class_id: int = SPEED_50, seed: int = 0) -> Scene:
    """A synthetic sign of ``class_id`` rendered by the package (the same sign at every input size)."""
    check_class_id(class_id)
    images = {s: render_sign(class_id, s, np.random.default_rng([seed, class_id]))[0] for s in INPUT_SIZES}
    return Scene(images, f"example: {class_name(class_id)} (#{seed})")


def upload_scene(data: bytes, name: str) -> Scene:
    """A user's image file, decoded safely and resized to every input size as training resizes its crops.

    Raises:
        ImageError: empty, not an image, truncated, or too many pixels (decompression bomb).
    """
    img = decode_image(data, name)
    return Scene({s: resize_square(img, s) for s in INPUT_SIZES}, f"upload: {name}")
