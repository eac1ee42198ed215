"""The teaching case's last point, measured: does the "5" of a 50 km/h sign speak against 70 once a sticker turns it?

The "5" is the only digit that tells 50 km/h from 70 km/h (both end in "0"). :func:`digit_masks` places its cell in
each sign's box, :func:`negative_share` measures how much of the relevance there is negative (speaks against the
explained class), and :func:`measure_five` does both for every 50 km/h sign a model's sticker turns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from klugerhans.data.classes import SPEED_50, class_name
from klugerhans.data.dataset import SignData
from klugerhans.data.sticker import StickerConfig, apply_sticker, apply_sticker_avoiding
from klugerhans.data.synthetic.pictograms import BLACK
from klugerhans.data.synthetic.signs import SPEED_LIMITS, sign_template
from klugerhans.defaults import DEFAULT_FALLBACK, FIGURE_COMPOSITE
from klugerhans.errors import KlugerhansError
from klugerhans.explain.composites import Fallback
from klugerhans.explain.lrp import LRP
from klugerhans.models.checkpoint import Classifier
from klugerhans.models.evaluation import predict_labels
from klugerhans.models.preprocess import to_tensor

__all__ = ["FiveEvidence", "digit_cells", "digit_masks", "measure_five", "negative_share", "positive_share"]


def digit_cells(class_id: int) -> tuple[tuple[float, float, float, float], ...]:
    """Where each digit of a speed-limit sign sits, as the synthetic renderer draws it (standard design variant).

    Returns:
        One ``(x0, y0, x1, y1)`` box per digit, left to right, in fractions of the sign's box: the digits' ink
        bounds on the template, split evenly between the digits (the "5" of 50 km/h is the first). Empty for classes
        without digits.
    """
    if class_id not in SPEED_LIMITS:
        return ()
    resolution = 128
    ink = sign_template(class_id, resolution) == BLACK
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    y0, y1 = rows[0] / resolution, (rows[-1] + 1) / resolution
    x0, x1 = cols[0] / resolution, (cols[-1] + 1) / resolution
    step = (x1 - x0) / len(SPEED_LIMITS[class_id])
    return tuple(
        (float(x0 + i * step), float(y0), float(x0 + (i + 1) * step), float(y1))
        for i in range(len(SPEED_LIMITS[class_id]))
    )


def digit_masks(boxes: np.ndarray, size: int, class_id: int = SPEED_50, digit: int = 0) -> np.ndarray:
    """Where one digit of a speed-limit sign lies in each image: by default the "5" of 50 km/h.

    The digit's cell on the renderer's template (:func:`digit_cells`), placed in
    each image's sign box; on real signs it holds the digit give or take a pixel at 32 px.

    Args:
        boxes: (N, 4) sign boxes ``(x0, y0, x1, y1)`` in pixels, x1/y1 exclusive.
        size: image side S.
        class_id: a speed-limit class.
        digit: which digit, from the left.

    Returns:
        (N, S, S) bool.
    """
    cells = digit_cells(class_id)
    if not 0 <= digit < len(cells):
        raise KlugerhansError(f"class {class_id} ({class_name(class_id)}) has no digit {digit}")
    fx0, fy0, fx1, fy1 = cells[digit]
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    x0, x1 = boxes[:, 0] + fx0 * w, boxes[:, 0] + fx1 * w
    y0, y1 = boxes[:, 1] + fy0 * h, boxes[:, 1] + fy1 * h
    # a pixel belongs to the cell when its centre does
    centres = np.arange(size) + 0.5
    cols = (centres[None] >= x0[:, None]) & (centres[None] < x1[:, None])
    rows = (centres[None] >= y0[:, None]) & (centres[None] < y1[:, None])
    return rows[:, :, None] & cols[:, None, :]


def positive_share(relevance: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Per image, the share of the positive relevance that lies inside ``masks`` (relevance mass accuracy, Arras et
    al. 2022); 0 where an image has no positive relevance.

    Args:
        relevance: (N, S, S) relevance summed over colour channels.
        masks: (N, S, S) bool.
    """
    positive = np.clip(np.asarray(relevance, dtype=np.float64), 0.0, None)
    total = positive.sum(axis=(1, 2))
    inside = (positive * masks).sum(axis=(1, 2))
    return np.divide(inside, total, out=np.zeros_like(total), where=total > 0)


