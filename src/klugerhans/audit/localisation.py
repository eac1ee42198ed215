"""Localisation metrics: how well a heatmap points at a region known to matter (here: the sticker).

All functions take (N, H, W) relevance and (N, H, W) boolean ground-truth masks and return one value per image,
so callers can average, bootstrap or show single cases.

* Relevance mass accuracy (Arras et al. 2022, "CLEVR-XAI: A benchmark dataset for the ground truth evaluation of
  neural network explanations"): the share of the *positive* relevance that lies inside the mask.
* Relevance rank accuracy (Arras et al. 2022): with K the number of mask pixels, the share of the K most relevant
  pixels that lie inside the mask.
* Pointing game (Zhang et al. 2018, "Top-down neural attention by excitation backprop"): a hit when the most
  relevant pixel lies inside the mask, optionally grown by a tolerance of a few pixels.
"""

from __future__ import annotations

import numpy as np
import torch

from klugerhans.errors import KlugerhansError

__all__ = ["dilate_masks", "localisation_scores", "pointing_game", "relevance_mass_accuracy", "relevance_rank_accuracy"]


def _check(relevance: np.ndarray | torch.Tensor, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r = relevance.detach().cpu().numpy() if isinstance(relevance, torch.Tensor) else np.asarray(relevance)
    m = np.asarray(masks, dtype=bool)
    if r.ndim != 3 or r.shape != m.shape:
        raise KlugerhansError(f"relevance {r.shape} and masks {m.shape} must both be (N, H, W)")
    r = np.where(np.isfinite(r), r, 0.0).astype(np.float64)
    return r, m


def relevance_mass_accuracy(relevance: np.ndarray | torch.Tensor, masks: np.ndarray, tolerance: int = 0) -> np.ndarray:
    """(N,) share of positive relevance inside each mask (grown by ``tolerance`` pixels); 0 without positive relevance.

    ``tolerance=0`` is Arras et al.'s definition. A tolerance of 1 px forgives the halo that an input-layer rule
    spreading relevance over a 3x3 receptive field (LRP's flat rule) or an upsampled coarse map puts around a
    small object; it is reported separately, never instead.
    """
    r, m = _check(relevance, masks)
    m = dilate_masks(m, tolerance)
    pos = np.clip(r, 0.0, None)
    total = pos.sum(axis=(1, 2))
    inside = (pos * m).sum(axis=(1, 2))
    return np.divide(inside, total, out=np.zeros_like(total), where=total > 0)


def relevance_rank_accuracy(relevance: np.ndarray | torch.Tensor, masks: np.ndarray) -> np.ndarray:
    """(N,) share of the K highest-relevance pixels that lie in the mask (K = mask size); 0 for empty masks.

    Ties at the K-th value are broken by pixel order (a stable sort), so constant maps score like chance.
    """
    r, m = _check(relevance, masks)
    n = len(r)
    flat_r = r.reshape(n, -1)
    flat_m = m.reshape(n, -1)
    k = flat_m.sum(axis=1)
    order = np.argsort(-flat_r, axis=1, kind="stable")
    inside_sorted = np.take_along_axis(flat_m, order, axis=1)
    # hits among the first k entries of each row: cumulative sum read off at k
    cum = np.concatenate([np.zeros((n, 1), dtype=np.int64), np.cumsum(inside_sorted, axis=1)], axis=1)
    hits = cum[np.arange(n), k]
    return np.divide(hits, k, out=np.zeros(n, dtype=np.float64), where=k > 0)


def dilate_masks(masks: np.ndarray, pixels: int) -> np.ndarray:
    """Grow boolean masks by ``pixels`` in every direction (a (2p+1) x (2p+1) square)."""
    if pixels <= 0:
        return masks
    t = torch.from_numpy(masks.astype(np.float32))[:, None]
    grown = torch.nn.functional.max_pool2d(t, 2 * pixels + 1, stride=1, padding=pixels)
    return grown[:, 0].numpy() > 0


def pointing_game(relevance: np.ndarray | torch.Tensor, masks: np.ndarray, tolerance: int = 0) -> np.ndarray:
    """(N,) bool: the most relevant pixel (first in raster order on ties) lies in the mask grown by ``tolerance``."""
    if tolerance < 0:
        raise KlugerhansError(f"pointing-game tolerance must be >= 0 pixels, got {tolerance}")
    r, m = _check(relevance, masks)
    n = len(r)
    top = r.reshape(n, -1).argmax(axis=1)
    return dilate_masks(m, tolerance).reshape(n, -1)[np.arange(n), top]


def localisation_scores(
    relevance: np.ndarray | torch.Tensor, masks: np.ndarray, tolerance: int = 0
) -> dict[str, float | int | None]:
    """Means of the metrics over the images, plus the mask's share of the image (the mass a uniform map gets).

    ``mass_accuracy_1px`` is the mass accuracy within the mask grown by one pixel; ``tolerance`` applies to the
    pointing game.
    """
    r, m = _check(relevance, masks)
    if len(r) == 0:
        return {
            "n": 0,
            "mass_accuracy": None,
            "mass_accuracy_1px": None,
            "rank_accuracy": None,
            "pointing_game": None,
            "mask_share": None,
        }
    return {
        "n": len(r),
        "mass_accuracy": float(relevance_mass_accuracy(r, m).mean()),
        "mass_accuracy_1px": float(relevance_mass_accuracy(r, m, tolerance=1).mean()),
        "rank_accuracy": float(relevance_rank_accuracy(r, m).mean()),
        "pointing_game": float(pointing_game(r, m, tolerance).mean()),
        "mask_share": float(m.mean()),
    }
