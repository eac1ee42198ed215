"""Faithfulness: does removing what a heatmap calls relevant actually destroy the model's evidence?

Region perturbation (Samek et al. 2017, "Evaluating the visualization of what a deep neural network has learned"):
split the image into non-overlapping ``region x region`` squares, sort them by summed relevance, most relevant first
(MoRF), and replace them one by one with uniform noise. After each step the target logit ``f(x^(k))`` is recorded.
A faithful heatmap makes it drop fast. The area over the perturbation curve,

    AOPC = 1 / (L + 1) * sum_{k=0..L} < f(x^(0)) - f(x^(k)) >_images,

summarises the curve (higher = more faithful). Every image gets the same noise for every method, so methods differ
only in the order in which they remove regions. All steps run as batched forward passes.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from klugerhans.errors import KlugerhansError
from klugerhans.models.preprocess import Normalization

__all__ = ["aopc", "region_order", "region_perturbation", "uniform_fill"]

Forward = Callable[[torch.Tensor], torch.Tensor]
"""``(N, 3, H, W) normalised -> (N, C) logits``."""


def uniform_fill(shape: tuple[int, ...], norm: Normalization | None = None, seed: int = 0) -> torch.Tensor:
    """(N, 3, H, W) uniform noise over the pixel range [0, 1], normalised like the model's inputs."""
    norm = norm or Normalization()
    gen = torch.Generator().manual_seed(seed)
    noise = torch.rand(shape, generator=gen)
    mean = torch.tensor(norm.mean).view(1, 3, 1, 1)
    std = torch.tensor(norm.std).view(1, 3, 1, 1)
    return (noise - mean) / std


def region_order(relevance: torch.Tensor | np.ndarray, region: int) -> torch.Tensor:
    """(N, H, W) relevance -> (N, G) region indices (raster order on the grid) by summed relevance, highest first.

    Ties keep raster order (a stable sort).
    """
    r = torch.as_tensor(relevance).float()
    if r.ndim != 3:
        raise KlugerhansError(f"relevance must be (N, H, W), got {tuple(r.shape)}")
    if region < 1 or r.shape[1] % region or r.shape[2] % region:
        raise KlugerhansError(f"region size {region} must divide the heatmap size {tuple(r.shape[1:])}")
    r = torch.nan_to_num(r, nan=0.0, posinf=0.0, neginf=0.0)
    sums = torch.nn.functional.avg_pool2d(r[:, None], region)[:, 0].flatten(1)
    return torch.sort(sums, dim=1, descending=True, stable=True).indices


def region_perturbation(
    forward: Forward,
    x: torch.Tensor,
    relevance: torch.Tensor | np.ndarray,
    targets: torch.Tensor | np.ndarray,
    fill: torch.Tensor,
    region: int = 4,
    steps: int = 16,
    batch_size: int = 256,
) -> torch.Tensor:
    """Remove regions most relevant first and record the target logit after each step.

    Args:
        forward: the model, ``(N, 3, H, W) -> (N, C)`` logits.
        x: (N, 3, H, W) normalised images.
        relevance: (N, H, W) heatmaps of ``targets``.
        targets: (N,) explained class ids.
        fill: (N, 3, H, W) replacement values (e.g. :func:`uniform_fill`).
        region: side of the square regions in pixels (must divide H and W).
        steps: number of regions removed, L (at most the number of regions).
        batch_size: images per forward pass.

    Returns:
        (N, steps + 1) float32 target logits; column 0 is the unperturbed image.
    """
    if x.ndim != 4 or fill.shape != x.shape:
        raise KlugerhansError(f"images {tuple(x.shape)} and fill {tuple(fill.shape)} must both be (N, 3, H, W)")
    order = region_order(relevance, region)
    n, _, h, w = x.shape
    if order.shape != (n, (h // region) * (w // region)):
        raise KlugerhansError(f"relevance maps {tuple(torch.as_tensor(relevance).shape)} do not match the images")
    grid = order.shape[1]
    if not 1 <= steps <= grid:
        raise KlugerhansError(f"steps must be between 1 and the number of regions ({grid}), got {steps}")
    t = torch.as_tensor(targets).long()
    rows = torch.arange(n)
    removed = torch.zeros(n, grid, dtype=torch.bool)
    current = x.clone()
    curves = torch.empty(n, steps + 1)
    for k in range(steps + 1):
        if k:
            removed[rows, order[:, k - 1]] = True
            cells = removed.view(n, h // region, w // region)
            pixels = cells.repeat_interleave(region, 1).repeat_interleave(region, 2)[:, None]
            current = torch.where(pixels, fill, x)
        with torch.no_grad():
            for start in range(0, n, batch_size):
                sl = slice(start, start + batch_size)
                logits = forward(current[sl]).float().cpu()
                curves[sl, k] = logits[torch.arange(len(logits)), t[sl]]
    return curves


def aopc(curves: torch.Tensor | np.ndarray) -> float:
    """Area over the MoRF perturbation curve (Samek et al. 2017) from (N, L + 1) logits; NaN for no images."""
    c = torch.as_tensor(curves, dtype=torch.float64)
    if c.ndim != 2 or c.shape[1] < 1:
        raise KlugerhansError(f"curves must be (N, L + 1), got {tuple(c.shape)}")
    if len(c) == 0:
        return float("nan")
    return float((c[:, :1] - c).mean())
