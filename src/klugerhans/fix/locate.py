"""Locate a class's artefact from what LRP finds, without ground-truth masks.

For every image of the suspicious class, the LRP heatmap explaining that class (Bach et al. 2015; output relevance 1,
not the logit, so that an image whose logit is negative still shows where the class's evidence sits) is smoothed over
3 x 3 pixels (the Flat rule of the first layer spreads relevance onto a pixel's neighbours) and the artefact is taken
to be the connected blob of strongly positive relevance around the heatmap's peak: the pixels above ``threshold`` x
the peak that are 4-connected to it, dilated by ``dilate`` pixels so that the blob's soft rim is covered too, and at
most ``max_share`` of the image. A Clever Hans model concentrates its relevance on the artefact (that is what the
audit found), so this blob is where the artefact is; a model that uses the whole sign yields a spread-out heatmap and a
blob that the caps keep small.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from klugerhans.errors import KlugerhansError
from klugerhans.explain.composites import DEFAULT_COMPOSITE, Fallback
from klugerhans.heatmaps.dataset import explain_dataset
from klugerhans.models.classifier import Classifier

__all__ = ["LocateConfig", "LocatedArtefacts", "blob_masks", "locate_artefacts"]


@dataclass(frozen=True)
class LocateConfig:
    """How the artefact is cut out of a heatmap."""

    threshold: float = 0.3
    """Pixels whose smoothed positive relevance reaches this share of the map's peak can belong to the artefact."""
    dilate: int = 1
    """Grow the blob by this many pixels (the artefact's rim gets relevance too, but less)."""
    max_share: float = 0.15
    """The blob covers at most this share of the image: the most relevant pixels are kept."""
    composite: str = DEFAULT_COMPOSITE
    """LRP composite of the heatmaps."""
    batch_size: int = 64
    """Images per explanation pass."""

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise KlugerhansError(f"locate threshold must be in (0, 1), got {self.threshold}")
        if not 0 <= self.dilate <= 8:
            raise KlugerhansError(f"locate dilation must be 0..8 pixels, got {self.dilate}")
        if not 0.0 < self.max_share <= 0.5:
            raise KlugerhansError(f"locate max share must be in (0, 0.5], got {self.max_share}")


@dataclass(frozen=True)
class LocatedArtefacts:
    """Where LRP says the artefact is, per image."""

    masks: np.ndarray
    """(N, S, S) bool: the located artefact pixels."""
    relevance: np.ndarray
    """(N, S, S) float32 heatmaps (channels summed) that the masks were cut from."""
    share: np.ndarray
    """(N,) share of each map's positive relevance inside its mask."""


def _grow(mask: torch.Tensor, allowed: torch.Tensor, steps: int) -> torch.Tensor:
    """Flood ``mask`` (N, 1, S, S) float into 4-connected ``allowed`` pixels, ``steps`` times."""
    kernel = torch.tensor([[0.0, 1.0, 0.0], [1.0, 1.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3)
    for _ in range(steps):
        grown = (F.conv2d(mask, kernel, padding=1) > 0).float() * allowed
        if torch.equal(grown, mask):
            break
        mask = grown
    return mask


def blob_masks(relevance: np.ndarray | torch.Tensor, config: LocateConfig | None = None) -> np.ndarray:
    """Cut the blob of strong positive relevance around each heatmap's peak (see the module docstring).

    Args:
        relevance: (N, S, S) heatmaps.
        config: threshold, dilation and size cap.

    Returns:
        (N, S, S) bool masks; all False for maps without positive relevance.
    """
    config = config or LocateConfig()
    r = torch.as_tensor(np.asarray(relevance), dtype=torch.float32)
    if r.ndim != 3:
        raise KlugerhansError(f"expected (N, S, S) heatmaps, got shape {tuple(r.shape)}")
    n, h, w = r.shape
    if n == 0:
        return np.zeros((0, h, w), dtype=bool)
    pos = torch.nan_to_num(r, nan=0.0, posinf=0.0, neginf=0.0).clamp(min=0)[:, None]
    smooth = F.avg_pool2d(pos, 3, stride=1, padding=1, count_include_pad=False)
    peak = smooth.flatten(1).max(dim=1).values.view(n, 1, 1, 1)
    allowed = ((smooth >= config.threshold * peak) & (peak > 0)).float()
    seed = ((smooth == peak) & (peak > 0)).float()
    blob = _grow(seed * allowed, allowed, h * w)
    if config.dilate:
        blob = (F.max_pool2d(blob, 2 * config.dilate + 1, stride=1, padding=config.dilate) > 0).float()
    # Cap the area: keep the most relevant pixels of the blob.
    cap = max(1, int(config.max_share * h * w))
    score = torch.where(blob > 0, smooth, torch.full_like(smooth, -1.0)).flatten(1)
    keep = torch.zeros_like(score, dtype=torch.bool)
    top = score.topk(min(cap, h * w), dim=1)
    keep.scatter_(1, top.indices, top.values >= 0)
    out = keep.view(n, h, w) & (blob[:, 0] > 0)
    return out.numpy()


def locate_artefacts(
    clf: Classifier,
    images: np.ndarray,
    class_id: int,
    config: LocateConfig | None = None,
    progress: bool = False,
    *,
    fallback: Fallback = "error",
) -> LocatedArtefacts:
    """LRP-explain ``images`` as ``class_id`` and cut the artefact blob out of each heatmap.

    Args:
        clf: the classifier under repair.
        images: (N, S, S, 3) uint8 images of the suspicious class.
        class_id: the suspicious class (the explained output).
        config: locating settings.
        progress: show a progress bar.
        fallback: an operation without an LRP rule: "error" stops, "gradient" passes gradient x input through it.
    """
    config = config or LocateConfig()
    if images.ndim != 4 or images.shape[-1] != 3:
        raise KlugerhansError(f"expected (N, S, S, 3) images, got shape {images.shape}")
    expl = explain_dataset(
        clf.model,
        images,
        targets=int(class_id),
        composite=config.composite,
        batch_size=config.batch_size,
        fallback=fallback,
        norm=clf.meta.normalization,
        progress=progress,
        init="one",
    )
    relevance = expl.relevance.float().cpu()
    relevance = relevance.sum(1) if relevance.ndim == 4 else relevance
    masks = blob_masks(relevance, config)
    pos = relevance.clamp(min=0)
    total = pos.flatten(1).sum(1)
    inside = (pos * torch.from_numpy(masks)).flatten(1).sum(1)
    share = torch.where(total > 0, inside / total.clamp(min=1e-30), torch.zeros_like(total))
    return LocatedArtefacts(masks, relevance.numpy().astype(np.float32), share.numpy().astype(np.float64))
