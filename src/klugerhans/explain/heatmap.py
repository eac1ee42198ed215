"""Render signed relevance maps as RGB heatmaps: red = evidence for the class, blue = against.

Normalisation is symmetric: relevance is divided by its largest magnitude (or a given ``vmax``), so zero always
maps to the middle of the colour map and the sign of a pixel is never hidden by an offset. Colour maps
(piecewise linear, zero at exactly 0.5):

* ``bwr``: blue - white - red (zennit's ``bwr``); zero is white. The default.
* ``coldnhot``: cyan - blue - black - red - yellow - white (zennit's ``coldnhot``): zero is black, strong
  positive relevance runs through red and yellow to white, negative through blue to cyan.
* ``seismic``: dark blue - blue - white - red - dark red, as matplotlib's ``seismic`` (whose ends are not
  symmetric: 30% blue, 50% red); zero is white.

Non-finite relevance counts as zero and an all-zero map renders as the neutral colour, so no output is ever NaN.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from PIL import Image

from klugerhans.errors import KlugerhansError
from klugerhans.io import atomic_write_bytes

__all__ = ["CMAPS", "Colormap", "overlay_heatmap", "render_heatmap", "save_png"]


@dataclass(frozen=True)
class Colormap:
    """A piecewise-linear colour map on [0, 1] given by RGB nodes (0..255)."""

    positions: tuple[float, ...]
    """Increasing node positions from 0 to 1."""
    colors: tuple[tuple[float, float, float], ...]
    """RGB colour at each node."""

    def __post_init__(self) -> None:
        p = np.asarray(self.positions)
        if len(p) != len(self.colors) or len(p) < 2 or p[0] != 0 or p[-1] != 1 or np.any(np.diff(p) <= 0):
            raise ValueError("colour map nodes need increasing positions from 0 to 1, one colour each")

    def __call__(self, t: np.ndarray) -> np.ndarray:
        """Values in [0, 1] (any shape) -> float RGB in 0..255 with a trailing axis of 3."""
        t = np.clip(t, 0.0, 1.0)
        colors = np.asarray(self.colors, dtype=np.float64)
        return np.stack([np.interp(t, self.positions, colors[:, c]) for c in range(3)], axis=-1)


CMAPS: dict[str, Colormap] = {
    "bwr": Colormap((0.0, 0.5, 1.0), ((0, 0, 255), (255, 255, 255), (255, 0, 0))),
    "coldnhot": Colormap(
        (0.0, 0.25, 0.5, 2 / 3, 5 / 6, 1.0),
        ((0, 255, 255), (0, 0, 255), (0, 0, 0), (255, 0, 0), (255, 255, 0), (255, 255, 255)),
    ),
    "seismic": Colormap(
        (0.0, 0.25, 0.5, 0.75, 1.0),
        ((0, 0, 76.5), (0, 0, 255), (255, 255, 255), (255, 0, 0), (127.5, 0, 0)),
    ),
}
"""Colour maps by name."""


def _colormap(cmap: str | Colormap) -> Colormap:
    if isinstance(cmap, Colormap):
        return cmap
    if cmap not in CMAPS:
        raise KlugerhansError(f"unknown colour map {cmap!r}: choose one of {', '.join(sorted(CMAPS))}")
    return CMAPS[cmap]


def _as_map(relevance: np.ndarray | torch.Tensor) -> np.ndarray:
    """(H, W) or (C, H, W) relevance -> finite float64 (H, W), summed over channels."""
    r = relevance.detach().cpu().double().numpy() if isinstance(relevance, torch.Tensor) else np.asarray(relevance)
    channels = r.ndim == 3 and r.shape[0] in (1, 3)
    if not (r.ndim == 2 or channels) or r.size == 0 or not np.issubdtype(r.dtype, np.number):
        raise KlugerhansError(f"relevance must be a numeric (H, W) or (3, H, W) array, got shape {r.shape}")
    # Zero the non-finite values and widen to float64 *before* summing channels: inf - inf would be NaN, and
    # float16/float32 sums overflow to inf (which would then be drawn as zero).
    r = r.astype(np.float64)
    r = np.where(np.isfinite(r), r, 0.0)
    if channels:
        with np.errstate(over="ignore"):
            r = r.sum(axis=0)
        # A sum of finite values is infinite only by overflow: keep its sign, at the largest float.
        r = np.where(np.isinf(r), np.sign(r) * np.finfo(np.float64).max, r)
    return r


def _size(size: int | Sequence[int] | None, shape: tuple[int, ...]) -> tuple[int, int]:
    if size is None:
        return (shape[0], shape[1])
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    if h < 1 or w < 1:
        raise KlugerhansError(f"heatmap size must be positive, got {size}")
    return (int(h), int(w))


def render_heatmap(
    relevance: np.ndarray | torch.Tensor,
    cmap: str | Colormap = "bwr",
    size: int | Sequence[int] | None = None,
    resample: Literal["nearest", "bilinear"] = "nearest",
    vmax: float | None = None,
) -> np.ndarray:
    """Colour a relevance map: positive red, negative blue, zero the colour map's middle.

    Args:
        relevance: (H, W) map or (3, H, W) per-channel relevance (summed over channels first).
        cmap: ``"bwr"``, ``"coldnhot"``, ``"seismic"`` or a :class:`Colormap`.
        size: output side (int) or (height, width); None keeps (H, W).
        resample: upsampling for display, ``"nearest"`` (crisp pixels) or ``"bilinear"``.
        vmax: relevance magnitude mapped to the ends of the colour map (to share a scale across heatmaps);
            default the map's own largest ``|R|``.

    Returns:
        (h, w, 3) uint8 RGB.
    """
    r = _as_map(relevance)
    scale = float(np.abs(r).max()) if vmax is None else float(vmax)
    if not np.isfinite(scale) or scale < 0:
        raise KlugerhansError(f"vmax must be a finite non-negative number, got {vmax}")
    v = np.clip(r / scale, -1.0, 1.0) if scale > 0 else np.zeros_like(r)
    h, w = _size(size, r.shape)
    if (h, w) != r.shape:
        if resample not in ("nearest", "bilinear"):
            raise KlugerhansError(f"resample must be 'nearest' or 'bilinear', got {resample!r}")
        method = Image.Resampling.NEAREST if resample == "nearest" else Image.Resampling.BILINEAR
        # resample the values, not the colours, so every output pixel is a colour of the map
        v = np.asarray(Image.fromarray(v.astype(np.float32), mode="F").resize((w, h), method), dtype=np.float64)
        v = np.clip(v, -1.0, 1.0)
    rgb = _colormap(cmap)((v + 1.0) / 2.0)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def overlay_heatmap(
    image: np.ndarray,
    relevance: np.ndarray | torch.Tensor,
    alpha: float = 0.5,
    cmap: str | Colormap = "bwr",
    vmax: float | None = None,
) -> np.ndarray:
    """Blend a heatmap over an image: ``(1 - alpha) * image + alpha * heatmap``.

    Args:
        image: (H, W, 3) uint8 RGB.
        relevance: (h, w) or (3, h, w) relevance, bilinearly resized to (H, W) when the sizes differ.
        alpha: heatmap opacity in [0, 1].
        cmap: colour map, see :func:`render_heatmap`.
        vmax: shared relevance scale, see :func:`render_heatmap`.

    Returns:
        (H, W, 3) uint8 RGB.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise KlugerhansError(f"image must be (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
    if not 0.0 <= alpha <= 1.0:
        raise KlugerhansError(f"alpha must be in [0, 1], got {alpha}")
    heat = render_heatmap(relevance, cmap, size=image.shape[:2], resample="bilinear", vmax=vmax)
    blend = (1.0 - alpha) * image.astype(np.float64) + alpha * heat.astype(np.float64)
    return np.clip(np.rint(blend), 0, 255).astype(np.uint8)


def save_png(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write a (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA uint8 array as PNG, atomically."""
    array = np.asarray(array)
    if array.dtype != np.uint8 or not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))):
        raise KlugerhansError(f"PNG data must be (H, W), (H, W, 3) or (H, W, 4) uint8, got {array.shape} {array.dtype}")
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())