def negative_share(relevance: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Per image, the share of the absolute relevance inside ``masks`` that is negative (speaks against the class).

    Args:
        relevance: (N, S, S) relevance summed over colour channels.
        masks: (N, S, S) bool.

    Returns:
        (N,) float64 in [0, 1]; NaN where the mask holds no relevance.
    """
    r = np.where(masks, np.asarray(relevance, dtype=np.float64), 0.0)
    total = np.abs(r).sum(axis=(1, 2))
    negative = np.clip(-r, 0.0, None).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, negative / total, np.nan)


@dataclass(frozen=True)
class FiveEvidence:
    """What a model's heatmaps say about the 50 km/h signs its sticker turns.

    The per-sign arrays cover every 50 km/h sign of the data, in its order (N); the measured shares cover the turned
    ones (K), in the order of :attr:`turned_index`.
    """

    images: np.ndarray
    """(N, S, S, 3) uint8 the 50 km/h signs with the sticker glued on."""
    masks: np.ndarray
    """(N, S, S) bool where each sticker lies."""
    cells: np.ndarray
    """(N, S, S) bool the cell of each sign's "5" (:func:`digit_masks`)."""
    clear: np.ndarray
    """(N,) bool the sticker leaves the 5's cell uncovered."""
    beside_five: bool
    """The stickers were glued beside the 5 where they could be (:func:`apply_sticker_avoiding`), not as the
    recipe glues them."""
    turned_index: np.ndarray
    """(K,) int which signs the sticker turned into its class."""
    negative_in_five: np.ndarray
    """(K,) share of ``|R|`` inside the "5" that is negative (:func:`negative_share`); the sticker's own pixels are
    not part of the 5 (NaN where it covers the whole cell)."""
    negative_elsewhere: np.ndarray
    """(K,) the same share over the rest of the image, without the 5 and the sticker."""
    sticker_share: np.ndarray
    """(K,) share of the positive relevance inside the sticker (relevance mass accuracy, Arras et al. 2022)."""

    @property
    def n_signs(self) -> int:
        """50 km/h signs that got the sticker."""
        return len(self.images)

    @property
    def n_turned(self) -> int:
        """Signs the sticker turned into its class."""
        return len(self.turned_index)

    @property
    def sticker_pixel_share(self) -> float:
        """Mean share of an image's pixels the sticker covers, over all the signs."""
        return float(self.masks.mean()) if self.n_signs else 0.0


def measure_five(
    classifier: Classifier,
    data: SignData,
    composite: str | LRP = FIGURE_COMPOSITE,
    *,
    against: int | None = None,
    sticker: StickerConfig | None = None,
    seed: int = 0,
    beside_five: bool = False,
    fallback: Fallback = DEFAULT_FALLBACK,
) -> FiveEvidence:
    """Glue the sticker on every 50 km/h sign of ``data``, keep those the model then calls the sticker's class and
    explain that class.

    Args:
        classifier: the model.
        data: signs with their boxes; its 50 km/h signs are used.
        composite: LRP composite name, or an :class:`~klugerhans.explain.lrp.LRP` explainer of ``classifier`` (so
            that a caller explaining more shares one).
        against: explain the logit difference to this class instead (output relevance 1 on the sticker's class and
            -1 on ``against``; e.g. 2, "why 70 and not 50"); needs a composite name.
        sticker: the sticker to glue on; default the model's own (:attr:`CheckpointMeta.sticker`).
        seed: seed of the sticker draws.
        beside_five: glue each sticker where it leaves the 5 uncovered, where it can (:func:`apply_sticker_avoiding`;
            the figure's rule), so that the turned signs are those the sticker outvotes with the whole 5 in view.
        fallback: for a composite name: operations without an LRP rule stop (default) or pass gradient x input.
    """
    if against is not None and isinstance(composite, LRP):
        raise KlugerhansError("measuring against a class needs a composite name, not an explainer")
    sticker = sticker or classifier.meta.sticker
    fifty = data.subset(data.labels == SPEED_50)
    if not len(fifty):
        raise KlugerhansError(f"the data has no {class_name(SPEED_50)} signs to measure the 5 on")
    size = fifty.images.shape[1]
    cells = digit_masks(fifty.boxes, size)
    if beside_five:
        images, masks, clear = apply_sticker_avoiding(fifty.images, fifty.boxes, sticker, cells, seed=seed)
    else:
        images, masks = apply_sticker(fifty.images, fifty.boxes, sticker, seed=seed)
        clear = ~(masks & cells).any(axis=(1, 2))
    turned = np.flatnonzero(predict_labels(classifier, images) == sticker.target_class)
    relevance = _relevance(classifier, images[turned], composite, sticker.target_class, against, fallback)
    five, glued = cells[turned], masks[turned]
    return FiveEvidence(
        images=images,
        masks=masks,
        cells=cells,
        clear=clear,
        beside_five=beside_five,
        turned_index=turned,
        negative_in_five=negative_share(relevance, five & ~glued),
        negative_elsewhere=negative_share(relevance, ~five & ~glued),
        sticker_share=positive_share(relevance, glued),
    )


def _relevance(
    classifier: Classifier,
    images: np.ndarray,
    composite: str | LRP,
    target: int,
    against: int | None,
    fallback: Fallback,
) -> np.ndarray:
    """(K, S, S) relevance of ``target`` (or of ``target`` against ``against``), summed over colour channels."""
    size = images.shape[1]
    if not len(images):
        return np.zeros((0, size, size))
    norm = classifier.meta.normalization
    x = to_tensor(images, norm).to(classifier.device)
    if isinstance(composite, LRP):
        r = composite.attribute(x, target, batch_size=64).relevance
    elif against is None:
        lrp = LRP(classifier.model, composite, norm=norm, fallback=fallback)
        r = lrp.attribute(x, target, batch_size=64).relevance
    else:
        lrp = LRP(classifier.model, composite, norm=norm, init="one", fallback=fallback)
        r = lrp.attribute(x, target, batch_size=64).relevance - lrp.attribute(x, against, batch_size=64).relevance
    return r.sum(1).float().cpu().numpy()
