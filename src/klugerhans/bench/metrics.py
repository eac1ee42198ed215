"""Model-level detection metrics, as backdoor-detection papers report them.

Each benchmark model (manipulated: an artefact planted on one target class; clean: a control trained without one)
is audited by each detector, which gives a suspicion score per class. A model's score is its *top score* (the
largest per-class score), and the question is whether the detector separates manipulated from clean models:
AUROC over models, and at a threshold set from clean models only (:func:`null_threshold`) the share of clean models
flagged (false positive rate) and of manipulated ones flagged (true positive rate). The top-1 hit rate says whether
the most suspicious class is the planted one. A model is *flagged at a threshold* when its top score is ``>=`` the
threshold; the detectors' own ``flagged`` classes are kept on each outcome for the report but not used here, since
each detector sets them with its own, uncalibrated rule.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from klugerhans.errors import KlugerhansError

__all__ = [
    "METRIC_KEYS",
    "ModelOutcome",
    "Threshold",
    "auroc_interval",
    "compare_to_baselines",
    "detection_metrics",
    "held_out_false_positive_rate",
    "metrics_by_axis",
    "null_threshold",
    "roc_auc",
    "summarize",
]

METRIC_KEYS = (
    "auroc",
    "auroc_ci",
    "false_positive_rate",
    "held_out_false_positive_rate",
    "true_positive_rate",
    "top1_hit_rate",
    "n_manipulated",
    "n_clean",
)
"""The keys of :func:`detection_metrics`, in the order the report shows them."""
BOOTSTRAP_DRAWS = 2000
"""Resamples behind each AUROC interval."""


@dataclass(frozen=True)
class ModelOutcome:
    """One benchmark model's result for one detector."""

    job: str
    """Id of the benchmark job that trained the model."""
    manipulated: bool
    """Whether an artefact was planted (else a clean control)."""
    target: int | None
    """The class the artefact was planted on; None for a clean model."""
    scores: Mapping[int, float]
    """Suspicion per class, higher is more suspicious; NaN marks an untested class and is ignored."""
    flagged: tuple[int, ...] = ()
    """Classes the detector flagged by its own rule (reported, not used by the metrics)."""
    axes: Mapping[str, str] = field(default_factory=dict)
    """Grid axis -> value, e.g. ``{"artefact": "noise", "fraction": "0.5"}``."""

    def __post_init__(self) -> None:
        if not isinstance(self.job, str) or not self.job:
            raise KlugerhansError(f"a model outcome needs a non-empty job id, got {self.job!r}")
        if self.manipulated != (self.target is not None):
            raise KlugerhansError(f"job {self.job}: a model has a target class if and only if it is manipulated")
        try:
            scores = {int(c): float(s) for c, s in self.scores.items()}
            flagged = tuple(int(c) for c in self.flagged)
        except (TypeError, ValueError, AttributeError) as err:
            raise KlugerhansError(f"job {self.job}: scores must map class ids to numbers ({err})") from None
        axes = dict(self.axes)
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in axes.items()):
            raise KlugerhansError(f"job {self.job}: axes must map axis names to value strings, got {axes!r}")
        # normalised copies, so that a caller's later edit of its dict cannot change a finished outcome
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "flagged", flagged)
        object.__setattr__(self, "axes", axes)

    @property
    def top_score(self) -> float:
        """The largest finite class score; ``-inf`` if there is none, so that such a model ranks below every other
        and is never flagged (detectors differ in scale, some score below 0, so no finite value is safe)."""
        finite = [s for s in self.scores.values() if math.isfinite(s)]
        return max(finite) if finite else -math.inf

    @property
    def top_class(self) -> int | None:
        """The class with the largest finite score (ties: the smallest class id); None if there is none."""
        finite = [(s, c) for c, s in self.scores.items() if math.isfinite(s)]
        if not finite:
            return None
        return min(finite, key=lambda sc: (-sc[0], sc[1]))[1]


