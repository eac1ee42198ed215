"""Ranking classes by suspicion and deciding which to flag: one decision for every architecture, data and placement.

The suspicion score of a class is its *broad hijack rate* from the transplant test (:mod:`klugerhans.audit.breadth`):
the share of other classes' correctly classified images that a small part of its own images turns into it (the most
relevant window pasted anywhere or in place, or its colours: the probes of :mod:`klugerhans.audit.probes`; the best
probe counts), counted class by class over the recipient classes, leaving out the quarter it hijacks most. A shortcut
suffices on its own and hijacks every kind of sign; a legitimate part (a digit, a pictogram, a colour that tells two
look-alikes apart) hijacks only its look-alikes, which that quarter absorbs. A class is flagged when some probe's
broad hijack rate reaches the threshold *and* that probe beats its control (one-sided exact McNemar test on all its
recipients at ``alpha``, Bonferroni-corrected over the tested classes and probes), so a class that any patch of its
images hijacks (the model's default under occlusion, say) ranks high but is not flagged, *and* it stands apart from
the model's own other classes, as Neural Cleanse's anomaly index asks of a trigger: by broad hijack rate less its
control's, it leads every other class at least :data:`SEPARATION`-fold (two shortcuts of like strength lead together;
of classes that lead together, only those that also act through a probe that does not paste in place are flagged,
since a strong shortcut can lift a ResNet's own aligned parts, a pictogram acting only where it belongs, over the rest
with it).
Models differ in how strongly their legitimate parts act alone (a clean GTSRB ResNet-18 that reads the pictogram has a
class whose pictogram, pasted in place, turns a fifth of every other kind of sign), so an absolute floor alone does not
transfer between architectures; a shortcut is an outlier among its own model's classes, whatever the model.

The threshold is one value for every placement and architecture (:mod:`klugerhans.audit.thresholds`; ``audit.json``
reports it as ``threshold_source``): the broad hijack rate has the same meaning on a VGG and a ResNet, on signs and on
photos, because it counts recipients, not logits. First principles say why it means anything at all: the recipient
keeps its own evidence everywhere but the pasted part, which the model classified correctly, so a model that reads
the whole image should almost never switch; a small part that switches images of most classes is a sufficient
feature on its own, i.e. a shortcut.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from klugerhans.audit.probes import IN_PLACE
from klugerhans.audit.transplant import TransplantResult
from klugerhans.errors import KlugerhansError

__all__ = ["DEFAULT_ALPHA", "SEPARATION", "THRESHOLD_RATIONALE", "Ranking", "rank_classes", "stand_apart"]

DEFAULT_ALPHA = 0.01
"""Family-wise significance level of the relevant-vs-control test (Bonferroni over the tested classes and probes)."""
SEPARATION = 3.0
"""A flagged class's broad hijack rate less its control's is at least this many times every unflagged class's."""
THRESHOLD_RATIONALE = (
    "A class is flagged when a small part of its correctly classified images, carried over by one of the transplant "
    "test's probes ({probes}; a window is {area:.1%} of the image), turns at least {threshold:.1%} of the other "
    "classes' correctly classified images into it, counted class by class without the quarter of classes it hijacks "
    "most (broad hijack rate >= {threshold:.4g}), significantly more often than its control (one-sided exact McNemar "
    "test, p <= {alpha:g} / ({n_tested} classes x {n_probes} probes)), and at least {separation:g} times the broad "
    "hijack rate, less its control's, of every class that is not flagged; where several classes lead together, only "
    "those that also act through a probe that does not paste in place. {source}"
)


@dataclass(frozen=True)
class Ranking:
    """Classes ordered by suspicion and the flagged ones."""

    order: tuple[int, ...]
    """Tested class ids, most suspicious first."""
    flagged: tuple[int, ...]
    """Class ids above the threshold and significant, most suspicious first."""
    scores: dict[int, float]
    """Suspicion score (broad hijack rate) per tested class."""
    untested: tuple[int, ...]
    """Classes present in the data but not tested (too few correctly classified images)."""
    threshold: float
    alpha: float
    n_probes: int = 1
    """Transplant probes run per class (the Bonferroni correction counts every class-probe test)."""
    separation: float = SEPARATION
    """Least ratio of a flagged class's broad hijack rate (less its control's) to any unflagged class's."""

    @property
    def corrected_alpha(self) -> float:
        """Per-test significance level after the Bonferroni correction over classes and probes."""
        return self.alpha / max(1, len(self.order) * self.n_probes)

    def rationale(self, patch_area: float = 1 / 16, probes: tuple[str, ...] = ("window",), source: str = "") -> str:
        """One paragraph saying what the threshold means; ``patch_area`` is the window's share of the image,
        ``source`` says where the threshold comes from."""
        return THRESHOLD_RATIONALE.format(
            threshold=self.threshold, alpha=self.alpha, n_tested=len(self.order), area=patch_area,
            probes=", ".join(probes), n_probes=self.n_probes, separation=self.separation, source=source,
        ).strip()  # fmt: skip


