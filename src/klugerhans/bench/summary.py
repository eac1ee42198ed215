"""A suite's finished jobs -> ``bench.json`` and ``report.html``: thresholds from clean models, metrics per axis.

Each detector's threshold is set on the suite's clean controls only (:func:`~klugerhans.bench.metrics.null_threshold`
at ``fpr``), never on manipulated models; its rationale goes into ``bench.json``. The audit's own flags (its shipped
threshold plus its significance test) are reported beside, as ``shipped``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from klugerhans.bench.grid import BenchJob
from klugerhans.bench.metrics import (
    METRIC_KEYS,
    ModelOutcome,
    compare_to_baselines,
    null_threshold,
    summarize,
)
from klugerhans.bench.run import PRIMARY, VARIANTS, load_result
from klugerhans.errors import KlugerhansError
from klugerhans.io import atomic_write_figure, atomic_write_text, to_jsonable
from klugerhans.report.html import Report, Section, write_report

__all__ = ["LEARNED_FLIP_RATE", "collect_outcomes", "summarize_suite", "write_bench"]

LEARNED_FLIP_RATE = 0.25
"""A manipulated model *learned* its shortcut when gluing the artefact on other classes' test images turns at least
this share into the target class. Models that did not learn it stay in the suite (a detector should not flag them
either, ideally); the axis ``learned`` (yes/no) shows both groups apart."""


def collect_outcomes(results: Sequence[dict[str, Any]]) -> dict[str, list[ModelOutcome]]:
    """Detector name -> one :class:`ModelOutcome` per finished job (from ``result.json`` contents)."""
    by_detector: dict[str, list[ModelOutcome]] = {}
    for r in results:
        for name, d in r["detectors"].items():
            scores = {int(c): (math.nan if v is None else float(v)) for c, v in d["scores"].items()}
            by_detector.setdefault(name, []).append(
                ModelOutcome(
                    job=r["id"],
                    manipulated=bool(r["manipulated"]),
                    target=r["target"],
                    scores=scores,
                    flagged=tuple(int(c) for c in d["flagged"]),
                    axes=_axes(r),
                )
            )
    return by_detector


def _seconds_per_model(results: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Median wall-clock seconds each detector took per model (jobs measured before detectors were timed skipped)."""
    times: dict[str, list[float]] = {}
    for r in results:
        for name, d in r["detectors"].items():
            if d.get("seconds") is not None:
                times.setdefault(name, []).append(float(d["seconds"]))
    return {name: float(np.median(values)) for name, values in sorted(times.items())}


def _axes(result: dict[str, Any]) -> dict[str, str]:
    """The job's grid values, and for a manipulated model whether it learned the shortcut (see LEARNED_FLIP_RATE)."""
    axes = dict(result["axes"])
    if result["manipulated"]:
        flip = result["evaluation"].get("flip_rate")
        axes["learned"] = "yes" if flip is not None and flip >= LEARNED_FLIP_RATE else "no"
    return axes


def _shipped(outcomes: Sequence[ModelOutcome]) -> dict[str, Any]:
    """The audit's own decision (any class flagged), as it ships today."""
    man = [o for o in outcomes if o.manipulated]
    clean = [o for o in outcomes if not o.manipulated]

    def share(xs: list[bool]) -> float | None:
        return float(np.mean(xs)) if xs else None

    return {
        "true_positive_rate": share([bool(o.flagged) for o in man]),
        "false_positive_rate": share([bool(o.flagged) for o in clean]),
        "flagged_target_only": share([tuple(o.flagged) == (o.target,) for o in man]),
    }


