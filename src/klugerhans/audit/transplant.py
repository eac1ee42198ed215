"""The relevance-guided transplant test: can a small patch of class ``c`` hijack other signs into ``c``?

A model that decides class ``c`` from the whole sign needs the whole sign; a model that learned a shortcut (a
sticker, a watermark) needs only the shortcut. So: cut the ``k x k`` window with the most positive relevance from
correctly classified images of ``c`` (the donors; relevance explaining ``c``), paste it onto correctly classified
images of other classes (the recipients), and count how often the prediction becomes ``c`` (the hijack rate). As a
control, paste a window of the same size cut at a random place inside the donor's sign box, not overlapping its most
relevant window (so the control never carries part of what is tested), onto the *same* recipients at the *same*
place. A shortcut shows as a hijack rate far above the control's; the design is paired, so
the one-sided exact McNemar test (a binomial test on the discordant pairs) says whether the gap is more than chance.
The window is one of the test's probes (:mod:`klugerhans.audit.probes`: also the most relevant pixels in any shape,
and the colours); every probe runs on the same donors and recipients with its own control, and a class keeps the
probe that hijacks most.

Where the patch goes (``placement``): on signs, anywhere inside the recipient's sign box ("random"): a sticker works
wherever it is glued, while a legitimate part of a sign (a digit) only works in its place, and every sign has its
digits in the same place. Photos have no box (the box is the whole image) and their artefacts (a watermark, a ruler,
a corner mark) sit at fixed places: a CNN with zero padding learns them *there*, and a corner mark pasted in the
middle does nothing. So "auto" pastes where the patch was cut ("same") when every box is the whole image, and at
random otherwise; the control patch always goes to the same place as the relevant one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import torch

from klugerhans.audit.probes import (
    DEFAULT_PROBES,
    check_probes,
    paste_pixels,
    random_pixels,
    transfer_colour,
    unpack_pixels,
)
from klugerhans.errors import KlugerhansError

__all__ = [
    "TransplantConfig",
    "TransplantResult",
    "best_windows",
    "paste_patches",
    "patch_side",
    "random_windows",
    "resolve_placement",
    "transplant_class",
]

Placement = Literal["auto", "random", "same"]
Predict = Callable[[np.ndarray], np.ndarray]
"""``(N, S, S, 3) uint8 -> (N,) int64`` predicted class ids."""


@dataclass(frozen=True)
class TransplantConfig:
    """Settings of the transplant test."""

    patch: float = 0.25
    """Patch side as a share of the image side (0.25: 8 x 8 px of a 32 px image, 1/16 of its area)."""
    recipients: int = 200
    """Recipient images per tested class (correctly classified images of other classes)."""
    placement: Placement = "random"
    """Where the patch goes on a recipient: "random" (anywhere inside its sign box), "same" (where it was cut) or
    "auto" (:func:`resolve_placement`). Random placement asks whether the patch works *anywhere*, as a sticker does;
    legitimate parts of a sign (a digit) only work in their place."""
    min_donors: int = 3
    """Classes with fewer correctly classified images are not tested."""
    n_examples: int = 4
    """Transplanted images kept per class for the report."""
    seed: int = 0
    """Seed of donors, recipients and positions."""
    probes: tuple[str, ...] = DEFAULT_PROBES
    """What is carried over (:mod:`klugerhans.audit.probes`): "window", "pixels", "colour"; a class's hijack rate
    is that of the probe that hijacks most."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "probes", check_probes(tuple(self.probes)))
        if not 0.0 < self.patch <= 0.5:
            raise KlugerhansError(f"transplant patch must be in (0, 0.5] of the image side, got {self.patch}")
        if self.recipients < 1 or self.min_donors < 1 or self.n_examples < 0:
            raise KlugerhansError("transplant recipients and donors must be at least 1")
        if self.placement not in ("auto", "random", "same"):
            raise KlugerhansError(f"placement must be 'auto', 'random' or 'same', got {self.placement!r}")


def patch_side(image_size: int, share: float) -> int:
    """Patch side in pixels for ``share`` of the image side (at least 1)."""
    return max(1, round(share * image_size))


