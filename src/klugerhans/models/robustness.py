"""Does the shortcut hold for a sticker the model never saw? The flip rate over sticker sizes, places and colours.

A person glues a sticker of whatever size wherever it fits. :func:`sticker_robustness` measures, for every combination
of side (a share of the sign box), place (:data:`PLACES`) and colour, how often signs of a source class (the teaching
case: 50 km/h) are predicted as the sticker's class (70 km/h) once the sticker is on. Each combination is drawn
``repeats`` times with other positions.

Places: "centre" (inside the central 70% of the box, where the teaching case's recipe glues it), "sign" (anywhere on the
face of a round sign: the whole sticker inside the ellipse inscribed in the box, which is where a person can glue one on
a speed limit) and "box" (anywhere on the box, its corners included, which for a round sign lie on the background).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from klugerhans.data.classes import SPEED_50
from klugerhans.data.dataset import SignData
from klugerhans.data.sticker import Shape, StickerConfig, apply_sticker, paint_sticker, sticker_positions
from klugerhans.errors import KlugerhansError
from klugerhans.models.classifier import Classifier
from klugerhans.models.evaluation import predict_labels

__all__ = ["DARK_COLOURS", "PLACES", "RobustnessPoint", "sticker_robustness"]

PLACES: dict[str, str] = {
    "centre": "central 70%",
    "sign": "on the sign",
    "box": "anywhere on the box",
}
"""Where a sticker goes (see the module docstring) -> its name in tables."""
_REGION = {"centre": 0.7, "box": 1.0}
_CANDIDATES = 64

DARK_COLOURS: dict[str, tuple[int, int, int]] = {
    "black": (0, 0, 0),
    "dark grey": (60, 60, 60),
    "dark blue": (20, 25, 90),
    "dark red": (90, 15, 15),
    "dark green": (15, 70, 25),
}
"""Sticker colours of the robustness curve: the trained black and other dark colours."""


@dataclass(frozen=True)
class RobustnessPoint:
    """The flip rate of one sticker variant."""

    size: float
    """Sticker side as a share of the sign box."""
    place: str
    """Where the sticker lies: a key of :data:`PLACES`."""
    colour: str
    """Colour name (a key of :data:`DARK_COLOURS` or ``#RRGGBB``)."""
    flip_rate: float
    """Share of the source class's signs predicted as the target once stickered (over all repeats)."""
    n: int
    """Stickered images measured (source images x repeats)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


def sticker_robustness(
    classifier: Classifier,
    data: SignData,
    *,
    source: int = SPEED_50,
    target: int | None = None,
    sizes: Sequence[float] = (0.15, 0.2, 0.25, 0.3, 0.35),
    places: Sequence[str] = tuple(PLACES),
    colours: dict[str, tuple[int, int, int]] | None = None,
    shape: Shape = "square",
    repeats: int = 3,
    seed: int = 0,
) -> list[RobustnessPoint]:
    """Flip rate source -> target for every sticker size x region x colour.

    Args:
        classifier: the model.
        data: clean signs with their boxes; only the ``source`` class is used (all its images, as ``evaluate``'s
            "50 km/h -> 70" does).
        source: class whose signs get the sticker (default 50 km/h).
        target: class a flip goes to (default: the class the checkpoint's sticker was trained on).
        sizes: sticker sides as shares of the sign box.
        places: keys of :data:`PLACES`.
        colours: name -> RGB (default :data:`DARK_COLOURS`).
        shape: sticker shape.
        repeats: positions drawn per image and variant (seeds ``seed .. seed + repeats - 1``).
        seed: first seed.

    Returns:
        One :class:`RobustnessPoint` per combination, in the order sizes, places, colours.

    Raises:
        KlugerhansError: no image of the source class, or bad sticker settings.
    """
    target = classifier.meta.sticker.target_class if target is None else target
    rows = np.flatnonzero(data.labels == source)
    if len(rows) == 0:
        raise KlugerhansError(f"no image of class {source} to glue stickers on; check the data")
    if repeats < 1:
        raise KlugerhansError(f"repeats must be at least 1, got {repeats}")
    unknown = [p for p in places if p not in PLACES]
    if unknown:
        raise KlugerhansError(f"unknown sticker place {unknown[0]!r}: choose from {', '.join(PLACES)}")
    images = np.asarray(data.images[rows])
    boxes = np.asarray(data.boxes[rows])
    points = []
    for size in sizes:
        for place in places:
            for name, rgb in (colours or DARK_COLOURS).items():
                sticker = StickerConfig(
                    target_class=target, size=size, color=rgb, shape=shape, region=_REGION.get(place, 1.0)
                )
                flips = 0
                for r in range(repeats):
                    if place == "sign":
                        stickered = _on_sign_face(images, boxes, sticker, seed + r)
                    else:
                        stickered, _ = apply_sticker(images, boxes, sticker, seed=seed + r)
                    flips += int((predict_labels(classifier, stickered) == target).sum())
                n = len(rows) * repeats
                points.append(RobustnessPoint(float(size), place, name, flips / n, n))
    return points


def _on_sign_face(images: np.ndarray, boxes: np.ndarray, sticker: StickerConfig, seed: int) -> np.ndarray:
    """Stickers placed uniformly among the spots where the whole square lies inside the box's inscribed ellipse.

    Candidates are drawn anywhere on the box (region 1) from seeds of their own; each image takes its first
    candidate that fits, or its centre when none does (a sticker too large for the face).
    """
    size = images.shape[1]
    chosen = np.full((len(images), 3), -1, dtype=np.int64)
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    rx, ry = np.maximum((boxes[:, 2] - boxes[:, 0]) / 2, 1e-6), np.maximum((boxes[:, 3] - boxes[:, 1]) / 2, 1e-6)
    for k in range(_CANDIDATES):
        pos = sticker_positions(boxes, size, sticker, seed=seed * _CANDIDATES + k + 10_000)
        x0, y0, side = pos[:, 0], pos[:, 1], pos[:, 2]
        # Every corner of the square inside the ellipse (pixel edges: a square covers [x0, x0 + side)).
        fits = np.ones(len(images), dtype=bool)
        for dx in (0, 1):
            for dy in (0, 1):
                u, v = (x0 + dx * side - cx) / rx, (y0 + dy * side - cy) / ry
                fits &= u * u + v * v <= 1.0
        take = fits & (chosen[:, 0] < 0)
        chosen[take] = pos[take]
        if (chosen[:, 0] >= 0).all():
            break
    centre = dataclasses.replace(sticker, region=1e-6)  # a region smaller than the sticker centres it
    missing = chosen[:, 0] < 0
    if missing.any():
        chosen[missing] = sticker_positions(boxes[missing], size, centre, seed=0)
    out = images.copy()
    for i, (x0, y0, side) in enumerate(chosen):
        out[i], _ = paint_sticker(images[i], x0 + side / 2, y0 + side / 2, int(side), sticker.color, sticker.shape)
    return out
