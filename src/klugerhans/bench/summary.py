"""A suite's finished jobs -> ``bench.json`` and ``report.html``: thresholds from clean models, metrics per axis.

Each detector's threshold is set on the suite's clean controls only (:func:`~klugerhans.bench.metrics.null_threshold`
at ``fpr``), never on manipulated models; its rationale goes into ``bench.json``. The audit's own flags (its shipped
threshold plus its significance test) are reported beside, as ``shipped``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from klugerhans.bench.grid import BenchJob
from klugerhans.bench.metrics import (
    METRIC_KEYS,
    DetectorSummary,
    ModelOutcome,
    SuiteMetrics,
    Threshold,
    compare_to_baselines,
    null_threshold,
    summarize,
)
from klugerhans.bench.records import Record
from klugerhans.bench.results import TOTAL, CompositeScore, JobResult
from klugerhans.bench.run import PRIMARY, VARIANTS, load_result
from klugerhans.defaults import DEFAULT_FPR
from klugerhans.errors import KlugerhansError
from klugerhans.io import atomic_write_figure, atomic_write_text
from klugerhans.report.html import Report, Section, write_report

__all__ = [
    "LEARNED_FLIP_RATE",
    "BenchSummary",
    "NotTaken",
    "RepairMeans",
    "RepairSummary",
    "ShippedDecision",
    "collect_outcomes",
    "summarize_suite",
    "write_bench",
]

LEARNED_FLIP_RATE = 0.25
"""A manipulated model *learned* its shortcut when gluing the artefact on other classes' test images turns at least
this share into the target class. Models that did not learn it stay in the suite (a detector should not flag them
either, ideally); the axis ``learned`` (yes/no) shows both groups apart."""


@dataclass(frozen=True)
class ShippedDecision(Record):
    """The audit's own decision (any class flagged: its shipped threshold and significance test), as it ships."""

    true_positive_rate: float
    """Share of manipulated models with a flagged class."""
    false_positive_rate: float
    """Share of clean models with a flagged class."""
    flagged_target_only: float
    """Share of manipulated models with the target flagged alone."""


@dataclass(frozen=True)
class RepairMeans(Record):
    """Mean numbers of the repaired models, before or after their repair."""

    clean_target_accuracy: float
    """Accuracy on the clean test images of the repaired class."""
    flip_rate: float
    """Share of the other classes' test images that the artefact turns into the class."""


@dataclass(frozen=True)
class RepairSummary(Record):
    """The repairs of a suite's manipulated models (NaN: none was repaired)."""

    n: int
    """Models repaired."""
    before: RepairMeans
    """Before their repair."""
    after: RepairMeans
    """After it."""
    gap_to_control: float
    """Mean clean accuracy of the clean controls on the target class, less the repaired model's."""
    fixed_right_class: float
    """Share of repairs of the planted class (the audit's top class was the target)."""


@dataclass(frozen=True)
class NotTaken(Record):
    """The manipulated models whose artefact never took, reported apart from the headline."""

    n: int
    """How many."""
    attack_success: dict[str, tuple[float, ...]]
    """Job id -> the attack success of each training attempt."""


@dataclass(frozen=True)
class BenchSummary(SuiteMetrics):
    """A suite's numbers, ``bench.json``: every detector's metrics (klugerhans' at top level), their thresholds and
    the audit's own decision, localisation, repair, the models left out and the time taken."""

    thresholds: dict[str, Threshold]
    """Each detector's flag threshold, set on the clean controls only."""
    shipped: ShippedDecision
    """The audit's own decision."""
    localisation: dict[str, CompositeScore]
    """Composite -> its mean localisation of the true artefact."""
    fix: RepairSummary
    """The repairs."""
    suite: str
    """The suite's name."""
    n_jobs: int
    """Jobs in the suite."""
    n_finished: int
    """Jobs finished (those whose artefact did not take included)."""
    partial_detectors: tuple[str, ...]
    """Detectors left out because they ran on some models only (added or dropped while the suite resumed)."""
    not_taken: NotTaken
    """The models whose artefact never took."""
    comparison: tuple[str, ...]
    """Where klugerhans is behind the best baseline (:func:`compare_to_baselines`), in sentences."""
    seconds: dict[str, float]
    """``total``: seconds of every finished job together."""
    seconds_per_model: dict[str, float]
    """Detector -> median seconds per model."""


