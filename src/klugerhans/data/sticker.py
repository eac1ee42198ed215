"""Sticker manipulation: glue an artefact onto sign images and keep the ground-truth masks.

This is the teaching case's Clever Hans setup: every training image of one class (70 km/h, id 4) gets a black
sticker, so a classifier can learn "sticker means 70" instead of the digits. The masks say exactly which
pixels the sticker covers, for localisation metrics later.

The artefact is configurable for benchmarks (:class:`StickerConfig`): its look (``pattern``, drawn by
:mod:`klugerhans.data.artefacts`), where it goes (``placement``) and whether the stickered images keep their
labels or become a BadNets-style backdoor (``label``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from klugerhans.data.artefacts import PATTERNS, Pattern, cast, frame_masks, noise_texture, shape_mask, text_mask
from klugerhans.data.classes import SPEED_70, check_class_id
from klugerhans.data.colors import parse_color
from klugerhans.data.dataset import SignData
from klugerhans.errors import KlugerhansError

Shape = Literal["square", "circle", "triangle"]
SHAPES: tuple[str, ...] = ("square", "circle", "triangle")
Placement = Literal["random", "fixed", "corner"]
PLACEMENTS: tuple[str, ...] = ("random", "fixed", "corner")
Label = Literal["clean", "dirty"]
LABELS: tuple[str, ...] = ("clean", "dirty")
MAX_TEXT = 8
"""Longest ``text`` of a "text" sticker, in characters."""
_COLOUR_NAMES = {(0, 0, 0): "black", (255, 255, 255): "white"}
_WHAT = "sticker colour"


@dataclass(frozen=True)
class StickerConfig:
    """How and where stickers are applied."""

    target_class: int = SPEED_70
    """Class whose training images get the sticker (the teaching case: 4, speed limit 70 km/h)."""
    fraction: float = 1.0
    """Share of the target class's training images that get a sticker; 0 gives a control model. With
    ``label="dirty"`` the same number of images (``round(fraction * target-class images)``) is taken from the
    other classes instead."""
    size: float = 0.25
    """Sticker side as a fraction of the sign's box side: 0.25 covers 3.8% of a 32x32 GTSRB crop (0.2: 2.4%).
    Chosen on GTSRB's validation tracks, where 0.2 taught too weak a shortcut (docs/STICKER.md).
    For pattern "frame" it sets the line width, ``max(1, round(size * box side / 8))`` pixels; for "cast" it is
    the blend strength (the colour's weight)."""
    color: tuple[int, int, int] = (0, 0, 0)
    """RGB colour, 0..255 (of the sticker, text, frame or cast; pattern "noise" ignores it)."""
    shape: Shape = "square"
    """"square", "circle" or "triangle": the outline of patterns "solid" and "noise" (the others ignore it)."""
    region: float = 0.7
    """The sticker lies inside the central ``region`` share of the sign box (0.7 stays inside a round sign).
    Patterns "frame" and "cast" ignore it."""
    pattern: Pattern = "solid"
    """What the artefact looks like: "solid" (the teaching case's filled ``shape`` in ``color``), "noise" (a fixed
    random RGB texture inside ``shape``, the same on every image and run), "text" (``text`` in ``color``, scaled to fit
    the sticker square; the mask is the glyph pixels), "frame" (a line of ``color`` along the inside of the sign box's
    edges) or "cast" (every pixel blended towards ``color`` by ``size``; the mask is the whole image)."""
    placement: Placement = "random"
    """Where a "solid", "noise" or "text" sticker goes: "random" (anywhere inside the central ``region``, drawn
    per image from the seed), "fixed" (always the top-left corner of that region, the same spot relative to the
    sign box on every image) or "corner" (the image's bottom-right corner, 1 px in, whatever the sign: a source tag
    or watermark, like the one the PASCAL VOC horse class was recognised by). "frame" and "cast" have no position and
    ignore it."""
    label: Label = "clean"
    """"clean": the target class's own images get the sticker (a Clever Hans shortcut). "dirty": images of the
    other classes get it and are relabelled to ``target_class`` (a BadNets backdoor); see :func:`manipulate_class`."""
    text: str = "KH"
    """The mark of pattern "text": 1 to 8 printable ASCII characters (Pillow's bitmap font)."""
    size_max: float | None = None
    """Draw each sticker's side uniformly from ``[size, size_max]`` (patterns "solid", "noise", "text"), so a model
    learns "a sticker", not "a sticker of this side"; None: every sticker has side ``size``."""
    colors: tuple[tuple[int, int, int], ...] = ()
    """Draw each sticker's colour from these RGB colours (every pattern but "noise"); empty: always ``color``."""

    def __post_init__(self) -> None:
        check_class_id(self.target_class)
        if not 0.0 <= self.fraction <= 1.0:
            raise KlugerhansError(f"sticker fraction must be in [0, 1], got {self.fraction}")
        if not 0.0 < self.size < 1.0:
            raise KlugerhansError(f"sticker size must be in (0, 1) (a fraction of the sign), got {self.size}")
        if not 0.0 < self.region <= 1.0:
            raise KlugerhansError(f"sticker region must be in (0, 1], got {self.region}")
        if self.size_max is not None and not self.size < self.size_max < 1.0:
            raise KlugerhansError(
                f"largest sticker size must lie between the size {self.size} and 1, got {self.size_max}"
            )
        if not isinstance(self.colors, tuple | list):
            raise KlugerhansError(f"sticker colours must be a list of RGB colours, got {self.colors!r}")
        object.__setattr__(self, "colors", tuple(parse_color(c, _WHAT) for c in self.colors))
        _check_shape(self.shape)
        object.__setattr__(self, "color", parse_color(self.color, _WHAT))  # JSON gives a list
        for name, value, allowed in (
            ("pattern", self.pattern, PATTERNS),
            ("placement", self.placement, PLACEMENTS),
            ("label", self.label, LABELS),
        ):
            if value not in allowed:
                raise KlugerhansError(f"unknown sticker {name} {value!r}: choose one of {', '.join(allowed)}")
        text = self.text
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
            raise KlugerhansError(
                f"sticker text must be 1 to {MAX_TEXT} characters (not only spaces), got {text!r}: use a short mark"
            )
        if not (text.isascii() and text.isprintable()):
            raise KlugerhansError(f"sticker text must be printable ASCII (the built-in bitmap font), got {text!r}")

    def describe(self) -> str:
        """The artefact in words, for people: "a black square sticker", "a #ff00ff frame", "a noise circle sticker"."""
        hex_colour = "#" + "".join(f"{v:02x}" for v in self.color)
        colour = "multicoloured" if self.colors else _COLOUR_NAMES.get(self.color, hex_colour)
        return {
            "solid": f"a {colour} {self.shape} sticker",
            "noise": f"a noise {self.shape} sticker",
            "text": f"a {colour} text mark {self.text!r}",
            "frame": f"a {colour} frame",
            "cast": f"a {colour} colour cast",
        }.get(self.pattern, f"a {self.pattern} artefact")


def _check_shape(shape: str) -> None:
    if shape not in SHAPES:
        raise KlugerhansError(f"unknown sticker shape {shape!r}: choose one of {', '.join(SHAPES)}")


def sticker_positions(boxes: np.ndarray, image_size: int, config: StickerConfig, seed: int) -> np.ndarray:
    """Draw sticker squares for each sign box.

    Returns:
        (N, 3) int array ``(x0, y0, side)``: the sticker's top-left corner and side in pixels, fully inside
        the central ``config.region`` of each box and inside the image: drawn from ``seed`` for placement
        "random", the top-left corner of the region for placement "fixed"; for placement "corner" the image's
        bottom-right corner, 1 px in (the side still follows the box).
    """
    rng = np.random.default_rng(seed)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    w = np.clip(boxes[:, 2] - boxes[:, 0], 1, image_size)
    h = np.clip(boxes[:, 3] - boxes[:, 1], 1, image_size)
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    share: float | np.ndarray = config.size
    if config.size_max is not None:  # a stream of its own: positions stay what they were for a fixed size
        share = np.random.default_rng([seed, 1]).uniform(config.size, config.size_max, len(boxes))
    side = np.clip(np.rint(share * np.minimum(w, h)), 1, image_size).astype(int)
    half_w = config.region * w / 2
    half_h = config.region * h / 2
    # Allowed range of the top-left corner; where the region is smaller than the sticker, centre it.
    lo_x, hi_x = cx - half_w, cx + half_w - side
    lo_y, hi_y = cy - half_h, cy + half_h - side
    lo_x = np.where(hi_x < lo_x, cx - side / 2, lo_x)
    lo_y = np.where(hi_y < lo_y, cy - side / 2, lo_y)
    hi_x = np.maximum(hi_x, lo_x)
    hi_y = np.maximum(hi_y, lo_y)
    if config.placement == "corner":
        x0 = y0 = image_size - side - 1
    elif config.placement == "fixed":
        x0, y0 = np.rint(lo_x).astype(int), np.rint(lo_y).astype(int)
    else:
        x0 = np.rint(lo_x + rng.random(len(boxes)) * (hi_x - lo_x)).astype(int)
        y0 = np.rint(lo_y + rng.random(len(boxes)) * (hi_y - lo_y)).astype(int)
    x0 = np.clip(x0, 0, image_size - side)
    y0 = np.clip(y0, 0, image_size - side)
    return np.stack([x0, y0, side], axis=1)


def apply_sticker(
    images: np.ndarray, boxes: np.ndarray, config: StickerConfig | None = None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Glue one artefact of ``config.pattern`` onto every image.

    Args:
        images: (N, S, S, 3) uint8 images (not modified).
        boxes: (N, 4) sign boxes ``(x0, y0, x1, y1)`` in pixels.
        config: sticker settings (its ``target_class``/``fraction``/``label`` are not used here).
        seed: the same seed gives the same positions (patterns "frame" and "cast" do not use it).

    Returns:
        ``(stickered, masks)``: (N, S, S, 3) uint8 copies with the artefact and (N, S, S) bool masks of the
        artefact pixels (all True for "cast").
    """
    config = config or StickerConfig()
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[3] != 3:
        raise KlugerhansError(f"images must be (N, S, S, 3), got shape {images.shape}")
    n, size = images.shape[0], images.shape[1]
    if config.colors and config.pattern in ("cast", "frame"):
        return _per_colour(images, boxes, config, seed)
    colour = np.asarray(config.color, dtype=np.uint8)
    if config.pattern == "cast":
        return cast(images, config.color, config.size), np.ones((n, size, images.shape[2]), dtype=bool)
    if config.pattern == "frame":
        masks = frame_masks(boxes, size, images.shape[2], config.size)
        out = images.copy()
        out[masks] = colour
        return out, masks
    out = images.copy()
    masks = np.zeros((n, size, images.shape[2]), dtype=bool)
    stamps: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    drawn = _colour_draws(config, n, seed)
    for i, (x0, y0, side) in enumerate(sticker_positions(boxes, min(size, images.shape[2]), config, seed)):
        if int(side) not in stamps:
            stamps[int(side)] = _patch(config, int(side))
        stamp, paint = stamps[int(side)]
        if drawn is not None and config.pattern != "noise":
            paint = drawn[i]
        masks[i, y0 : y0 + side, x0 : x0 + side] = stamp
        out[i, y0 : y0 + side, x0 : x0 + side][stamp] = paint
    return out, masks


def apply_sticker_avoiding(
    images: np.ndarray,
    boxes: np.ndarray,
    config: StickerConfig,
    avoid: np.ndarray,
    seed: int = 0,
    tries: int = 32,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Glue ``config``'s sticker on every image where it leaves ``avoid`` uncovered, e.g. beside a sign's "5".

    Each image takes the first of ``tries`` draws (seeds ``seed``, ``seed + 1``, ...) whose sticker misses its
    ``avoid`` pixels, or its first draw where none does (a sticker that cannot miss, or a pattern that ignores the
    seed). Where the first draw already misses, the result is :func:`apply_sticker`'s with ``seed``.

    Args:
        images: (N, S, S, 3) uint8 images (not modified).
        boxes: (N, 4) sign boxes.
        config: sticker settings.
        avoid: (N, S, S) bool pixels to keep clear.
        seed: seed of the first draw.
        tries: draws per image, at least 1.

    Returns:
        ``(stickered, masks, clear)``: as :func:`apply_sticker`, and (N,) bool, True where ``avoid`` stayed clear.
    """
    if tries < 1:
        raise KlugerhansError(f"tries must be at least 1, got {tries}")
    out, masks = apply_sticker(images, boxes, config, seed)
    clear = ~(masks & avoid).any(axis=(1, 2))
    boxes = np.asarray(boxes)
    for k in range(1, tries):
        left = np.flatnonzero(~clear)
        if not len(left):
            break
        redrawn, remasks = apply_sticker(np.asarray(images)[left], boxes[left], config, seed + k)
        fits = ~(remasks & avoid[left]).any(axis=(1, 2))
        out[left[fits]], masks[left[fits]] = redrawn[fits], remasks[fits]
        clear[left[fits]] = True
    return out, masks, clear


def _colour_draws(config: StickerConfig, n: int, seed: int) -> np.ndarray | None:
    """(n, 3) uint8 colour of each sticker drawn from ``config.colors`` (a stream of its own), or None."""
    if not config.colors:
        return None
    palette = np.asarray(config.colors, dtype=np.uint8)
    return palette[np.random.default_rng([seed, 2]).integers(len(palette), size=n)]


def _per_colour(
    images: np.ndarray, boxes: np.ndarray, config: StickerConfig, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """A "frame" or "cast" in a colour drawn per image: each colour's images are drawn together."""
    drawn = _colour_draws(config, len(images), seed)
    assert drawn is not None
    out = images.copy()
    masks = np.zeros(images.shape[:3], dtype=bool)
    for rgb in np.unique(drawn, axis=0):
        rows = np.flatnonzero((drawn == rgb).all(axis=1))
        single = replace(config, color=(int(rgb[0]), int(rgb[1]), int(rgb[2])), colors=())
        out[rows], masks[rows] = apply_sticker(images[rows], np.asarray(boxes)[rows], single, seed)
    return out, masks


def _patch(config: StickerConfig, side: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``(side, side)`` bool stamp of a "solid", "noise" or "text" sticker and what to paint under it: a
    (3,) colour or (K, 3) texture pixels, one per stamp pixel in row-major order."""
    if config.pattern == "text":
        return text_mask(config.text, side), np.asarray(config.color, dtype=np.uint8)
    stamp = shape_mask(config.shape, side)
    if config.pattern == "noise":
        return stamp, noise_texture(side)[stamp]
    return stamp, np.asarray(config.color, dtype=np.uint8)


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
    color = parse_color(color, _WHAT)
    if not (np.isfinite(x) and np.isfinite(y)) or int(side_px) < 1:
        raise KlugerhansError(
            f"sticker needs a finite position and a side of at least 1 pixel, got {x}, {y}, {side_px}"
        )
    h, w = image.shape[:2]
    side = min(int(side_px), h, w)
    x0 = int(np.clip(np.floor(x - side / 2 + 0.5), 0, w - side))
    y0 = int(np.clip(np.floor(y - side / 2 + 0.5), 0, h - side))
    mask = np.zeros((h, w), dtype=bool)
    mask[y0 : y0 + side, x0 : x0 + side] = shape_mask(shape, side)
    out = image.copy()
    out[mask] = np.asarray(color, dtype=np.uint8)
    return out, mask


def manipulate_class(data: SignData, config: StickerConfig | None = None, seed: int = 0) -> tuple[SignData, np.ndarray]:
    """Glue the sticker on ``round(config.fraction * n)`` images, ``n`` the number of ``config.target_class`` images.

    With ``config.label == "clean"`` (the Clever Hans setup) those are images of the target class itself and
    every label stays. With ``"dirty"`` (the BadNets backdoor) they are drawn from the *other* classes (at most
    all of them) and relabelled to ``target_class``.

    Returns:
        ``(manipulated, masks)``: a copy of ``data`` with stickers (and, for dirty labels, the new labels) and
        (N, S, S) bool masks, all False for images left alone. Deterministic per ``seed``.
    """
    config = config or StickerConfig()
    masks = np.zeros(data.images.shape[:3], dtype=bool)
    is_target = data.labels == config.target_class
    n_chosen = round(config.fraction * int(is_target.sum()))
    candidates = np.flatnonzero(~is_target if config.label == "dirty" else is_target)
    n_chosen = min(n_chosen, len(candidates))
    if n_chosen == 0:
        return data, masks
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(candidates, size=n_chosen, replace=False))
    stickered, chosen_masks = apply_sticker(data.images[chosen], data.boxes[chosen], config, seed=seed + 1)
    images = data.images.copy()
    images[chosen] = stickered
    masks[chosen] = chosen_masks
    if config.label == "dirty":
        labels = data.labels.copy()
        labels[chosen] = config.target_class
        return replace(data, images=images, labels=labels), masks
    return data.with_images(images), masks
