"""What the transplant test carries from a donor sign to a recipient: a window, in any place or its own, the most
relevant pixels, the colours.

The transplant test (:mod:`klugerhans.audit.transplant`) asks whether a small part of a class's evidence is enough to
turn other classes' signs into it. What "a small part" is depends on the shortcut's shape, so the test has probes:

- ``window``: the ``k x k`` window with the most positive relevance, pasted anywhere on the recipient's sign (the
  whole image where there is no sign box; or in place, see ``placement``). Finds compact artefacts that work wherever
  they are: a sticker, a patch, a text mark.
- ``place``: the same window pasted where it was cut. Finds artefacts bound to a place: a frame along the sign's
  edge (its corner window), a source tag or watermark in the image's corner, which a CNN with zero padding learns
  *there*. It also carries a class's aligned parts into place (the "5" of a 50 km/h sign onto another speed limit),
  which the broad hijack rate discounts (:mod:`klugerhans.audit.breadth`).
- ``pixels`` (opt-in): the ``k * k`` pixels with the most positive relevance, wherever they are, pasted at the same
  places. Finds thin or spread artefacts that no window holds. It is off by default because it carries a class's own
  shape into place *broadly*: on a synthetic VGG with a cast on class 17, the 64 most relevant pixels of the clean
  class 25 reached a broad hijack rate of 0.147 (p = 3e-6), above the flag threshold; ``place`` finds frames instead.
- ``ring``: the outer band of the donor's sign box (its outer ``ring`` share of the box's shorter side; the image's
  border where there is no box), stretched onto the recipient's box band. Finds frames: a line along the sign's edge
  that no window holds and whose corner alone (``place``) turns few signs. A sign's band is mostly background and the
  few points where its outline touches the box; the control is the band of a correctly classified image of another
  class, so a class whose outline is merely a sign's outline does not hijack more than its control.
- ``colour``: the donor's colour statistics (per-channel mean and standard deviation, the colour transfer of
  Reinhard et al. 2001, "Color Transfer between Images", here in RGB) imposed on the recipient. Finds global artefacts
  that relevance spreads over the whole image: a colour cast, a tint of one camera or lab. Control: the colour
  statistics of a correctly classified image of another class. A class that its colour tells apart from a few
  look-alikes (a red disc beside a green one) hijacks only those, and its broad rate stays near 0. Colour statistics
  also carry some of a shape (how much of the image is coloured), which with few classes the breadth cannot discount:
  in a four-class toy world (tests/test_bring_your_own.py) the filled squares' colours turn a third of the other
  shapes, significantly; what keeps such a class unflagged is that it does not stand apart from the model's other
  classes (:mod:`klugerhans.audit.ranking`).

Each probe has its own paired control on the same recipients, so each is read the same way: hijack rate, control
rate, one-sided exact McNemar test; the broad hijack rate says how widely it hijacks (:mod:`klugerhans.audit.breadth`).
"""

from __future__ import annotations

import numpy as np
import torch

from klugerhans.errors import KlugerhansError

__all__ = [
    "DEFAULT_PROBES",
    "IN_PLACE",
    "PROBES",
    "best_windows",
    "check_probes",
    "paste_patches",
    "paste_pixels",
    "paste_rings",
    "random_pixels",
    "random_windows",
    "top_pixels",
    "transfer_colour",
    "unpack_pixels",
]

PROBES: tuple[str, ...] = ("window", "place", "pixels", "ring", "colour")
"""Transplant probes, in the order a tie between their hijack rates is broken."""
DEFAULT_PROBES: tuple[str, ...] = ("window", "place", "ring", "colour")
"""Probes an audit runs unless told otherwise ("pixels" is opt-in: see the module docstring)."""

IN_PLACE: frozenset[str] = frozenset({"place", "pixels"})
"""Probes that paste a part where it was cut: besides artefacts bound to a place, they carry an object's own aligned
parts (a pictogram where it belongs), so a class that leads by them alone is told from a shortcut by whether another
probe acts too (:mod:`klugerhans.audit.ranking`)."""


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


def paste_rings(
    recipients: np.ndarray,
    donors: np.ndarray,
    recipient_boxes: np.ndarray,
    donor_boxes: np.ndarray,
    share: float,
) -> np.ndarray:
    """A copy of ``recipients`` whose sign-box band holds the donor's band, stretched from box to box.

    The band is the box's pixels within ``max(1, round(share * shorter side))`` of its edge; each band pixel of the
    recipient takes the donor pixel at the same relative place in the donor's box (nearest neighbour).

    Args:
        recipients: (N, S, S, 3) uint8 images (not modified).
        donors: (N, S, S, 3) uint8 images.
        recipient_boxes, donor_boxes: (N, 4) sign boxes ``(x0, y0, x1, y1)``, clipped to the image.
        share: band width as a share of the recipient box's shorter side, in (0, 0.5].
    """
    out = np.array(recipients, copy=True)
    size = out.shape[1]
    for i in range(len(out)):
        rx0, ry0, rx1, ry1 = _pixel_box(recipient_boxes[i], size)
        dx0, dy0, dx1, dy1 = _pixel_box(donor_boxes[i], size)
        h, w = ry1 - ry0, rx1 - rx0
        band = max(1, round(share * min(h, w)))
        ys, xs = np.mgrid[0:h, 0:w]
        ring = (ys < band) | (ys >= h - band) | (xs < band) | (xs >= w - band)
        # the centre of each recipient pixel, at the same relative place in the donor's box
        sy = np.minimum(dy0 + ((ys[ring] + 0.5) * (dy1 - dy0) / h).astype(np.int64), dy1 - 1)
        sx = np.minimum(dx0 + ((xs[ring] + 0.5) * (dx1 - dx0) / w).astype(np.int64), dx1 - 1)
        out[i, ry0 + ys[ring], rx0 + xs[ring]] = donors[i, sy, sx]
    return out


