"""What the transplant test carries from a donor sign to a recipient: a window, the most relevant pixels, the colours.

The transplant test (:mod:`klugerhans.audit.transplant`) asks whether a small part of a class's evidence is enough to
turn other classes' signs into it. What "a small part" is depends on the shortcut's shape, so the test has probes:

- ``window``: the ``k x k`` window with the most positive relevance, pasted anywhere on the recipient's sign (or in
  place, see ``placement``). Finds compact artefacts: a sticker, a patch, a text mark.
- ``pixels`` (opt-in): the ``k * k`` pixels with the most positive relevance, wherever they are, pasted at the same
  places (the same count of pixels as the window, any shape). Finds thin or spread artefacts that no window holds: a
  frame or border line, a ruler along an edge. Control: as many pixels drawn at random inside the donor's sign box,
  outside the relevant ones, pasted at their places. It is off by default because it also carries a class's own
  shape into place: on clean models the 64 most relevant pixels of a cross (the outside-klugerhans ResNet test) turned
  38% of other shapes into it, and those of a 50 km/h sign 18.5% of other GTSRB signs (the released control).
- ``colour`` (opt-in): the donor's colour statistics (per-channel mean and standard deviation, the colour transfer
  of Reinhard et al. 2001, "Color Transfer between Images", here in RGB) imposed on the recipient. Finds global
  artefacts that relevance spreads over the whole image: a colour cast, a tint of one camera or lab. Control: the
  colour statistics of a correctly classified image of another class. It is off by default because it also reports
  classes that their colours legitimately tell apart: a toy set of coloured squares (every class), and in the
  outside-klugerhans ResNet test a class of filled squares, whose images carry more colour than the outlines of the
  other classes (hijack rate 0.45 against a control of 0.26).

Each probe has its own paired control on the same recipients, so each is read the same way: hijack rate, control
rate, one-sided exact McNemar test. On the benchmark suite (docs/BENCH.md, the models' target classes) the window
gave the two models that a frame flipped 98-100% of the time a hijack rate of 0.04-0.065 and the four cast models
(flip rates 56-95%) 0.0-0.065; the pixels probe gave the frames 0.49-0.57 and the colour probe the casts 0.225-0.55.
"""

from __future__ import annotations

import numpy as np
import torch

from klugerhans.errors import KlugerhansError

__all__ = [
    "DEFAULT_PROBES",
    "PROBES",
    "check_probes",
    "paste_pixels",
    "random_pixels",
    "top_pixels",
    "transfer_colour",
    "unpack_pixels",
]

PROBES: tuple[str, ...] = ("window", "pixels", "colour")
"""Transplant probes, in the order a tie between their hijack rates is broken."""
DEFAULT_PROBES: tuple[str, ...] = ("window",)
"""Probes an audit runs unless told otherwise ("pixels" and "colour" are opt-in: see the module docstring)."""


