"""Replay the audit's flag decision under other rules on a suite's finished jobs (no model is run again).

Each job's ``result.json`` keeps, per class and transplant probe, the broad hijack rate, its control's and the
p-value, which is all the decision reads. This prints, per rule, what it flags on each model and the suite-level
counts a rule is judged by: manipulated models (whose artefact took) with the planted class flagged alone, flagged
with others, missed; controls with any flag. Then the model-level AUROC (with its 95% bootstrap interval) of two
scores a model could be ranked by: its top broad hijack rate (what ``bench.json`` reports) and its *lead*, the top
class's excess over the runner-up's (relative to the model's own classes, as Neural Cleanse's anomaly index). Usage::

    python benchmarks/decision_rules.py --out /root/bench-takes [--alpha 0.01] \\
        [--audit plain-r18=OUT/plain-r18/audit.json@4 --audit plain-r18-control=OUT/plain-r18-control/audit.json]

``--audit NAME=AUDIT_JSON[@TARGET]`` adds a model audited elsewhere (``klugerhans audit``, or
``benchmarks/audit_transfer.py``): its ``audit.json`` holds the same per-probe numbers; ``@TARGET`` is its planted
class, left out for a clean control.

Rules (every one keeps the floor and the McNemar test of the shipped audit, ``clear``):

* ``shipped`` (``klugerhans.audit.ranking``): a class leads the rest by its excess (broad rate less its control's)
  at least 3-fold, classes within a third of the top leading together; of classes that lead together (what a
  ResNet's own aligned parts look like beside a strong shortcut), only those that also act elsewhere (the best excess
  of a probe that does not paste in place, ``klugerhans.audit.probes.IN_PLACE``, at least a third of their own);
* ``all_leaders``: as shipped, every class that leads together flagged (the rule before);
* ``top1``: only the top class, if it leads the second 3-fold;
* ``co_window``: as shipped, but a co-leader must act elsewhere with a third of the *top's* excess;
* ``sep2``: as all_leaders with 2-fold separation;
* ``sep2_own_window``: as shipped with 2-fold separation;
* ``or_elsewhere``: as shipped, or a class that stands apart 3-fold by its excess elsewhere alone (a fixed-place
  artefact that a ResNet also reads a little elsewhere, beside clean classes whose parts act only in place);
* ``tenth``: as shipped, and every flagged class, a single leader too, acts elsewhere with at least a tenth of its own
  excess (a clean class whose part acts only in place is never flagged; nor is an artefact that does the same).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from klugerhans.audit.probes import IN_PLACE
from klugerhans.audit.ranking import stand_apart
from klugerhans.bench.metrics import auroc_interval, roc_auc
from klugerhans.bench.results import DetectorResult, JobResult
from klugerhans.bench.run import PRIMARY

Rule = Callable[[dict[int, float], dict[int, float]], set[int]]


def _top1(excess: dict[int, float], elsewhere: dict[int, float]) -> set[int]:
    ranked = sorted(excess, key=lambda c: -excess[c])
    if not ranked or excess[ranked[0]] <= 0:
        return set()
    second = excess[ranked[1]] if len(ranked) > 1 else 0.0
    return {ranked[0]} if excess[ranked[0]] >= 3 * max(second, 0.0) else set()


def _co_window(excess: dict[int, float], elsewhere: dict[int, float]) -> set[int]:
    lead = stand_apart(excess, 3.0)
    if len(lead) <= 1:
        return lead
    top = max(lead, key=lambda c: excess[c])
    return {c for c in lead if c == top or elsewhere.get(c, 0.0) >= excess[top] / 3}


def _co_own_window(excess: dict[int, float], elsewhere: dict[int, float], separation: float = 3.0) -> set[int]:
    lead = stand_apart(excess, separation)
    if len(lead) <= 1:
        return lead
    return {c for c in lead if elsewhere.get(c, 0.0) >= excess[c] / separation}


RULES: dict[str, Rule] = {
    "shipped": _co_own_window,
    "all_leaders": lambda excess, elsewhere: stand_apart(excess, 3.0),
    "top1": _top1,
    "co_window": _co_window,
    "sep2": lambda excess, elsewhere: stand_apart(excess, 2.0),
    "sep2_own_window": lambda excess, elsewhere: _co_own_window(excess, elsewhere, 2.0),
    "or_elsewhere": lambda excess, elsewhere: _co_own_window(excess, elsewhere) | stand_apart(elsewhere, 3.0),
    "tenth": lambda excess, elsewhere: {
        c for c in _co_own_window(excess, elsewhere) if elsewhere.get(c, 0.0) >= excess[c] / 10
    },
}


@dataclass(frozen=True)
class _Case:
    """One audited model: a suite job's or an ``audit.json``'s per-class, per-probe numbers."""

    id: str
    arch: str
    target: int | None
    by_probe: dict[int, dict[str, dict[str, float]]]
    threshold: float | None
    top_score: float


def _job_case(r: JobResult) -> _Case:
    detector: DetectorResult = r.detectors[PRIMARY]
    by_probe = {int(c): probes for c, probes in (detector.by_probe or {}).items()}
    arch = r.axes.get("arch", "?").split(":")[-1]
    top = max(detector.scores.values(), default=0.0)
    return _Case(r.id, arch, r.target, by_probe, detector.threshold, top)


def _audit_case(spec: str) -> _Case:
    name, _, rest = spec.partition("=")
    path, _, target = rest.partition("@")
    audit = json.loads(Path(path).read_text())
    by_probe = {
        int(c): entry["transplant"]["by_probe"] for c, entry in audit["per_class"].items() if entry.get("transplant")
    }
    arch = str(audit.get("model", {}).get("arch", "audit"))
    top = max((float(e["suspicion"]) for e in audit["per_class"].values() if e.get("transplant")), default=0.0)
    return _Case(name, arch, int(target) if target else None, by_probe, audit.get("threshold"), top)


def _classes(case: _Case, alpha: float) -> tuple[dict[int, float], dict[int, float], set[int]]:
    """Per class: excess of its best probe, the best excess of a probe that does not paste in place, and whether it
    is clear (floor and test)."""
    threshold = case.threshold if case.threshold is not None else float("inf")
    n_probes = max((len(p) for p in case.by_probe.values()), default=1)
    level = alpha / max(1, len(case.by_probe) * n_probes)
    excess, elsewhere, clear = {}, {}, set()
    for c, probes in case.by_probe.items():
        best = max(probes.values(), key=lambda p: p["broad_rate"])
        excess[c] = best["broad_rate"] - best["broad_control_rate"]
        acts = [p["broad_rate"] - p["broad_control_rate"] for n, p in probes.items() if n not in IN_PLACE]
        elsewhere[c] = max(acts, default=excess[c])
        if any(p["broad_rate"] >= threshold and p["p_value"] <= level for p in probes.values()):
            clear.add(c)
    return excess, elsewhere, clear


def _lead(excess: dict[int, float]) -> float:
    """The top class's excess over the runner-up's (the runner-up floored at 0.01, a few recipients' worth)."""
    ranked = sorted(excess.values(), reverse=True)
    if not ranked:
        return 0.0
    return max(ranked[0], 0.0) / max(ranked[1] if len(ranked) > 1 else 0.0, 0.01)


def _print_scores(cases: list[_Case]) -> None:
    """Model-level AUROC of the top broad hijack rate and of the lead, manipulated against clean models."""
    by_score: dict[str, tuple[list[float], list[float]]] = {"top_broad_rate": ([], []), "lead": ([], [])}
    for case in cases:
        excess, _, _ = _classes(case, 1.0)
        side = 0 if case.target is not None else 1
        by_score["top_broad_rate"][side].append(case.top_score)
        by_score["lead"][side].append(_lead(excess))
    for name, (positive, negative) in by_score.items():
        if positive and negative:
            low, high = auroc_interval(positive, negative)
            print(f"AUROC by {name}: {roc_auc(positive, negative):.3f} [{low:.3f}, {high:.3f}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=None, help="the suite folder (jobs/<id>/result.json)")
    parser.add_argument("--audit", action="append", default=[], help="NAME=AUDIT_JSON[@TARGET] (repeatable)")
    parser.add_argument("--alpha", type=float, default=0.01)
    args = parser.parse_args()
    found = [
        JobResult.from_json(json.loads(p.read_text())) for p in sorted(Path(args.out or "").glob("jobs/*/result.json"))
    ]
    cases = [_job_case(r) for r in found if r.counts] if args.out else []
    cases += [_audit_case(spec) for spec in args.audit]
    counts = {name: {"alone": 0, "with_others": 0, "missed": 0, "controls_flagged": 0} for name in RULES}
    for case in cases:
        excess, elsewhere, clear = _classes(case, args.alpha)
        line = []
        for name, rule in RULES.items():
            flagged = sorted(rule(excess, elsewhere) & clear, key=lambda c: -excess[c])
            line.append(f"{name} {flagged}")
            tally = counts[name]
            if case.target is None:
                tally["controls_flagged"] += bool(flagged)
            elif flagged == [case.target]:
                tally["alone"] += 1
            elif case.target in flagged:
                tally["with_others"] += 1
            else:
                tally["missed"] += 1
        print(f"{case.id:24s} {case.arch:10s} target {case.target!s:4s} " + "; ".join(line))
    _print_scores(cases)
    n_manipulated = sum(c.target is not None for c in cases)
    print(f"\n{n_manipulated} manipulated models whose artefact took, {len(cases) - n_manipulated} controls")
    for name, tally in counts.items():
        print(f"{name:10s} " + ", ".join(f"{k} {v}" for k, v in tally.items()))


if __name__ == "__main__":
    main()
