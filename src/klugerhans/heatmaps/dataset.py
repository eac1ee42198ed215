"""Explain a whole dataset batch by batch, from uint8 images or normalised tensors, keeping reduced heatmaps."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from klugerhans.errors import KlugerhansError
from klugerhans.explain.composites import Composite
from klugerhans.explain.explanation import Explainer, Explanation, Target, per_image_targets
from klugerhans.explain.lrp import as_explainer
from klugerhans.models.preprocess import Normalization, to_tensor

__all__ = ["explain_dataset"]


def _pool_sum(relevance: torch.Tensor, pool: int) -> torch.Tensor:
    """Sum relevance over ``pool x pool`` blocks (keeps the total relevance)."""
    if pool == 1:
        return relevance
    if relevance.shape[-1] % pool or relevance.shape[-2] % pool:
        raise KlugerhansError(f"pool {pool} does not divide the heatmap size {tuple(relevance.shape[-2:])}")
    squeeze = relevance.ndim == 3
    pooled = F.avg_pool2d(relevance[:, None] if squeeze else relevance, pool) * pool**2
    return pooled[:, 0] if squeeze else pooled


def explain_dataset(
    model: nn.Module | Explainer,
    images: np.ndarray | torch.Tensor,
    targets: Target = None,
    composite: str | Composite | None = None,
    batch_size: int = 64,
    norm: Normalization | None = None,
    channels: Literal["sum", "keep"] = "sum",
    pool: int = 1,
    progress: bool = False,
    **options: object,
) -> Explanation:
    """Explain a whole dataset batch by batch; memory holds one batch plus the (reduced) heatmaps kept.

    A thin wrapper: each batch is normalised here and explained by the engine's ``attribute``.

    Args:
        model: the classifier or an explainer (``klugerhans.explain.LRP``) built with its composite.
        images: (N, S, S, 3) uint8 RGB (normalised per batch with ``norm``) or (N, 3, S, S) normalised floats.
        targets: None (predicted class), an int, or (N,) class ids, e.g. ``data.labels``.
        composite: rule composite; default ``"epsilon_plus_flat"``.
        batch_size: images per pass.
        norm: the model's input normalisation (the checkpoint's): normalises uint8 images and gives the bounds of a
            composite that needs them (``epsilon_gamma_box``); for uint8 images GTSRB's if None, for floats none.
        channels: ``"sum"`` keeps (N, S, S) maps summed over colour channels, ``"keep"`` (N, 3, S, S).
        pool: sum relevance over ``pool x pool`` blocks to keep smaller maps (S must be divisible).
        progress: show a tqdm progress bar.
        **options: composite options and ``init``.

    Returns:
        :class:`Explanation` on the CPU, relevance as float32.
    """
    if channels not in ("sum", "keep"):
        raise KlugerhansError(f"channels must be 'sum' or 'keep', got {channels!r}")
    if pool < 1:
        raise KlugerhansError(f"pool must be >= 1, got {pool}")
    raw = isinstance(images, np.ndarray)
    if raw and (images.ndim != 4 or images.shape[3] != 3 or images.dtype != np.uint8):
        raise KlugerhansError(f"images must be (N, S, S, 3) uint8 RGB, got {images.shape} {images.dtype}")
    if raw and norm is None:
        norm = Normalization()  # what to_tensor applies without one; a box composite must get the same bounds
    # an explainer built by the caller has its composite (and bounds) already; norm then only normalises images
    bounds = {"norm": norm} if norm is not None and not isinstance(model, Explainer) else {}
    explainer = as_explainer(model, composite, **options, **bounds)
    n = len(images)
    if n == 0:
        raise KlugerhansError("no images to explain")
    all_targets = per_image_targets(targets, n)
    if batch_size < 1:
        raise KlugerhansError(f"batch size must be >= 1, got {batch_size}")
    starts = range(0, n, batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="LRP", unit="batch")
    relevance = logits = None
    kept_targets = torch.empty(n, dtype=torch.long)
    for start in starts:
        rows = slice(start, min(start + batch_size, n))
        batch = to_tensor(images[rows], norm) if raw else images[rows]
        batch_targets = targets if all_targets is None else all_targets[rows]
        expl = explainer.attribute(batch.to(explainer.device), batch_targets)  # type: ignore[union-attr]
        r = expl.relevance.sum(1) if channels == "sum" else expl.relevance
        r = _pool_sum(r, pool).float().cpu()
        if relevance is None or logits is None:
            relevance = torch.empty((n, *r.shape[1:]), dtype=torch.float32)
            logits = torch.empty((n, expl.logits.shape[1]), dtype=expl.logits.dtype)
        relevance[rows] = r
        logits[rows] = expl.logits.cpu()
        kept_targets[rows] = expl.targets.cpu()
    assert relevance is not None and logits is not None
    return Explanation(relevance, logits, kept_targets)