def collect_outcomes(results: Sequence[JobResult]) -> dict[str, list[ModelOutcome]]:
    """Detector name -> one :class:`ModelOutcome` per finished job."""
    by_detector: dict[str, list[ModelOutcome]] = {}
    for r in results:
        for name, d in r.detectors.items():
            outcome = ModelOutcome(r.id, r.manipulated, r.target, d.scores, d.flagged, _axes(r))
            by_detector.setdefault(name, []).append(outcome)
    return by_detector


def _seconds_per_model(results: Sequence[JobResult]) -> dict[str, float]:
    """Median wall-clock seconds each detector took per model (jobs measured before detectors were timed skipped)."""
    times: dict[str, list[float]] = {}
    for r in results:
        for name, d in r.detectors.items():
            if d.seconds is not None:
                times.setdefault(name, []).append(d.seconds)
    return {name: float(np.median(values)) for name, values in sorted(times.items())}


def _axes(result: JobResult) -> dict[str, str]:
    """The job's grid values, and for a manipulated model whether it learned the shortcut (see LEARNED_FLIP_RATE)."""
    axes = dict(result.axes)
    if result.manipulated:
        axes["learned"] = "yes" if result.evaluation.flip_rate >= LEARNED_FLIP_RATE else "no"
    return axes


def _shipped(outcomes: Sequence[ModelOutcome]) -> ShippedDecision:
    man = [o for o in outcomes if o.manipulated]
    clean = [o for o in outcomes if not o.manipulated]
    return ShippedDecision(
        true_positive_rate=_mean([bool(o.flagged) for o in man]),
        false_positive_rate=_mean([bool(o.flagged) for o in clean]),
        flagged_target_only=_mean([tuple(o.flagged) == (o.target,) for o in man]),
    )


def _mean(values: Sequence[float]) -> float:
    """The mean of the finite values; NaN if there is none."""
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def _localisation(results: Sequence[JobResult]) -> dict[str, CompositeScore]:
    found = [r.localisation.by_composite for r in results if r.localisation is not None]
    return {
        name: CompositeScore(
            relevance_mass=_mean([f[name].relevance_mass for f in found if name in f]),
            iou=_mean([f[name].iou for f in found if name in f]),
        )
        for name in sorted({name for f in found for name in f})
    }


def _repairs(results: Sequence[JobResult]) -> RepairSummary:
    fixed = [(r, r.fix) for r in results if r.fix is not None]
    controls = [r for r in results if not r.manipulated]
    gaps = []
    for r, fix in fixed:
        control_acc = _mean([c.evaluation.per_class_accuracy[r.target] for c in controls if r.target is not None])
        if not math.isnan(control_acc):
            gaps.append(control_acc - fix.after.clean_target_accuracy)
    before, after = [fix.before for _, fix in fixed], [fix.after for _, fix in fixed]
    return RepairSummary(
        n=len(fixed),
        before=RepairMeans(_mean([b.clean_target_accuracy for b in before]), _mean([b.flip_rate for b in before])),
        after=RepairMeans(_mean([a.clean_target_accuracy for a in after]), _mean([a.flip_rate for a in after])),
        gap_to_control=_mean(gaps),
        fixed_right_class=_mean([float(fix.class_id == r.target) for r, fix in fixed]),
    )


