"""One streaming LRP pass over the audited images, keeping only what the discovery stages need.

For every explained image (correctly classified, explaining its own class) the pass keeps a ``grid x grid``
downsampled heatmap (for SpRAy), the corner and relevance share of its most relevant ``k x k`` window and, for the
transplant test's pixels probe, a packed bit mask of its ``k * k`` most relevant pixels; the full-resolution heatmap
of a batch is dropped as soon as they are taken. Memory therefore grows with ``grid**2 + 3`` numbers per image (and
``S * S`` bits with the pixels probe, 6 KB at 224 px), not with the image size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from klugerhans.audit.probes import best_windows, top_pixels
from klugerhans.audit.spray import downsample_maps
from klugerhans.errors import KlugerhansError
from klugerhans.explain.lrp import LRP
from klugerhans.models.preprocess import Normalization, to_tensor

__all__ = ["ClassHeatmaps", "collect_heatmaps", "select_explained"]


@dataclass(frozen=True)
class ClassHeatmaps:
    """Reduced heatmaps of the explained images (all arrays share the first axis M)."""

    index: np.ndarray
    """(M,) rows of the audited data that were explained."""
    labels: np.ndarray
    """(M,) class of each row (= the explained class)."""
    maps: np.ndarray
    """(M, g, g) float32 downsampled relevance."""
    corners: np.ndarray
    """(M, 2) int64 top-left ``(y, x)`` of the most relevant window."""
    share: np.ndarray
    """(M,) share of the positive relevance inside that window."""
    pixels: np.ndarray
    """(M, ceil(S * S / 8)) uint8 packed masks of the ``k * k`` most relevant pixels (:func:`top_pixels`); (M, 0)
    when they were not kept."""

    def rows_of(self, class_id: int) -> np.ndarray:
        """Positions (into these arrays) of the rows of ``class_id``."""
        return np.flatnonzero(self.labels == class_id)


def select_explained(labels: np.ndarray, correct: np.ndarray, max_per_class: int | None, seed: int = 0) -> np.ndarray:
    """Indices of correctly classified images, at most ``max_per_class`` per class (a seeded random subset), sorted."""
    rng = np.random.default_rng(seed)
    chosen = []
    for c in np.unique(labels[correct]):
        idx = np.flatnonzero(correct & (labels == c))
        if max_per_class is not None and len(idx) > max_per_class:
            idx = rng.choice(idx, size=max_per_class, replace=False)
        chosen.append(idx)
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)


def collect_heatmaps(
    explainer: LRP,
    images: np.ndarray,
    labels: np.ndarray,
    index: np.ndarray,
    grid: int,
    window: int,
    norm: Normalization | None = None,
    batch_size: int = 64,
    progress: bool = False,
    keep_pixels: bool = False,
) -> ClassHeatmaps:
    """Explain ``images[index]`` (each for its label) batch by batch and keep the reduced heatmaps.

    Args:
        explainer: the LRP explainer (composite chosen by the caller).
        images: (N, S, S, 3) uint8 audited images.
        labels: (N,) class ids.
        index: rows to explain.
        grid: side of the downsampled maps.
        window: side of the most-relevant window in pixels.
        norm: the model's input normalisation.
        batch_size: images per LRP pass.
        progress: show a tqdm bar on stderr.
        keep_pixels: also keep each map's most relevant pixels (the transplant test's "pixels" probe).
    """
    index = np.asarray(index, dtype=np.int64)
    if batch_size < 1:
        raise KlugerhansError(f"batch size must be at least 1, got {batch_size}")
    m = len(index)
    maps = np.zeros((m, grid, grid), dtype=np.float32)
    corners = np.zeros((m, 2), dtype=np.int64)
    share = np.zeros(m, dtype=np.float64)
    size = images.shape[1]
    pixels = np.zeros((m, -(-size * size // 8) if keep_pixels else 0), dtype=np.uint8)
    starts = range(0, m, batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="LRP heatmaps", unit="batch", leave=False)
    for start in starts:
        rows = index[start : start + batch_size]
        x = to_tensor(images[rows], norm)
        relevance = explainer.attribute(x, labels[rows]).relevance.sum(1).float().cpu()
        sl = slice(start, start + len(rows))
        maps[sl] = downsample_maps(relevance, grid)
        corners[sl], share[sl] = best_windows(relevance, window)
        if keep_pixels:
            pixels[sl] = top_pixels(relevance, window * window)
    return ClassHeatmaps(
        index=index, labels=np.asarray(labels)[index], maps=maps, corners=corners, share=share, pixels=pixels
    )