def check_probes(probes: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """``probes`` as a tuple, in :data:`PROBES` order; a one-line error for an unknown or empty choice."""
    unknown = sorted(set(probes) - set(PROBES))
    if unknown:
        raise KlugerhansError(f"unknown transplant probe(s) {', '.join(unknown)}: choose from {', '.join(PROBES)}")
    if not probes:
        raise KlugerhansError(f"give at least one transplant probe ({', '.join(PROBES)})")
    return tuple(p for p in PROBES if p in probes)


def top_pixels(relevance: torch.Tensor | np.ndarray, count: int) -> np.ndarray:
    """The ``count`` pixels of highest positive relevance of each map, as packed bit masks.

    Args:
        relevance: (N, H, W) heatmaps.
        count: pixels per map (fewer where a map has fewer positive pixels).

    Returns:
        (N, ceil(H * W / 8)) uint8, ``np.packbits`` of the flattened (H, W) masks (1/8 of a bool mask's memory).
    """
    r = torch.nan_to_num(torch.as_tensor(relevance).float(), nan=0.0, posinf=0.0, neginf=0.0)
    if r.ndim != 3 or not 1 <= count <= r.shape[1] * r.shape[2]:
        raise KlugerhansError(f"need (N, H, W) maps with at least {count} pixels, got {tuple(r.shape)}")
    flat = r.flatten(1)
    values, where = flat.topk(count, dim=1)
    mask = torch.zeros_like(flat, dtype=torch.bool)
    mask.scatter_(1, where, values > 0)
    return np.packbits(mask.numpy(), axis=1)


def unpack_pixels(packed: np.ndarray, size: int) -> np.ndarray:
    """(N, size, size) bool masks from :func:`top_pixels`' packed rows."""
    return (
        np.unpackbits(np.asarray(packed, dtype=np.uint8), axis=1, count=size * size)
        .astype(bool)
        .reshape(-1, size, size)
    )


def paste_pixels(recipients: np.ndarray, donors: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """A copy of ``recipients`` with ``donors``' pixels where ``masks`` is set (same places).

    Args:
        recipients: (N, S, S, 3) uint8 images (not modified).
        donors: (N, S, S, 3) uint8 images.
        masks: (N, S, S) bool.
    """
    out = np.array(recipients, copy=True)
    out[masks] = donors[masks]
    return out


def random_pixels(masks: np.ndarray, boxes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Masks with as many pixels as each of ``masks``, drawn uniformly inside each box and outside the mask.

    Where the box outside the mask has too few pixels, the rest is drawn from the remainder of the image.

    Args:
        masks: (N, S, S) bool, the relevant pixels.
        boxes: (N, 4) sign boxes ``(x0, y0, x1, y1)``.
        rng: random source.
    """
    n, size = masks.shape[0], masks.shape[1]
    out = np.zeros_like(masks, dtype=bool)
    ys, xs = np.mgrid[0:size, 0:size]
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    for i in range(n):
        want = int(masks[i].sum())
        if want == 0:
            continue
        x0, y0, x1, y1 = b[i]
        inside = (xs >= np.floor(x0)) & (xs < np.ceil(x1)) & (ys >= np.floor(y0)) & (ys < np.ceil(y1))
        free = ~masks[i]
        first = np.flatnonzero((inside & free).ravel())
        rest = np.flatnonzero((~inside & free).ravel())
        take = rng.permutation(first)[:want]
        if len(take) < want:
            take = np.concatenate([take, rng.permutation(rest)[: want - len(take)]])
        out[i].ravel()[take] = True
    return out


def transfer_colour(recipients: np.ndarray, donors: np.ndarray) -> np.ndarray:
    """Give each recipient its donor's per-channel mean and standard deviation (Reinhard et al. 2001, in RGB).

    Args:
        recipients: (N, S, S, 3) uint8 images.
        donors: (N, S, S, 3) uint8 images.

    Returns:
        (N, S, S, 3) uint8, ``(recipient - mean_r) / std_r * std_d + mean_d`` per channel, clipped and rounded.
    """
    a = np.asarray(recipients)
    shape = a.shape
    x = a.reshape(shape[0], -1, shape[-1]).astype(np.float32)
    y = np.asarray(donors).reshape(shape[0], -1, shape[-1]).astype(np.float32)
    mean_a, std_a = _moments(x)
    mean_b, std_b = _moments(y)
    # +1 keeps a flat channel (std 0) finite; on 0..255 values it changes the scale by less than 1%
    scale = (std_b + 1.0) / (std_a + 1.0)
    x *= scale[:, None]
    x += (mean_b - mean_a * scale)[:, None]
    return np.clip(np.rint(x), 0, 255).astype(np.uint8).reshape(shape)


def _moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-image, per-channel mean and standard deviation of (N, P, C) values."""
    mean = x.mean(axis=1)
    var = np.maximum(np.einsum("npc,npc->nc", x, x) / x.shape[1] - mean * mean, 0.0)
    return mean, np.sqrt(var)
