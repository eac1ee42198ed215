"""The statistics behind the bench's metrics: AUROC by ranks with a bootstrap interval, and the flag threshold set on
clean models only (a conformal rank rule), with the false positive rate it has on a clean model it did not see.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from klugerhans.bench.records import Record
from klugerhans.defaults import DEFAULT_FPR
from klugerhans.errors import KlugerhansError

__all__ = [
    "BOOTSTRAP_DRAWS",
    "Threshold",
    "auroc_interval",
    "held_out_false_positive_rate",
    "null_threshold",
    "roc_auc",
]

BOOTSTRAP_DRAWS = 2000
"""Resamples behind each AUROC interval."""


@dataclass(frozen=True)
class Threshold(Record):
    """A flag threshold calibrated on clean models: a model is flagged when its top score is ``>= value``.

    Its JSON is an entry of ``bench.json``'s ``thresholds``.
    """

    value: float
    """The threshold; a top score at or above it flags the model."""
    fpr: float
    """The target false positive rate it was set for."""
    n_clean: int
    """How many clean models it was set from."""
    clean_max: float = field(default=math.nan, kw_only=True)
    """The largest top score of those clean models (keyword only, so that the fields keep their positions)."""
    rationale: str
    """One human-readable sentence saying how it was chosen."""

    def __post_init__(self) -> None:
        if math.isnan(self.value):
            raise KlugerhansError("a threshold cannot be NaN")
        if not 0.0 < self.fpr < 1.0:
            raise KlugerhansError(f"the target false positive rate must be in (0, 1), got {self.fpr}")
        if self.n_clean < 1:
            raise KlugerhansError(f"a threshold needs at least one clean model, got {self.n_clean}")


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of ``x``, tied values sharing the mean of the ranks they span."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    ends = np.r_[starts[1:], len(xs)]  # exclusive, so a group holds ranks starts+1 .. ends
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.repeat((starts + 1 + ends) / 2.0, ends - starts)
    return ranks


def roc_auc(positive: Sequence[float] | np.ndarray, negative: Sequence[float] | np.ndarray) -> float:
    """Probability that a random positive scores above a random negative, ties counting 1/2.

    Computed as the Mann-Whitney U statistic over ``n_pos * n_neg`` from average ranks, in O(n log n).
    Infinite scores are ordinary (extreme) values; NaN raises. Returns NaN if either side is empty.
    """
    pos = np.asarray(positive, dtype=np.float64).ravel()
    neg = np.asarray(negative, dtype=np.float64).ravel()
    if np.isnan(pos).any() or np.isnan(neg).any():
        raise KlugerhansError("roc_auc got a NaN score: drop untested models or give them -inf")
    if pos.size == 0 or neg.size == 0:
        return math.nan
    ranks = _average_ranks(np.concatenate([pos, neg]))
    u = float(ranks[: pos.size].sum()) - pos.size * (pos.size + 1) / 2.0
    return u / (pos.size * neg.size)


def auroc_interval(
    positive: Sequence[float] | np.ndarray,
    negative: Sequence[float] | np.ndarray,
    level: float = 0.95,
    draws: int = BOOTSTRAP_DRAWS,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of :func:`roc_auc` (Efron and Tibshirani 1993), resampling each side apart.

    Manipulated and clean models are drawn with replacement within their own group (a stratified bootstrap: every
    resample keeps both group sizes, so every resample has an AUROC). Seeded, so a summary is reproducible.
    Returns ``(nan, nan)`` if either side is empty.
    """
    pos = np.asarray(positive, dtype=np.float64).ravel()
    neg = np.asarray(negative, dtype=np.float64).ravel()
    if pos.size == 0 or neg.size == 0:
        return math.nan, math.nan
    if not 0.0 < level < 1.0:
        raise KlugerhansError(f"the interval's level must be in (0, 1), got {level}")
    rng = np.random.default_rng(seed)
    values = [
        roc_auc(pos[rng.integers(pos.size, size=pos.size)], neg[rng.integers(neg.size, size=neg.size)])
        for _ in range(draws)
    ]
    lo, hi = np.quantile(values, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return float(lo), float(hi)


def held_out_false_positive_rate(clean_scores: Sequence[float] | np.ndarray, fpr: float = DEFAULT_FPR) -> float:
    """Share of clean models flagged by a threshold set on the *other* clean models (leave-one-out).

    The in-sample false positive rate judges a threshold on the controls that set it, which :func:`null_threshold`
    keeps at or below ``fpr`` by construction; leaving each control out of its own threshold measures what a new
    clean model meets. NaN with fewer than two clean models.
    """
    s = np.asarray(clean_scores, dtype=np.float64).ravel()
    if s.size < 2:
        return math.nan
    finite = np.where(np.isfinite(s), s, -np.inf)
    flagged = [s[i] >= null_threshold(np.delete(finite, i), fpr).value for i in range(s.size)]
    return float(np.mean(flagged))


def null_threshold(clean_scores: Sequence[float] | np.ndarray, fpr: float = DEFAULT_FPR) -> Threshold:
    """The flag threshold that clean models' top scores exceed at most a share ``fpr`` of the time.

    Conformal rank rule: with the ``n`` clean top scores sorted ascending ``s_(1) <= ... <= s_(n)`` and
    ``k = ceil((n + 1) * (1 - fpr))``, the threshold is the next float above ``s_(k)``, so that flagging
    ``score >= value`` means ``score > s_(k)``. This flags at most ``n - k <= fpr * n`` of the clean models and,
    for a new clean model exchangeable with them, has probability at most ``fpr`` of flagging it. If ``k > n``
    (fewer than ``(1 - fpr) / fpr`` controls) the threshold is just above the largest clean score.

    Args:
        clean_scores: top score of each clean model (``-inf`` allowed for a model without a finite score).
        fpr: target false positive rate, in (0, 1).
    """
    if not 0.0 < fpr < 1.0:
        raise KlugerhansError(f"fpr must be in (0, 1), got {fpr}")
    s = np.sort(np.asarray(clean_scores, dtype=np.float64).ravel())
    n = int(s.size)
    if n == 0:
        raise KlugerhansError("null_threshold needs the scores of at least one clean model")
    if np.isnan(s).any() or np.isposinf(s).any():
        raise KlugerhansError("clean scores must not be NaN or +inf (a +inf clean score leaves no threshold)")
    # rounding first: (n + 1) * (1 - fpr) is often an integer on paper (20 * 0.95) but lands a hair above in floats
    k = math.ceil(round((n + 1) * (1.0 - fpr), 9))
    pct = f"{fpr:.0%}" if round(fpr * 100, 9).is_integer() else f"{fpr:.2%}"
    quantile = f"{1.0 - fpr:.0%}" if round(fpr * 100, 9).is_integer() else f"{1.0 - fpr:.2%}"
    if k > n:
        value = float(np.nextafter(s[-1], np.inf))
        rationale = (
            f"just above the largest top score of {n} clean models ({s[-1]:.6g}), so that none is flagged: with so "
            f"few controls the {pct} false positive target cannot be resolved (it needs at least "
            f"{math.ceil(round((1.0 - fpr) / fpr, 9))}; conformal rank k={k} > n={n})"
        )
    else:
        value = float(np.nextafter(s[k - 1], np.inf))
        rationale = (
            f"the smallest score above the top scores of all but {pct} of {n} clean models (the {quantile} "
            f"quantile of their null distribution, conformal rank k={k} of {n}): a model is flagged when its top "
            f"score is above {s[k - 1]:.6g} (>= the next float up)"
        )
    return Threshold(value=value, fpr=float(fpr), n_clean=n, clean_max=float(s[-1]), rationale=rationale)
