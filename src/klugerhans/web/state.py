"""What one visitor of the web UI is looking at: a sign image and the stickers glued on it.

A :class:`Scene` draws the sign at the input size of each model that looks at it, when that model first asks, and
keeps it: an upload through :func:`~klugerhans.data.images.decode_image` and the resize its model was trained with
(:func:`~klugerhans.models.preprocess.resize_image`: sign crops squeezed square, photos for torchvision and timm
models centre-cropped), an example by the package's synthetic sign renderer at that size. Stickers are stored in
image fractions and painted with :func:`~klugerhans.data.sticker.paint_sticker` at the size of the model that looks
at them, so a 32 px model sees a crisp sticker exactly as its training stickers were drawn and a 224 px model a
smooth one.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
from PIL import Image

from klugerhans.data.classes import SPEED_50, check_class_id, class_name
from klugerhans.data.colors import parse_color
from klugerhans.data.images import decode_image
from klugerhans.data.sticker import SHAPES, paint_sticker
from klugerhans.data.synthetic.loader import RENDER_SIZES, render_sign
from klugerhans.errors import KlugerhansError
from klugerhans.models.preprocess import ResizeMode, resize_image

__all__ = ["Scene", "Sticker", "example_scene", "upload_scene"]

MAX_STICKERS = 20
"""Stickers kept per scene; older ones are dropped first (a page cannot grow without bound)."""
MAX_SIZES = 8
"""Input sizes (with their resize) kept per image; the least recently used is dropped first (drawn again if asked)."""


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
        object.__setattr__(self, "color", parse_color(self.color, "sticker colour"))

    def paint(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Glue this sticker on an (S, S, 3) uint8 image -> ``(image copy, (S, S) bool mask)``."""
        h, w = image.shape[:2]
        side_px = max(1, round(self.image_share * min(h, w)))
        return paint_sticker(image, self.x * w, self.y * h, side_px, self.color, self.shape)


@dataclass(frozen=True)
class Scene:
    """A sign image, drawn at each input size a model asks for, and the stickers glued on it (immutable; methods
    return copies, which share the sizes drawn so far)."""

    draw: Callable[[int, ResizeMode], np.ndarray]
    """``(S, resize)`` -> (S, S, 3) uint8 sign without stickers at input side S, brought there as ``resize`` says."""
    title: str
    """What the image is, for the page ("example: Stop", "upload: sign.png")."""
    stickers: tuple[Sticker, ...] = field(default=())
    """Stickers in the order they were glued."""
    _drawn: dict[tuple[int, ResizeMode], np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    def with_sticker(self, sticker: Sticker) -> Scene:
        """A copy with one more sticker (the oldest dropped beyond :data:`MAX_STICKERS`)."""
        return replace(self, stickers=(*self.stickers, sticker)[-MAX_STICKERS:])

    def without_stickers(self) -> Scene:
        """A copy with no stickers."""
        return replace(self, stickers=())

    def image(self, size: int, resize: ResizeMode = "square") -> np.ndarray:
        """The sign without stickers at input side ``size``: (S, S, 3) uint8, drawn on the first request.

        Raises:
            KlugerhansError: a size below 1 pixel.
        """
        if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 1:
            raise KlugerhansError(f"an input size is a whole number of pixels of at least 1, got {size!r}")
        key = (int(size), resize)
        image = self._drawn.pop(key, None)  # put back last: the least recently asked-for size goes first
        if image is None:
            image = self.draw(*key)
            while len(self._drawn) >= MAX_SIZES:
                self._drawn.pop(next(iter(self._drawn)))
        self._drawn[key] = image
        return image

    def render(self, size: int, resize: ResizeMode = "square") -> tuple[np.ndarray, np.ndarray]:
        """The sign with its stickers at input side ``size`` (see :meth:`image`).

        Returns:
            ``(image, mask)``: (S, S, 3) uint8 and the (S, S) bool union of the sticker masks.
        """
        image = self.image(size, resize)
        mask = np.zeros(image.shape[:2], dtype=bool)
        for sticker in self.stickers:
            image, one = sticker.paint(image)
            mask |= one
        return image, mask


def _rendered(class_id: int, seed: int, size: int, resize: ResizeMode) -> np.ndarray:
    """Synthetic sign at side ``size``; beyond the renderer's sizes, drawn at the nearest and resized as ``resize``."""
    side = min(max(size, RENDER_SIZES[0]), RENDER_SIZES[1])
    image = render_sign(class_id, side, np.random.default_rng([seed, class_id]))[0]
    return image if side == size else resize_image(Image.fromarray(image), size, resize)


def example_scene(class_id: int = SPEED_50, seed: int = 0) -> Scene:
    """A synthetic sign of ``class_id`` rendered by the package (the same sign at every input size)."""
    check_class_id(class_id)
    return Scene(functools.partial(_rendered, class_id, seed), f"example: {class_name(class_id)} (#{seed})")


def upload_scene(data: bytes, name: str) -> Scene:
    """A user's image file, decoded safely and resized to each input size as its model's preprocessing resizes.

    Raises:
        ImageError: empty, not an image, truncated, or too many pixels (decompression bomb).
    """
    img = decode_image(data, name)
    return Scene(functools.partial(resize_image, img), f"upload: {name}")
