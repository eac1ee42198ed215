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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields

from klugerhans.bench.records import Record
from klugerhans.bench.statistics import (
    BOOTSTRAP_DRAWS,
    Threshold,
    auroc_interval,
    held_out_false_positive_rate,
    null_threshold,
    roc_auc,
)
from klugerhans.defaults import DEFAULT_FPR
from klugerhans.errors import KlugerhansError

__all__ = [
    "BOOTSTRAP_DRAWS",
    "METRIC_KEYS",
    "DetectionMetrics",
    "DetectorSummary",
    "ModelOutcome",
    "SuiteMetrics",
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
class DetectionMetrics(Record):
    """How well one detector separates manipulated from clean models (:func:`detection_metrics`); NaN where a rate
    needs a side that has no model (``null`` in JSON)."""

    auroc: float
    """AUROC of the models' top scores, manipulated against clean."""
    auroc_ci: tuple[float, float]
    """Its 95% percentile bootstrap interval (:func:`auroc_interval`)."""
    false_positive_rate: float
    """Share of clean models flagged at the threshold (in-sample: the threshold was set on them)."""
    held_out_false_positive_rate: float
    """Share of clean models flagged by a threshold set on the other clean models."""
    true_positive_rate: float
    """Share of manipulated models flagged at the threshold."""
    top1_hit_rate: float
    """Share of manipulated models whose most suspicious class is the planted one."""
    n_manipulated: int
    """Manipulated models measured."""
    n_clean: int
    """Clean models measured."""


METRIC_KEYS = tuple(f.name for f in fields(DetectionMetrics))
"""The keys of :class:`DetectionMetrics`, in the order the report shows them."""


@dataclass(frozen=True)
class DetectorSummary(DetectionMetrics):
    """One detector's metrics over all models and per grid axis value."""

    by_axis: dict[str, dict[str, DetectionMetrics]]
    """Axis -> value -> the metrics of the manipulated models with that value against the clean controls."""


@dataclass(frozen=True)
class SuiteMetrics(DetectorSummary):
    """Every detector's metrics (:func:`summarize`): the primary detector's at top level, the others by name."""

    variants: dict[str, DetectorSummary]
    """Other settings of the primary detector (reported, not compared as baselines)."""
    baselines: dict[str, DetectorSummary]
    """The detectors klugerhans is set against."""


def _share(flags: Sequence[bool]) -> float:
    """Share of True, NaN for an empty sequence."""
    return sum(flags) / len(flags) if flags else math.nan


def detection_metrics(outcomes: Sequence[ModelOutcome], threshold: float, fpr: float = DEFAULT_FPR) -> DetectionMetrics:
    """AUROC (manipulated vs clean, by top score) with its 95% bootstrap interval, the rates at ``threshold``, the
    held-out false positive rate at a threshold set like ``threshold`` (target ``fpr``) and the top-1 hit rate.

    A model is flagged when its top score is ``>= threshold``. Rates needing a side that has no model are NaN.
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
    return DetectionMetrics(
        auroc=roc_auc(positive, negative),
        auroc_ci=auroc_interval(positive, negative),
        false_positive_rate=_share([o.top_score >= threshold for o in clean]),
        held_out_false_positive_rate=held_out_false_positive_rate(negative, fpr),
        true_positive_rate=_share([o.top_score >= threshold for o in manip]),
        top1_hit_rate=_share([o.top_class == o.target for o in manip]),
        n_manipulated=len(manip),
        n_clean=len(clean),
    )


def metrics_by_axis(
    outcomes: Sequence[ModelOutcome], threshold: float, fpr: float = DEFAULT_FPR
) -> dict[str, dict[str, DetectionMetrics]]:
    """:func:`detection_metrics` per grid axis and value: ``{axis: {value: metrics}}``.

    The manipulated models with that value are set against the clean controls. Axes that clean models also carry
    (``data``, ``arch``) are matched: a clean model carrying the axis counts only for its own value. Axes they do
    not carry (``artefact``, ``fraction``) are not: every such clean model counts for every value. Axes are those
    found on manipulated models.
    """
    manip = [o for o in outcomes if o.manipulated]
    clean = [o for o in outcomes if not o.manipulated]
    out: dict[str, dict[str, DetectionMetrics]] = {}
    for axis in sorted({a for o in manip for a in o.axes}):
        out[axis] = {}
        for value in sorted({o.axes[axis] for o in manip if axis in o.axes}):
            group = [o for o in manip if o.axes.get(axis) == value]
            controls = [o for o in clean if o.axes.get(axis, value) == value]
            out[axis][value] = detection_metrics(group + controls, threshold, fpr)
    return out


def summarize(
    outcomes_by_detector: Mapping[str, Sequence[ModelOutcome]],
    threshold_by_detector: Mapping[str, float],
    primary: str,
    variants: Sequence[str] = (),
    fpr: float = DEFAULT_FPR,
) -> SuiteMetrics:
    """Every detector's metrics and ``by_axis``: the primary detector's at top level, each of ``variants`` under
    ``variants[name]`` and every other detector under ``baselines[name]``.

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

    def one(name: str) -> DetectorSummary:
        outcomes, threshold = outcomes_by_detector[name], float(threshold_by_detector[name])
        metrics = detection_metrics(outcomes, threshold, fpr)
        return DetectorSummary(**vars(metrics), by_axis=metrics_by_axis(outcomes, threshold, fpr))

    others = sorted(set(outcomes_by_detector) - {primary})
    return SuiteMetrics(
        **vars(one(primary)),
        variants={name: one(name) for name in others if name in variants},
        baselines={name: one(name) for name in others if name not in variants},
    )


def _pair(ours: float, theirs: float) -> str:
    """Two numbers with enough decimals (two, or more) that they do not print the same."""
    digits = 2
    while digits < 6 and f"{ours:.{digits}f}" == f"{theirs:.{digits}f}":
        digits += 1
    return f"{ours:.{digits}f} vs {theirs:.{digits}f}"


_COMPARED: tuple[tuple[Callable[[DetectionMetrics], float], str], ...] = (
    (lambda m: m.auroc, "AUROC"),
    (lambda m: m.top1_hit_rate, "top-1 hit rate"),
)


def compare_to_baselines(summary: SuiteMetrics) -> list[str]:
    """Sentences for the report wherever klugerhans' AUROC or top-1 hit rate is below the best baseline's.

    Compares overall and per axis value of a :func:`summarize` result; a missing (NaN) number is not compared.
    Returns one sentence saying so if klugerhans is at least as good everywhere.
    """
    baselines = summary.baselines
    if not baselines:
        return ["No baseline detector was run, so klugerhans was compared with nothing."]
    places: list[tuple[str, DetectionMetrics, dict[str, DetectionMetrics]]] = [("overall", summary, dict(baselines))]
    for axis, values in sorted(summary.by_axis.items()):
        for value in sorted(values):
            theirs = {n: b.by_axis[axis][value] for n, b in baselines.items() if value in b.by_axis.get(axis, {})}
            places.append((f"on {axis}={value}", values[value], theirs))
    sentences = []
    for where, ours, theirs in places:
        for read, label in _COMPARED:
            mine = read(ours)
            rivals = [(v, n) for n, m in theirs.items() if not math.isnan(v := read(m))]
            if math.isnan(mine) or not rivals:
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