@dataclass(frozen=True)
class Threshold:
    """A flag threshold calibrated on clean models: a model is flagged when its top score is ``>= value``."""

    value: float
    """The threshold; a top score at or above it flags the model."""
    fpr: float
    """The target false positive rate it was set for."""
    n_clean: int
    """How many clean models it was set from."""
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


def held_out_false_positive_rate(clean_scores: Sequence[float] | np.ndarray, fpr: float = 0.05) -> float:
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


def null_threshold(clean_scores: Sequence[float] | np.ndarray, fpr: float = 0.05) -> Threshold:
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
    return Threshold(value=value, fpr=float(fpr), n_clean=n, rationale=rationale)


def _share(flags: Sequence[bool]) -> float:
    """Share of True, NaN for an empty sequence."""
    return sum(flags) / len(flags) if flags else math.nan


def detection_metrics(
    outcomes: Sequence[ModelOutcome], threshold: float, fpr: float = 0.05
) -> dict[str, float | int | list[float]]:
    """AUROC (manipulated vs clean, by top score) with its 95% bootstrap interval, the rates at ``threshold``, the
    held-out false positive rate at a threshold set like ``threshold`` (target ``fpr``) and the top-1 hit rate.

    A model is flagged when its top score is ``>= threshold``. Rates needing a side that has no model are NaN.
    Keys: :data:`METRIC_KEYS`.
    """
    if math.isnan(threshold):
        raise KlugerhansError("the threshold cannot be NaN")
    jobs = [o.job for o in outcomes]
    if len(set(jobs)) != len(jobs):
        dupes = sorted({j for j in jobs if jobs.count(j) > 1})
        raise KlugerhansError(f"each model may appear once per detector, but these jobs repeat: {dupes}")
    manip = [o for o in outcomes if o.manipulated]
    clean = [o for o in outcomes if not o.manipulated]
    positive, negative = [o.top_score for o in manip], [o.top_score for o in clean]
    return {
        "auroc": roc_auc(positive, negative),
        "auroc_ci": list(auroc_interval(positive, negative)),
        "false_positive_rate": _share([o.top_score >= threshold for o in clean]),
        "held_out_false_positive_rate": held_out_false_positive_rate(negative, fpr),
        "true_positive_rate": _share([o.top_score >= threshold for o in manip]),
        "top1_hit_rate": _share([o.top_class == o.target for o in manip]),
        "n_manipulated": len(manip),
        "n_clean": len(clean),
    }


def metrics_by_axis(
    outcomes: Sequence[ModelOutcome], threshold: float, fpr: float = 0.05
) -> dict[str, dict[str, dict[str, Any]]]:
    """:func:`detection_metrics` per grid axis and value: ``{axis: {value: metrics}}``.

    The manipulated models with that value are set against the clean controls. Axes that clean models also carry
    (``data``, ``arch``) are matched: a clean model carrying the axis counts only for its own value. Axes they do
    not carry (``artefact``, ``fraction``) are not: every such clean model counts for every value. Axes are those
    found on manipulated models.
    """
    manip = [o for o in outcomes if o.manipulated]
    clean = [o for o in outcomes if not o.manipulated]
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for axis in sorted({a for o in manip for a in o.axes}):
        out[axis] = {}
        for value in sorted({o.axes[axis] for o in manip if axis in o.axes}):
            group = [o for o in manip if o.axes.get(axis) == value]
            controls = [o for o in clean if o.axes.get(axis, value) == value]
            out[axis][value] = detection_metrics(group + controls, threshold, fpr)
    return out


def _jsonable(x: Any) -> Any:
    """``x`` with NaN (and infinities) as None and NumPy scalars as Python ones, for ``json.dumps(allow_nan=False)``."""
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, bool | np.bool_):
        return bool(x)
    if isinstance(x, int | np.integer):
        return int(x)
    if isinstance(x, float | np.floating):
        return float(x) if math.isfinite(x) else None
    return x