def resolve_placement(placement: Placement, boxes: np.ndarray, image_size: int) -> Placement:
    """``placement``, with "auto" made concrete: "same" where every box is the whole image (photos: no object box,
    artefacts at fixed places), else "random" (signs: see the module docstring)."""
    if placement != "auto":
        return placement
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    whole = (b[:, :2] <= 0).all() and (b[:, 2:] >= image_size).all()
    return "same" if len(b) and whole else "random"


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


@dataclass(frozen=True)
class TransplantResult:
    """Transplant test of one class: the outcomes of the probe that hijacked most, and every probe's numbers."""

    class_id: int
    n_donors: int
    """Correctly classified images of the class that gave patches."""
    hijacked: np.ndarray
    """(R,) bool: recipient predicted as the class after the relevant patch was pasted."""
    control_hijacked: np.ndarray
    """(R,) bool: the same with the random control patch."""
    window_share: float
    """Mean share of the donors' positive relevance inside their most relevant window."""
    examples: np.ndarray
    """(e, S, S, 3) uint8 recipients with the relevant patch, for the report."""
    example_preds: np.ndarray
    """(e,) predictions on ``examples``."""
    probe: str = "window"
    """The probe these outcomes are from (the one with the highest hijack rate)."""
    by_probe: dict[str, dict[str, float]] = field(default_factory=dict)
    """Probe -> ``hijack_rate``, ``control_rate``, ``p_value`` of every probe run."""

    @property
    def n_recipients(self) -> int:
        return len(self.hijacked)

    @property
    def hijack_rate(self) -> float:
        return float(self.hijacked.mean()) if len(self.hijacked) else 0.0

    @property
    def control_rate(self) -> float:
        return float(self.control_hijacked.mean()) if len(self.control_hijacked) else 0.0

    @property
    def excess(self) -> float:
        """Hijack rate minus control rate: the part due to *what* the relevance points at."""
        return self.hijack_rate - self.control_rate

    @property
    def ratio(self) -> float:
        """Hijack rate over control rate, the control floored at one recipient (1/R) to stay finite."""
        floor = 1.0 / max(1, self.n_recipients)
        return self.hijack_rate / max(self.control_rate, floor)

    @property
    def p_value(self) -> float:
        """One-sided exact McNemar test that the relevant patch hijacks more often than the control."""
        from scipy.stats import binomtest

        only_relevant = int((self.hijacked & ~self.control_hijacked).sum())
        only_control = int((~self.hijacked & self.control_hijacked).sum())
        if only_relevant + only_control == 0:
            return 1.0
        return float(binomtest(only_relevant, only_relevant + only_control, 0.5, alternative="greater").pvalue)

    def summary(self) -> dict[str, Any]:
        """JSON-ready numbers."""
        return {
            "n_donors": self.n_donors,
            "n_recipients": self.n_recipients,
            "hijack_rate": self.hijack_rate,
            "control_rate": self.control_rate,
            "excess": self.excess,
            "ratio": self.ratio,
            "p_value": self.p_value,
            "window_share": self.window_share,
            "probe": self.probe,
            "by_probe": self.by_probe,
        }