def _pixel_box(box: np.ndarray, size: int) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)`` of a box as whole pixels inside a ``size`` image, at least one pixel wide."""
    x0, y0 = (min(max(int(np.floor(v)), 0), size - 1) for v in box[:2])
    x1, y1 = (min(max(int(np.ceil(v)), lo + 1), size) for v, lo in zip(box[2:], (x0, y0), strict=True))
    return x0, y0, x1, y1


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


def best_windows(relevance: torch.Tensor | np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
    """Locate the ``side x side`` window with the highest summed positive relevance in each map.

    Args:
        relevance: (N, H, W) heatmaps.
        side: window side in pixels.

    Returns:
        ``(corners, share)``: (N, 2) int64 top-left ``(y, x)`` (first in raster order on ties) and (N,) share of each
        map's positive relevance inside its window (0 for maps without positive relevance).
    """
    r = torch.as_tensor(relevance).float()
    if r.ndim != 3 or not 1 <= side <= min(r.shape[1:]):
        raise KlugerhansError(f"need (N, H, W) maps at least {side} px wide, got {tuple(r.shape)}")
    pos = torch.nan_to_num(r, nan=0.0, posinf=0.0, neginf=0.0).clamp(min=0)
    sums = torch.nn.functional.avg_pool2d(pos[:, None], side, stride=1)[:, 0] * side**2
    flat = sums.flatten(1)
    best = flat.argmax(dim=1)
    width = sums.shape[2]
    corners = torch.stack([best // width, best % width], dim=1).numpy().astype(np.int64)
    total = pos.flatten(1).sum(1)
    inside = flat.gather(1, best[:, None])[:, 0]
    share = torch.where(total > 0, inside / total.clamp(min=1e-30), torch.zeros_like(total))
    return corners, share.clamp(0, 1).numpy().astype(np.float64)


def random_windows(
    boxes: np.ndarray,
    side: int,
    image_size: int,
    rng: np.random.Generator,
    avoid: np.ndarray | None = None,
    tries: int = 32,
) -> np.ndarray:
    """(N, 2) int64 top-left ``(y, x)`` of uniformly drawn ``side x side`` windows inside each sign box.

    Where a box is smaller than the window, the window is centred on it; windows always lie inside the image.
    With ``avoid`` ((N, 2) corners of windows of the same side), windows overlapping those are redrawn up to
    ``tries`` times (rejection sampling: uniform over the non-overlapping positions); where none is found within
    the tries (the box is too small), the last draw is kept.
    """
    out = _draw_windows(boxes, side, image_size, rng)
    if avoid is None:
        return out
    avoid = np.asarray(avoid, dtype=np.int64)
    for _ in range(tries):
        clash = (np.abs(out - avoid) < side).all(axis=1)
        if not clash.any():
            break
        out[clash] = _draw_windows(np.asarray(boxes)[clash], side, image_size, rng)
    return out


def _draw_windows(boxes: np.ndarray, side: int, image_size: int, rng: np.random.Generator) -> np.ndarray:
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    lo_x, lo_y = np.floor(b[:, 0]), np.floor(b[:, 1])
    hi_x, hi_y = np.ceil(b[:, 2]) - side, np.ceil(b[:, 3]) - side
    cx, cy = (b[:, 0] + b[:, 2] - side) / 2, (b[:, 1] + b[:, 3] - side) / 2
    lo_x, hi_x = np.where(hi_x < lo_x, cx, lo_x), np.where(hi_x < lo_x, cx, hi_x)
    lo_y, hi_y = np.where(hi_y < lo_y, cy, lo_y), np.where(hi_y < lo_y, cy, hi_y)
    x = np.rint(lo_x + rng.random(len(b)) * (hi_x - lo_x))
    y = np.rint(lo_y + rng.random(len(b)) * (hi_y - lo_y))
    top = image_size - side
    return np.stack([np.clip(y, 0, top), np.clip(x, 0, top)], axis=1).astype(np.int64)


def paste_patches(
    recipients: np.ndarray, donors: np.ndarray, src: np.ndarray, dst: np.ndarray, side: int
) -> np.ndarray:
    """Copy the ``side x side`` window at ``src[i]`` of ``donors[i]`` to ``dst[i]`` of a copy of ``recipients[i]``.

    Args:
        recipients: (N, S, S, 3) uint8 images (not modified).
        donors: (N, S, S, 3) uint8 images.
        src: (N, 2) top-left ``(y, x)`` in the donors.
        dst: (N, 2) top-left ``(y, x)`` in the recipients.
        side: window side in pixels.
    """
    out = np.array(recipients, copy=True)
    for i, ((sy, sx), (dy, dx)) in enumerate(zip(src, dst, strict=True)):
        out[i, dy : dy + side, dx : dx + side] = donors[i, sy : sy + side, sx : sx + side]
    return out