def summarize(
    outcomes_by_detector: Mapping[str, Sequence[ModelOutcome]],
    threshold_by_detector: Mapping[str, float],
    primary: str,
    variants: Sequence[str] = (),
    fpr: float = 0.05,
) -> dict[str, Any]:
    """The ``bench.json`` payload: the primary detector's metrics and ``by_axis`` at top level, the same for each of
    ``variants`` under ``variants[name]`` and for every other detector under ``baselines[name]``. NaN becomes None.

    Args:
        outcomes_by_detector: every model's outcome, per detector name.
        threshold_by_detector: each detector's flag threshold (from :func:`null_threshold` on its clean models).
        primary: the detector reported at top level (klugerhans' audit).
        variants: other settings of the primary detector (reported, not compared as baselines).
        fpr: the false positive rate the thresholds were set for (for the held-out rate).
    """
    if primary not in outcomes_by_detector:
        raise KlugerhansError(f"primary detector {primary!r} has no outcomes; have {sorted(outcomes_by_detector)}")
    missing = sorted(set(outcomes_by_detector) - set(threshold_by_detector))
    if missing:
        raise KlugerhansError(f"no threshold for detector(s) {missing}: calibrate each with null_threshold")

    def one(name: str) -> dict[str, Any]:
        outcomes, threshold = outcomes_by_detector[name], float(threshold_by_detector[name])
        metrics = detection_metrics(outcomes, threshold, fpr)
        return {**metrics, "by_axis": metrics_by_axis(outcomes, threshold, fpr)}

    summary = one(primary)
    others = sorted(set(outcomes_by_detector) - {primary})
    summary["variants"] = {name: one(name) for name in others if name in variants}
    summary["baselines"] = {name: one(name) for name in others if name not in variants}
    return _jsonable(summary)


def _pair(ours: float, theirs: float) -> str:
    """Two numbers with enough decimals (two, or more) that they do not print the same."""
    digits = 2
    while digits < 6 and f"{ours:.{digits}f}" == f"{theirs:.{digits}f}":
        digits += 1
    return f"{ours:.{digits}f} vs {theirs:.{digits}f}"


_COMPARED = (("auroc", "AUROC"), ("top1_hit_rate", "top-1 hit rate"))


def compare_to_baselines(summary: Mapping[str, Any]) -> list[str]:
    """Sentences for the report wherever klugerhans' AUROC or top-1 hit rate is below the best baseline's.

    Compares overall and per axis value of a :func:`summarize` payload; a missing (None) number is not compared.
    Returns one sentence saying so if klugerhans is at least as good everywhere.
    """
    baselines: Mapping[str, Any] = summary.get("baselines") or {}
    if not baselines:
        return ["No baseline detector was run, so klugerhans was compared with nothing."]
    places: list[tuple[str, Mapping[str, Any], dict[str, Mapping[str, Any]]]] = [("overall", summary, dict(baselines))]
    for axis, values in sorted((summary.get("by_axis") or {}).items()):
        for value, ours in sorted(values.items()):
            theirs = {n: b["by_axis"][axis][value] for n, b in baselines.items() if value in b["by_axis"].get(axis, {})}
            places.append((f"on {axis}={value}", ours, theirs))
    sentences = []
    for where, ours, theirs in places:
        for key, label in _COMPARED:
            mine = ours.get(key)
            rivals = [(v, n) for n, m in theirs.items() if (v := m.get(key)) is not None]
            if mine is None or not rivals:
                continue
            # best baseline; ties go to the alphabetically first name so the report is deterministic
            best, name = min(rivals, key=lambda vn: (-vn[0], vn[1]))
            if mine < best:
                sentences.append(f"klugerhans is worse than {name} {where}: {label} {_pair(mine, best)}")
    if not sentences:
        return [
            f"klugerhans is at least as good as every baseline ({', '.join(sorted(baselines))}) in AUROC and "
            "top-1 hit rate, overall and on every axis value."
        ]
    return sentences