def transplant_class(
    predict: Predict,
    class_id: int,
    images: np.ndarray,
    boxes: np.ndarray,
    donors: np.ndarray,
    donor_corners: np.ndarray,
    donor_share: np.ndarray,
    recipients: np.ndarray,
    config: TransplantConfig | None = None,
    donor_pixels: np.ndarray | None = None,
) -> TransplantResult:
    """Run the transplant test for one class with every probe of ``config`` and keep the one that hijacks most.

    Every probe uses the same recipients and donors (recipient ``i`` gets donor ``i``'s part), so their rates are
    comparable; ties go to the earlier probe in :data:`~klugerhans.audit.probes.PROBES`.

    Args:
        predict: the model on uint8 images.
        class_id: the tested class ``c``.
        images: (N, S, S, 3) uint8 audited images.
        boxes: (N, 4) sign boxes ``(x0, y0, x1, y1)``.
        donors: indices of correctly classified images of ``c``.
        donor_corners: (len(donors), 2) top-left ``(y, x)`` of each donor's most relevant window.
        donor_share: (len(donors),) share of positive relevance in that window.
        recipients: indices of correctly classified images of other classes to draw recipients from.
        config: test settings.
        donor_pixels: (len(donors), ceil(S * S / 8)) packed masks of each donor's most relevant pixels
            (:func:`~klugerhans.audit.probes.top_pixels`); needed for the "pixels" probe, which is skipped without.
    """
    config = config or TransplantConfig()
    donors = np.asarray(donors, dtype=np.int64)
    recipients = np.asarray(recipients, dtype=np.int64)
    if len(donors) < config.min_donors:
        raise KlugerhansError(
            f"class {class_id} has {len(donors)} donor images, the transplant test needs {config.min_donors}"
        )
    if len(donor_corners) != len(donors) or len(donor_share) != len(donors):
        raise KlugerhansError("need one window corner and share per donor")
    if donor_pixels is not None and len(donor_pixels) != len(donors):
        raise KlugerhansError("need one pixel mask per donor")
    if len(recipients) == 0:
        raise KlugerhansError("the transplant test needs correctly classified images of other classes")
    rng = np.random.default_rng([config.seed, int(class_id)])
    size = images.shape[1]
    side = patch_side(size, config.patch)
    chosen = rng.choice(recipients, size=min(config.recipients, len(recipients)), replace=False)
    pick = rng.integers(0, len(donors), size=len(chosen))
    donor_rows = donors[pick]
    relevant_src = np.asarray(donor_corners, dtype=np.int64)[pick]
    # drawn whatever the probes, so that each probe's outcomes do not depend on which others run
    control_src = random_windows(boxes[donor_rows], side, size, rng, avoid=relevant_src)
    placement = resolve_placement(config.placement, boxes, size)
    dst = relevant_src if placement == "same" else random_windows(boxes[chosen], side, size, rng)
    targets, sources = images[chosen], images[donor_rows]
    pairs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if "window" in config.probes:
        pairs["window"] = (
            paste_patches(targets, sources, relevant_src, dst, side),
            paste_patches(targets, sources, control_src, dst, side),
        )
    if "pixels" in config.probes and donor_pixels is not None:
        masks = unpack_pixels(np.asarray(donor_pixels)[pick], size)
        pairs["pixels"] = (
            paste_pixels(targets, sources, masks),
            paste_pixels(targets, sources, random_pixels(masks, boxes[donor_rows], rng)),
        )
    if "colour" in config.probes:
        others = rng.choice(recipients, size=len(chosen))
        pairs["colour"] = (transfer_colour(targets, sources), transfer_colour(targets, images[others]))
    if not pairs:
        raise KlugerhansError("no transplant probe could run: the pixels probe needs the donors' pixel masks")
    # one prediction pass over every probe's images: fewer, fuller batches
    n = len(chosen)
    preds = predict(np.concatenate([x for pair in pairs.values() for x in pair]))
    keep = min(config.n_examples, n)
    results = {}
    for i, (name, (with_relevant, _)) in enumerate(pairs.items()):
        relevant_preds = preds[2 * i * n : (2 * i + 1) * n]
        hijacked = relevant_preds == class_id
        # show hijacked examples first: they are what a reader needs to see
        order = np.argsort(~hijacked, kind="stable")[:keep]
        results[name] = TransplantResult(
            class_id=int(class_id),
            n_donors=len(donors),
            hijacked=hijacked,
            control_hijacked=preds[(2 * i + 1) * n : (2 * i + 2) * n] == class_id,
            window_share=float(np.mean(donor_share)),
            examples=with_relevant[order],
            example_preds=relevant_preds[order],
            probe=name,
        )
    best = max(results.values(), key=lambda r: r.hijack_rate)  # max keeps the first of equals: probe order
    by_probe = {
        name: {"hijack_rate": r.hijack_rate, "control_rate": r.control_rate, "p_value": r.p_value}
        for name, r in results.items()
    }
    return replace(best, by_probe=by_probe)
