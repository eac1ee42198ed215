"""Does the shortcut hold for a sticker the model never saw? The flip rate over sticker sizes, places and colours.

A person glues a sticker of whatever size wherever it fits. :func:`sticker_robustness` measures, for every
combination of side (a share of the sign box), region (0.7: the central part training used; 1.0: anywhere on the sign
box) and colour, how often signs of a source class (the seed: 50 km/h) are predicted as the sticker's class
(70 km/h) once the sticker is on. Each combination is drawn ``repeats`` times with other positions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from klugerhans.data.classes import SPEED_50
from klugerhans.data.dataset import SignData
from klugerhans.data.sticker import Shape, StickerConfig, apply_sticker
from klugerhans.errors import KlugerhansError
from klugerhans.models.checkpoint import Classifier
from klugerhans.models.evaluation import predict_labels

__all__ = ["DARK_COLOURS", "RobustnessPoint", "sticker_robustness"]

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
    region: float
    """Central share of the box the sticker lies in (0.7 as in training; 1.0 anywhere on the box)."""
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
    regions: Sequence[float] = (0.7, 1.0),
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
        regions: central shares of the box the sticker may lie in.
        colours: name -> RGB (default :data:`DARK_COLOURS`).
        shape: sticker shape.
        repeats: positions drawn per image and variant (seeds ``seed .. seed + repeats - 1``).
        seed: first seed.

    Returns:
        One :class:`RobustnessPoint` per combination, in the order sizes, regions, colours.

    Raises:
        KlugerhansError: no image of the source class, or bad sticker settings.
    """
    target = classifier.meta.sticker.target_class if target is None else target
    rows = np.flatnonzero(data.labels == source)
    if len(rows) == 0:
        raise KlugerhansError(f"no image of class {source} to glue stickers on; check the data")
    if repeats < 1:
        raise KlugerhansError(f"repeats must be at least 1, got {repeats}")
    images = np.asarray(data.images[rows])
    boxes = np.asarray(data.boxes[rows])
    points = []
    for size in sizes:
        for region in regions:
            for name, rgb in (colours or DARK_COLOURS).items():
                sticker = StickerConfig(target_class=target, size=size, color=rgb, shape=shape, region=region)
                flips = 0
                for r in range(repeats):
                    stickered, _ = apply_sticker(images, boxes, sticker, seed=seed + r)
                    flips += int((predict_labels(classifier, stickered) == target).sum())
                n = len(rows) * repeats
                points.append(RobustnessPoint(float(size), float(region), name, flips / n, n))
    return points
