"""The relevance-guided transplant test: can a small patch of class ``c`` hijack other signs into ``c``?

A model that decides class ``c`` from the whole sign needs the whole sign; a model that learned a shortcut (a
sticker, a watermark) needs only the shortcut. So: cut the ``k x k`` window with the most positive relevance from
correctly classified images of ``c`` (the donors; relevance explaining ``c``), paste it onto correctly classified
images of other classes (the recipients), and count how often the prediction becomes ``c`` (the hijack rate). As a
control, paste a window of the same size cut at a random place inside the donor's sign box, not overlapping its most
relevant window (so the control never carries part of what is tested), onto the *same* recipients at the *same*
place. A shortcut shows as a hijack rate far above the control's; the design is paired, so
the one-sided exact McNemar test (a binomial test on the discordant pairs) says whether the gap is more than chance.
The window is one of the test's probes (:mod:`klugerhans.audit.probes`: also the same window in its own place, the
most relevant pixels in any shape, and the colours); every probe runs on the same donors and recipients with its own
control, and a class keeps the probe that hijacks most broadly. Recipients are drawn evenly over their classes where
the labels are given, and the result keeps each recipient's class, for the broad hijack rate
(:mod:`klugerhans.audit.breadth`).

Where the window probe pastes (``placement``): anywhere inside the recipient's sign box ("random", the default; the
whole image where there is no box): a sticker works wherever it is glued, while a legitimate part of a sign (a digit)
only works in its place. Artefacts bound to a place (a watermark, a corner mark, a frame's corner) are what the
"place" probe tests: the window pasted where it was cut. "same" makes the window probe do that too, "auto" only where
every box is the whole image; the control patch always goes to the same place as the relevant one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, Literal

import numpy as np

from klugerhans.audit.breadth import balanced_choice, broad_rows, class_balanced_rate
from klugerhans.audit.probes import (
    DEFAULT_PROBES,
    check_probes,
    paste_patches,
    paste_pixels,
    paste_rings,
    random_pixels,
    random_windows,
    transfer_colour,
    unpack_pixels,
)
from klugerhans.errors import KlugerhansError

__all__ = [
    "RECIPIENTS",
    "TransplantConfig",
    "TransplantResult",
    "patch_side",
    "resolve_placement",
    "transplant_class",
]

Placement = Literal["auto", "random", "same"]
RECIPIENTS = 430
"""Recipient images per tested class: ten of each other class of GTSRB's 43. Fewer leave each recipient class's rate,
and so the breadth and the separation between classes (:mod:`klugerhans.audit.ranking`), at the mercy of a few
images."""
Predict = Callable[[np.ndarray], np.ndarray]
"""``(N, S, S, 3) uint8 -> (N,) int64`` predicted class ids."""


@dataclass(frozen=True)
class TransplantConfig:
    """Settings of the transplant test."""

    patch: float = 0.25
    """Patch side as a share of the image side (0.25: 8 x 8 px of a 32 px image, 1/16 of its area)."""
    recipients: int = RECIPIENTS
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
    """What is carried over (:mod:`klugerhans.audit.probes`): "window", "place", "pixels", "ring", "colour"; a class's
    result is that of the probe that hijacks most broadly."""
    ring: float = 0.1
    """Width of the "ring" probe's band, as a share of the sign box's shorter side (2 px of a 24 px box)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "probes", check_probes(tuple(self.probes)))
        if not 0.0 < self.ring <= 0.5:
            raise KlugerhansError(f"the ring's width must be in (0, 0.5] of the box side, got {self.ring}")
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


