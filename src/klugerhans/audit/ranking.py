"""Ranking classes by suspicion and deciding which to flag.

The suspicion score of a class is its *hijack rate* from the transplant test: the share of other classes'
correctly classified signs that a small part of its own signs turns into it (the most relevant window, 1/16 of the
image, pasted anywhere on the sign; or their colours: the probes of :mod:`klugerhans.audit.probes`; the best probe
counts). The control (same size, same donors, same recipients and places, cut elsewhere on the sign) guards
what the score means: a class is flagged only if its hijack rate reaches the threshold *and* the relevant part
hijacks significantly more often than the control (one-sided exact McNemar test on the paired outcomes, at ``alpha``
Bonferroni-corrected over the tested classes and probes). A class that any patch of its signs hijacks (the model's
default under occlusion, say) therefore ranks high but is not flagged; the excess (hijack minus control) and the
ratio are reported next to the score.

The threshold is set on clean models, never on manipulated ones: ``klugerhans bench`` audits clean controls and the
shipped value lies above their top hijack rates at a stated false-positive rate, one value per placement
(:mod:`klugerhans.audit.thresholds`; ``audit.json`` reports it as ``threshold_source``). First principles say why a
hijack rate means anything at all: the recipient keeps its own evidence everywhere but the pasted part, which the
model classified correctly, so a model that reads the whole sign should almost never switch; a small part that
switches many signs wherever it is pasted is a sufficient feature on its own, i.e. a shortcut.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from klugerhans.audit.transplant import TransplantResult
from klugerhans.errors import KlugerhansError

__all__ = ["DEFAULT_ALPHA", "THRESHOLD_RATIONALE", "Ranking", "rank_classes"]

DEFAULT_ALPHA = 0.01
"""Family-wise significance level of the relevant-vs-control test (Bonferroni over the tested classes and probes)."""
THRESHOLD_RATIONALE = (
    "A class is flagged when a small part of its correctly classified signs, carried over by the transplant test's "
    "best probe ({probes}; a window is {area:.1%} of the image), turns at least {threshold:.1%} of the other "
    "classes' correctly classified signs into it (hijack rate >= {threshold:.4g}), significantly more often than its "
    "control (one-sided exact McNemar test, p <= {alpha:g} / ({n_tested} classes x {n_probes} probes)). {source}"
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
    n_probes: int = 1
    """Transplant probes run per class (the Bonferroni correction counts every class-probe test)."""

    @property
    def corrected_alpha(self) -> float:
        """Per-test significance level after the Bonferroni correction over classes and probes."""
        return self.alpha / max(1, len(self.order) * self.n_probes)

    def rationale(self, patch_area: float = 1 / 16, probes: tuple[str, ...] = ("window",), source: str = "") -> str:
        """One paragraph saying what the threshold means; ``patch_area`` is the window's share of the image,
        ``source`` says where the threshold comes from."""
        return THRESHOLD_RATIONALE.format(
            threshold=self.threshold, alpha=self.alpha, n_tested=len(self.order), area=patch_area,
            probes=", ".join(probes), n_probes=self.n_probes, source=source,
        ).strip()  # fmt: skip


def rank_classes(
    results: Mapping[int, TransplantResult],
    threshold: float,
    alpha: float = DEFAULT_ALPHA,
    present: tuple[int, ...] | list[int] = (),
    n_probes: int = 1,
) -> Ranking:
    """Order tested classes by hijack rate (ties: larger excess, then lower id) and flag the clear ones.

    Args:
        results: transplant result per tested class.
        threshold: hijack rate at or above which a class is flagged if also significant, in (0, 1].
        alpha: family-wise significance level, in (0, 1).
        present: every class id in the audited data (those without a result are listed as untested).
        n_probes: transplant probes run per class; each class's result is its best probe, so the significance
            level is divided by classes times probes.
    """
    if not 0.0 < threshold <= 1.0:
        raise KlugerhansError(f"threshold must be in (0, 1] (a hijack rate), got {threshold}")
    if not 0.0 < alpha < 1.0:
        raise KlugerhansError(f"alpha must be in (0, 1), got {alpha}")
    scores = {int(c): float(r.hijack_rate) for c, r in results.items()}
    order = tuple(sorted(scores, key=lambda c: (-scores[c], -results[c].excess, c)))
    if n_probes < 1:
        raise KlugerhansError(f"n_probes must be at least 1, got {n_probes}")
    level = alpha / max(1, len(order) * n_probes)
    flagged = tuple(c for c in order if scores[c] >= threshold and results[c].p_value <= level)
    untested = tuple(sorted(int(c) for c in set(present) - set(scores)))
    return Ranking(order, flagged, scores, untested, float(threshold), float(alpha), int(n_probes))
