"""Ranking classes by suspicion and deciding which to flag.

The suspicion score of a class is its *hijack rate* from the transplant test: the share of other classes'
correctly classified signs that its most relevant patch (1/16 of the image, pasted anywhere on the sign) turns
into it. The control patch (same size, same donors, same recipients and places, cut elsewhere on the sign) guards
what the score means: a class is flagged only if its hijack rate reaches the threshold *and* the relevant patch
hijacks significantly more often than the control (one-sided exact McNemar test on the paired outcomes, at ``alpha``
Bonferroni-corrected over the tested classes). A class that any patch of its signs hijacks (the model's default
under occlusion, say) therefore ranks high but is not flagged; the excess (hijack minus control) and the ratio are
reported next to the score.

Why the default threshold is 0.15. From first principles: the recipient keeps its own evidence on 15/16 of the
image, which the model classifies correctly. A model that reads the whole sign should almost never switch;
legitimate local parts (a digit that also occurs on a neighbouring speed limit, a colour unique to one sign) switch
only the few recipients where the part is plausible, and pasting at a random place removes most of those. A patch
that decides about one sign in seven wherever it is pasted is a feature sufficient on its own: a shortcut.
Measured (200 recipients per class, all 43 classes): control VGG11-BN models trained without stickers reached at
most 0.07 (synthetic signs, width 0.5) and 0.04 (real GTSRB, width 0.5), half the threshold or less. The
unmanipulated classes of sticker-trained models reached at most 0.105 (class 12, priority road, whose yellow centre
alone decides it in a weakly trained synthetic model with 40% accuracy) and 0.04 (GTSRB), while the sticker class
reached 0.165 to 0.18 (synthetic, sticker flip rates near 20%) and 0.315 (GTSRB, flip rate 48%).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from klugerhans.audit.transplant import TransplantResult
from klugerhans.errors import KlugerhansError

__all__ = ["DEFAULT_ALPHA", "DEFAULT_THRESHOLD", "THRESHOLD_RATIONALE", "Ranking", "rank_classes"]

DEFAULT_THRESHOLD = 0.15
"""Hijack rate at or above which a class is flagged, if also significant vs the control (see the module docstring)."""
DEFAULT_ALPHA = 0.01
"""Family-wise significance level of the relevant-vs-control test (Bonferroni over the tested classes)."""
THRESHOLD_RATIONALE = (
    "A class is flagged when its most relevant patch ({area:.1%} of the image), pasted at a random place, turns at "
    "least {threshold:.0%} of the other classes' correctly classified signs into it (hijack rate >= "
    "{threshold:.2f}) and does so significantly more often than a random patch of the same size from the same "
    "signs (one-sided exact McNemar test, p <= {alpha:g} / {n_tested} tested classes). A model that reads the "
    "whole sign keeps the rest of each recipient's evidence and should almost never switch; a small patch that "
    "switches that many signs wherever it is pasted is a sufficient feature on its own, i.e. a shortcut. The "
    f"default threshold, {DEFAULT_THRESHOLD:.2f}, is at least twice the largest hijack rate that control models "
    "without stickers reached (0.07 on synthetic signs, 0.04 on GTSRB)."
)


@dataclass(frozen=True)
class Ranking:
    """Classes ordered by suspicion and the flagged ones."""

    order: tuple[int, ...]
    """Tested class ids, most suspicious first."""
    flagged: tuple[int, ...]
    """Class ids above the threshold and significant, most suspicious first."""
    scores: dict[int, float]
    """Suspicion score (hijack rate) per tested class."""
    untested: tuple[int, ...]
    """Classes present in the data but not tested (too few correctly classified images)."""
    threshold: float
    alpha: float

    @property
    def corrected_alpha(self) -> float:
        """Per-class significance level after the Bonferroni correction."""
        return self.alpha / max(1, len(self.order))

    def rationale(self, patch_area: float = 1 / 16) -> str:
        """One paragraph saying what the threshold means; ``patch_area`` is the patch's share of the image."""
        return THRESHOLD_RATIONALE.format(
            threshold=self.threshold, alpha=self.alpha, n_tested=len(self.order), area=patch_area
        )


def rank_classes(
    results: Mapping[int, TransplantResult],
    threshold: float = DEFAULT_THRESHOLD,
    alpha: float = DEFAULT_ALPHA,
    present: tuple[int, ...] | list[int] = (),
) -> Ranking:
    """Order tested classes by hijack rate (ties: larger excess, then lower id) and flag the clear ones.

    Args:
        results: transplant result per tested class.
        threshold: hijack rate at or above which a class is flagged if also significant, in (0, 1].
        alpha: family-wise significance level, in (0, 1).
        present: every class id in the audited data (those without a result are listed as untested).
    """
    if not 0.0 < threshold <= 1.0:
        raise KlugerhansError(f"threshold must be in (0, 1] (a hijack rate), got {threshold}")
    if not 0.0 < alpha < 1.0:
        raise KlugerhansError(f"alpha must be in (0, 1), got {alpha}")
    scores = {int(c): float(r.hijack_rate) for c, r in results.items()}
    order = tuple(sorted(scores, key=lambda c: (-scores[c], -results[c].excess, c)))
    level = alpha / max(1, len(order))
    flagged = tuple(c for c in order if scores[c] >= threshold and results[c].p_value <= level)
    untested = tuple(sorted(int(c) for c in set(present) - set(scores)))
    return Ranking(order, flagged, scores, untested, float(threshold), float(alpha))