def _mean(values: list[float]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else None


def _localisation(results: Sequence[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    names = sorted({k for r in results for k in r.get("localisation", {}) if k != "n"})
    return {
        n: {
            m: _mean([r["localisation"][n][m] for r in results if n in r.get("localisation", {})])
            for m in ("relevance_mass", "iou")
        }
        for n in names
    }


def _repairs(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    fixed = [r for r in results if "fix" in r]
    controls = [r for r in results if not r["manipulated"]]
    gaps = []
    for r in fixed:
        target = r["target"]
        control_acc = _mean([c["evaluation"]["per_class_accuracy"][target] for c in controls])
        if control_acc is not None:
            gaps.append(control_acc - r["fix"]["after"]["clean_target_accuracy"])
    out: dict[str, Any] = {"n": len(fixed)}
    for when in ("before", "after"):
        out[when] = {k: _mean([r["fix"][when][k] for r in fixed]) for k in ("clean_target_accuracy", "flip_rate")}
    out["gap_to_control"] = _mean(gaps)
    out["fixed_right_class"] = _mean([float(r["fix"]["class_id"] == r["target"]) for r in fixed])
    return out


def summarize_suite(suite: str, jobs: Sequence[BenchJob], out: str | Path, fpr: float = 0.05) -> dict[str, Any]:
    """The ``bench.json`` payload of the finished jobs of ``jobs`` in ``out``.

    Raises:
        KlugerhansError: no finished job, or no clean control to set a threshold on.
    """
    finished = [r for r in (load_result(out, j) for j in jobs) if r is not None]
    if not finished:
        raise KlugerhansError(f"no finished jobs in {out}; run the suite first")
    # A manipulated model whose artefact never took (the suite's min_attack_success) measures training, not
    # detection: it is reported apart, not in the headline.
    results = [r for r in finished if r.get("took", True)]
    apart = [r for r in finished if not r.get("took", True)]
    by_detector = collect_outcomes(results)
    # A detector added or dropped while the suite resumed ran on some models only: its numbers would not compare.
    partial = sorted(name for name, outcomes in by_detector.items() if name != PRIMARY and len(outcomes) < len(results))
    by_detector = {name: outcomes for name, outcomes in by_detector.items() if name not in partial}
    thresholds: dict[str, float] = {}
    rationale: dict[str, Any] = {}
    for name, outcomes in by_detector.items():
        clean = [o.top_score for o in outcomes if not o.manipulated and math.isfinite(o.top_score)]
        if not clean:
            raise KlugerhansError("no finished clean control: thresholds are set on clean models only")
        t = null_threshold(clean, fpr)
        thresholds[name] = t.value
        rationale[name] = {
            "value": t.value, "fpr": t.fpr, "n_clean": t.n_clean, "clean_max": max(clean), "rationale": t.rationale,
        }  # fmt: skip
    payload = summarize(by_detector, thresholds, PRIMARY, tuple(VARIANTS), fpr)
    payload["thresholds"] = rationale
    payload["shipped"] = _shipped(by_detector[PRIMARY])
    payload["localisation"] = _localisation(results)
    payload["fix"] = _repairs(results)
    payload["suite"] = suite
    payload["n_jobs"] = len(jobs)
    payload["n_finished"] = len(finished)
    payload["partial_detectors"] = partial
    payload["not_taken"] = {"n": len(apart), "attack_success": {r["id"]: r["attempts"] for r in apart}}
    payload["comparison"] = compare_to_baselines(payload)
    payload["seconds"] = {"total": float(sum(r["timings"]["total"] for r in finished))}
    payload["seconds_per_model"] = _seconds_per_model(finished)
    return to_jsonable(payload)


def _axis_figure(payload: dict[str, Any], axis: str, metric: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    detectors = {PRIMARY: payload, **payload.get("baselines", {})}
    values = sorted(payload["by_axis"][axis])
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(values) + 2), 3))
    width = 0.8 / len(detectors)
    for i, (name, d) in enumerate(detectors.items()):
        heights = [d.get("by_axis", {}).get(axis, {}).get(v, {}).get(metric) for v in values]
        xs = np.arange(len(values)) + i * width
        ax.bar(xs, [np.nan if h is None else h for h in heights], width, label=name)
    ax.set_xticks(np.arange(len(values)) + width * (len(detectors) - 1) / 2, values, fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(metric.replace("_", " "), fontsize=8)
    ax.set_title(f"{metric.replace('_', ' ')} by {axis}", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    atomic_write_figure(path, fig, dpi=100)
    plt.close(fig)


def _interval(bounds: list[float | None]) -> str:
    return "n/a" if None in bounds else f"{bounds[0]:.2f}-{bounds[1]:.2f}"


def _table(payload: dict[str, Any]) -> list[list[object]]:
    rows: list[list[object]] = [["detector", *METRIC_KEYS]]
    for name, d in {PRIMARY: payload, **payload.get("variants", {}), **payload.get("baselines", {})}.items():
        rows.append([name, *(_interval(v) if isinstance(v := d.get(k), list) else v for k in METRIC_KEYS)])
    return rows


def write_bench(payload: dict[str, Any], out: str | Path) -> list[Path]:
    """Write ``bench.json``, ``report.html``/``.md`` and one figure per axis and metric into ``out``."""
    out = Path(out)
    atomic_write_text(out / "bench.json", json.dumps(payload, indent=1))
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    shown: list[tuple[str, str]] = []
    for axis in sorted(payload["by_axis"]):
        for metric in ("auroc", "true_positive_rate", "top1_hit_rate"):
            path = figures / f"{axis}_{metric}.png"
            _axis_figure(payload, axis, metric, path)
            shown.append((str(path), f"{metric} by {axis}"))
    timing = ", ".join(f"{name} {sec:.1f} s" for name, sec in payload.get("seconds_per_model", {}).items())
    sections = [
        Section(
            "Detection over all models",
            [*payload["comparison"], *([f"Median time per model: {timing}."] if timing else [])],
            _table(payload),
        ),
        Section(
            "Thresholds (set on clean models only)",
            [f"{name}: {t['rationale']}" for name, t in payload["thresholds"].items()],
        ),
        Section("By axis", (), (), shown),
    ]
    report = Report(f"klugerhans bench: suite {payload['suite']}", sections, f"{payload['n_finished']} models")
    return [out / "bench.json", *write_report(report, out)]