def rank_classes(
    results: Mapping[int, TransplantResult],
    threshold: float,
    alpha: float = DEFAULT_ALPHA,
    present: tuple[int, ...] | list[int] = (),
    n_probes: int = 1,
    separation: float = SEPARATION,
) -> Ranking:
    """Order tested classes by broad hijack rate (ties: larger hijack rate, excess, lower id); flag the clear ones
    that stand apart.

    The classes that stand apart lead the others by their broad hijack rate less their control's, at least
    ``separation``-fold (:func:`stand_apart`); of them, those that reach ``threshold`` and beat their control are
    flagged.

    Args:
        results: transplant result per tested class.
        threshold: broad hijack rate at or above which a class is flagged if also significant, in (0, 1].
        alpha: family-wise significance level, in (0, 1).
        present: every class id in the audited data (those without a result are listed as untested).
        n_probes: transplant probes run per class; each class's result is its best probe, so the significance
            level is divided by classes times probes.
        separation: least ratio of a flagged class's broad hijack rate (less its control's) to any unflagged class's,
            at least 1 (1: no separation asked).
    """
    if not 0.0 < threshold <= 1.0:
        raise KlugerhansError(f"threshold must be in (0, 1] (a hijack rate), got {threshold}")
    if not 0.0 < alpha < 1.0:
        raise KlugerhansError(f"alpha must be in (0, 1), got {alpha}")
    scores = {int(c): float(r.broad_rate) for c, r in results.items()}
    order = tuple(sorted(scores, key=lambda c: (-scores[c], -results[c].hijack_rate, -results[c].excess, c)))
    if n_probes < 1:
        raise KlugerhansError(f"n_probes must be at least 1, got {n_probes}")
    if separation < 1.0:
        raise KlugerhansError(f"separation must be at least 1, got {separation}")
    level = alpha / max(1, len(order) * n_probes)
    apart = stand_apart({c: r.broad_rate - r.broad_control_rate for c, r in results.items()}, separation)
    if len(apart) > 1:  # several lead together, as a model's own aligned parts do: keep those that act anywhere
        apart = {c for c in apart if _acts_anywhere(results[c], separation)}
    flagged = tuple(c for c in order if c in apart and _clear(results[c], threshold, level))
    untested = tuple(sorted(int(c) for c in set(present) - set(scores)))
    return Ranking(order, flagged, scores, untested, float(threshold), float(alpha), int(n_probes), float(separation))


def stand_apart(excess: Mapping[int, float], separation: float = SEPARATION) -> set[int]:
    """The classes that stand apart from the rest of the model's: those whose excess is at least ``1 / separation`` of
    the largest, provided the least of them is at least ``separation`` times every other class's; else none.

    One shortcut must lead the next class ``separation``-fold; two of like strength lead the rest together, while a
    run of classes that falls off gradually (the parts of a model that act alone, each a little weaker) has no gap
    and yields none. The excess (broad hijack rate less its control's) keeps a class that any patch hijacks, the
    model's default under occlusion, from hiding a shortcut behind it. ``separation`` 1: every class.
    """
    if separation <= 1.0:
        return set(excess)
    top = max(excess.values(), default=0.0)
    if top <= 0.0:
        return set()
    leaders = {c for c, e in excess.items() if e >= top / separation}
    rest = max((e for c, e in excess.items() if c not in leaders), default=0.0)
    return leaders if min(excess[c] for c in leaders) >= separation * max(rest, 0.0) else set()


def _acts_anywhere(result: TransplantResult, separation: float) -> bool:
    """Whether a probe that does not paste in place (the window anywhere, the ring, the colours) carries at least
    ``1 / separation`` of the class's excess: a sticker, a frame or a cast does, an object's part that acts only where
    it belongs does not. Without such a probe there is nothing to tell them apart: True."""
    elsewhere = [
        p["broad_rate"] - p["broad_control_rate"]
        for name, p in result.by_probe.items()
        if name not in IN_PLACE and "broad_control_rate" in p
    ]
    if not elsewhere:
        return True
    return max(elsewhere) >= (result.broad_rate - result.broad_control_rate) / separation


def _clear(result: TransplantResult, threshold: float, level: float) -> bool:
    """Whether some probe of ``result`` reaches ``threshold`` with its broad hijack rate and beats its control at
    ``level`` (on all its recipients: the threshold already asks for breadth, the test only for more than chance)."""
    probes = result.by_probe.values() or [{"broad_rate": result.broad_rate, "p_value": result.p_value}]
    return any(p["broad_rate"] >= threshold and p["p_value"] <= level for p in probes)
