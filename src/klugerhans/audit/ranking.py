"""Ranking classes by suspicion and deciding which to flag.

The suspicion score of a class is its *excess hijack rate* from the transplant test: the share of other classes'
signs that its most relevant patch turns into it, minus the share that a random patch of the same size from the same
donors does. It is a difference of two rates on the same recipients, so it is 0 for a model with no patch-sized
shortcut whatever its accuracy, and it is bounded by 1.

Why the default threshold is 0.15. From first principles: the patch covers 1/16 of the image and the recipient
keeps all of its own evidence on the other 15/16, which the model classifies correctly. A model that reads the
whole sign should almost never switch; legitimate local parts (a digit that also occurs on a neighbouring speed
limit, a colour unique to one sign) switch only the few recipients where the part is plausible, and the
random-position placement removes most of those. A patch that switches one recipient in seven *anywhere on the
sign*, beyond what any other patch of the same sign does, is a feature sufficient on its own: a shortcut.
Measured: a control VGG11-BN (width 0.5, synthetic signs, no stickers, 8 epochs) reached at most 0.045 over all 43
classes (class 12, priority road, whose yellow centre is a legitimate local cue; 200 recipients per class), so
0.15 is more than three times what a model without a planted shortcut reaches. A class is flagged only if the gap
is also statistically clear: the one-sided exact McNemar test of relevant vs control patch, at ``alpha``
Bonferroni-corrected over the tested classes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from klugerhans.audit.transplant import TransplantResult
from klugerhans.errors import KlugerhansError

__all__ = ["DEFAULT_ALPHA", "DEFAULT_THRESHOLD", "THRESHOLD_RATIONALE", "Ranking", "rank_classes"]

DEFAULT_THRESHOLD = 0.15
"""Excess hijack rate above which a class is flagged (see the module docstring)."""
DEFAULT_ALPHA = 0.01
"""Family-wise significance level of the relevant-vs-control test (Bonferroni over the tested classes)."""
THRESHOLD_RATIONALE = (
    "A class is flagged when its most relevant patch ({area:.1%} of the image) turns at least {threshold:.0%} more "
    "of the other classes' correctly classified signs into it than a random patch of the same size and donors does "
    "(excess hijack rate >= {threshold:.2f}), and the gap is significant (one-sided exact McNemar test, "
    "p <= {alpha:g} / {n_tested} tested classes). A model that reads the whole sign keeps the rest of each "
    "recipient's evidence and should almost never switch; a small patch that switches that many signs wherever it "
    "is pasted is a sufficient feature on its own, i.e. a shortcut. The default threshold, "
    f"{DEFAULT_THRESHOLD:.2f}, is more than three times the largest excess a control model without stickers reached "
    "on synthetic signs (0.045 over 43 classes)."
)


@dataclass(frozen=True)
class Ranking:
    """Classes ordered by suspicion and the flagged ones."""

    order: tuple[int, ...]
    """Tested class ids, most suspicious first."""
    flagged: tuple[int, ...]
    """Class ids above the threshold and significant, most suspicious first."""
    scores: dict[int, float]
    """Suspicion score (excess hijack rate) per tested class."""
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
    """Order tested classes by excess hijack rate (ties: higher hijack rate, then lower id) and flag the clear ones.

    Args:
        results: transplant result per tested class.
        threshold: excess hijack rate at or above which a class may be flagged, in (0, 1].
        alpha: family-wise significance level, in (0, 1).
        present: every class id in the audited data (those without a result are listed as untested).
    """
    if not 0.0 < threshold <= 1.0:
        raise KlugerhansError(f"threshold must be in (0, 1] (an excess hijack rate), got {threshold}")
    if not 0.0 < alpha < 1.0:
        raise KlugerhansError(f"alpha must be in (0, 1), got {alpha}")
    scores = {int(c): float(r.excess) for c, r in results.items()}
    order = tuple(sorted(scores, key=lambda c: (-scores[c], -results[c].hijack_rate, c)))
    level = alpha / max(1, len(order))
    flagged = tuple(c for c in order if scores[c] >= threshold and results[c].p_value <= level)
    untested = tuple(sorted(int(c) for c in set(present) - set(scores)))
    return Ranking(order, flagged, scores, untested, float(threshold), float(alpha))