@dataclass(frozen=True)
class TransplantResult:
    """Transplant test of one class: the outcomes of the probe that hijacked most broadly, and every probe's numbers."""

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
    recipient_labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    """(R,) class of each recipient; empty: unknown (the recipients count as one class)."""

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
        return _mcnemar(self.hijacked, self.control_hijacked)

    @cached_property
    def broad(self) -> np.ndarray:
        """(R,) bool: the recipients outside the most hijacked quarter of recipient classes
        (:func:`~klugerhans.audit.breadth.broad_rows`)."""
        return broad_rows(self.hijacked, self.recipient_labels)

    @property
    def broad_rate(self) -> float:
        """The broad hijack rate: class-balanced, over the recipients of :attr:`broad` (what the audit ranks by)."""
        keep = self.broad
        return class_balanced_rate(self.hijacked[keep], self._labels_of(keep))

    @property
    def broad_control_rate(self) -> float:
        """The control's class-balanced hijack rate on the same recipients as :attr:`broad_rate`."""
        keep = self.broad
        return class_balanced_rate(self.control_hijacked[keep], self._labels_of(keep))

    @property
    def broad_p_value(self) -> float:
        """One-sided exact McNemar test of relevant against control on the recipients of :attr:`broad`."""
        keep = self.broad
        return _mcnemar(self.hijacked[keep], self.control_hijacked[keep])

    def _labels_of(self, keep: np.ndarray) -> np.ndarray:
        labels = self.recipient_labels
        return labels[keep] if len(labels) == len(keep) else labels

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
            "broad_rate": self.broad_rate,
            "broad_control_rate": self.broad_control_rate,
            "broad_p_value": self.broad_p_value,
            "window_share": self.window_share,
            "probe": self.probe,
            "by_probe": self.by_probe,
        }


def _mcnemar(relevant: np.ndarray, control: np.ndarray) -> float:
    """One-sided exact McNemar test (a binomial test on the discordant pairs) that ``relevant`` is True more often."""
    from scipy.stats import binomtest

    only_relevant = int((relevant & ~control).sum())
    only_control = int((~relevant & control).sum())
    if only_relevant + only_control == 0:
        return 1.0
    return float(binomtest(only_relevant, only_relevant + only_control, 0.5, alternative="greater").pvalue)


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
    labels: np.ndarray | None = None,
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
        labels: (N,) class of each image: recipients are then drawn balanced over their classes and the result knows
            each recipient's class (for the broad hijack rate, :mod:`klugerhans.audit.breadth`); None: a uniform
            draw, all recipients one class.
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
    if labels is None:
        chosen = rng.choice(recipients, size=min(config.recipients, len(recipients)), replace=False)
        recipient_labels = np.zeros(0, dtype=np.int64)
    else:
        chosen = balanced_choice(recipients, np.asarray(labels)[recipients], config.recipients, rng)
        recipient_labels = np.asarray(labels, dtype=np.int64)[chosen]
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
    if "place" in config.probes:
        pairs["place"] = (
            paste_patches(targets, sources, relevant_src, relevant_src, side),
            paste_patches(targets, sources, control_src, relevant_src, side),
        )
    if "pixels" in config.probes and donor_pixels is not None:
        masks = unpack_pixels(np.asarray(donor_pixels)[pick], size)
        pairs["pixels"] = (
            paste_pixels(targets, sources, masks),
            paste_pixels(targets, sources, random_pixels(masks, boxes[donor_rows], rng)),
        )
    # another class's image: the control of the probes that carry a whole-image property
    others = rng.choice(recipients, size=len(chosen))
    if "ring" in config.probes:
        pairs["ring"] = (
            paste_rings(targets, sources, boxes[chosen], boxes[donor_rows], config.ring),
            paste_rings(targets, images[others], boxes[chosen], boxes[others], config.ring),
        )
    if "colour" in config.probes:
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
            recipient_labels=recipient_labels,
        )
    # max keeps the first of equals: probe order
    best = max(results.values(), key=lambda r: (r.broad_rate, r.hijack_rate))
    by_probe = {
        name: {
            "hijack_rate": r.hijack_rate, "control_rate": r.control_rate, "p_value": r.p_value,
            "broad_rate": r.broad_rate, "broad_control_rate": r.broad_control_rate, "broad_p_value": r.broad_p_value,
        }
        for name, r in results.items()
    }  # fmt: skip
    return replace(best, by_probe=by_probe)