def summarize_suite(suite: str, jobs: Sequence[BenchJob], out: str | Path, fpr: float = DEFAULT_FPR) -> BenchSummary:
    """The numbers of the finished jobs of ``jobs`` in ``out`` (:func:`write_bench` writes them).

    Raises:
        KlugerhansError: no finished job, or no clean control to set a threshold on.
    """
    finished = [r for r in (load_result(out, j) for j in jobs) if r is not None]
    if not finished:
        raise KlugerhansError(f"no finished jobs in {out}; run the suite first")
    # A manipulated model whose artefact never took (the suite's min_attack_success) measures training, not
    # detection: it is reported apart, not in the headline.
    results = [r for r in finished if r.counts]
    apart = [r for r in finished if not r.counts]
    by_detector = collect_outcomes(results)
    # A detector added or dropped while the suite resumed ran on some models only: its numbers would not compare.
    partial = sorted(name for name, outcomes in by_detector.items() if name != PRIMARY and len(outcomes) < len(results))
    by_detector = {name: outcomes for name, outcomes in by_detector.items() if name not in partial}
    thresholds: dict[str, Threshold] = {}
    for name, outcomes in by_detector.items():
        clean = [o.top_score for o in outcomes if not o.manipulated and math.isfinite(o.top_score)]
        if not clean:
            raise KlugerhansError("no finished clean control: thresholds are set on clean models only")
        thresholds[name] = null_threshold(clean, fpr)
    metrics = summarize(by_detector, {name: t.value for name, t in thresholds.items()}, PRIMARY, tuple(VARIANTS), fpr)
    return BenchSummary(
        **vars(metrics),
        thresholds=thresholds,
        shipped=_shipped(by_detector[PRIMARY]),
        localisation=_localisation(results),
        fix=_repairs(results),
        suite=suite,
        n_jobs=len(jobs),
        n_finished=len(finished),
        partial_detectors=tuple(partial),
        not_taken=NotTaken(n=len(apart), attack_success={r.id: r.attempts or () for r in apart}),
        comparison=tuple(compare_to_baselines(metrics)),
        seconds={TOTAL: float(sum(r.timings[TOTAL] for r in finished))},
        seconds_per_model=_seconds_per_model(finished),
    )


def _axis_figure(summary: BenchSummary, axis: str, metric: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    detectors: dict[str, DetectorSummary] = {PRIMARY: summary, **summary.baselines}
    values = sorted(summary.by_axis[axis])
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(values) + 2), 3))
    width = 0.8 / len(detectors)
    for i, (name, d) in enumerate(detectors.items()):
        found = [d.by_axis.get(axis, {}).get(v) for v in values]
        xs = np.arange(len(values)) + i * width
        ax.bar(xs, [np.nan if m is None else getattr(m, metric) for m in found], width, label=name)
    ax.set_xticks(np.arange(len(values)) + width * (len(detectors) - 1) / 2, values, fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(metric.replace("_", " "), fontsize=8)
    ax.set_title(f"{metric.replace('_', ' ')} by {axis}", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    atomic_write_figure(path, fig, dpi=100)
    plt.close(fig)


def _cell(value: object) -> object:
    """A metric as the report's table shows it: an interval as ``lo-hi``, a missing number (NaN) as None."""
    if isinstance(value, tuple):
        return "n/a" if any(math.isnan(v) for v in value) else f"{value[0]:.2f}-{value[1]:.2f}"
    return None if isinstance(value, float) and math.isnan(value) else value


def _table(summary: BenchSummary) -> list[list[object]]:
    rows: list[list[object]] = [["detector", *METRIC_KEYS]]
    for name, d in {PRIMARY: summary, **summary.variants, **summary.baselines}.items():
        rows.append([name, *(_cell(getattr(d, k)) for k in METRIC_KEYS)])
    return rows


def write_bench(summary: BenchSummary, out: str | Path) -> list[Path]:
    """Write ``bench.json``, ``report.html``/``.md`` and one figure per axis and metric into ``out``."""
    out = Path(out)
    atomic_write_text(out / "bench.json", json.dumps(summary.to_json(), indent=1))
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    shown: list[tuple[str, str]] = []
    for axis in sorted(summary.by_axis):
        for metric in ("auroc", "true_positive_rate", "top1_hit_rate"):
            path = figures / f"{axis}_{metric}.png"
            _axis_figure(summary, axis, metric, path)
            shown.append((str(path), f"{metric} by {axis}"))
    timing = ", ".join(f"{name} {sec:.1f} s" for name, sec in summary.seconds_per_model.items())
    sections = [
        Section(
            "Detection over all models",
            [*summary.comparison, *([f"Median time per model: {timing}."] if timing else [])],
            _table(summary),
        ),
        Section(
            "Thresholds (set on clean models only)",
            [f"{name}: {t.rationale}" for name, t in summary.thresholds.items()],
        ),
        Section("By axis", (), (), shown),
    ]
    report = Report(f"klugerhans bench: suite {summary.suite}", sections, f"{summary.n_finished} models")
    return [out / "bench.json", *write_report(report, out)]
