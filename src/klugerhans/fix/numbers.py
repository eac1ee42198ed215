"""What ``klugerhans fix`` measures, as typed records; :meth:`~klugerhans.fix.run.FixResult.to_json` makes ``fix.json``.

:class:`AuditSummary` is the part of an audit the repair acts on (which class to repair, and whether the audit still
flags it afterwards); :class:`Measurement` is one model on the clean test split; :class:`LocateNumbers` says how
much of the artefact LRP located; :class:`FixNumbers` holds them all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from klugerhans.audit.result import AuditResult
from klugerhans.models.evaluation import Evaluation

__all__ = ["AuditSummary", "FixNumbers", "LocateNumbers", "Measurement", "score_located"]


@dataclass(frozen=True)
class AuditSummary:
    """An audit's ranking and flags, as ``fix.json`` records them before and after the repair."""

    suspicion_ranking: tuple[int, ...]
    """Tested classes, most suspicious first."""
    flagged: tuple[int, ...]
    """Flagged classes, most suspicious first."""
    broad_rate: dict[int, float]
    """Class -> broad hijack rate (the suspicion score)."""
    threshold: float
    """Broad hijack rate at or above which a significant class is flagged."""
    untested: tuple[int, ...] = ()
    """Classes with too few images for the transplant test."""
    n_classes: int = 0
    """Classes present in the audited data."""
    accuracy: float = 0.0
    """Share of the audited images classified correctly."""

    @classmethod
    def from_result(cls, result: AuditResult) -> AuditSummary:
        """The summary of an audit just computed."""
        ranking = result.ranking
        return cls(
            suspicion_ranking=tuple(int(c) for c in ranking.order),
            flagged=tuple(int(c) for c in ranking.flagged),
            broad_rate={int(c): float(v) for c, v in ranking.scores.items()},
            threshold=ranking.threshold,
            untested=tuple(int(c) for c in ranking.untested),
            n_classes=len(np.unique(result.data.labels)),
            accuracy=result.accuracy or 0.0,
        )

    @classmethod
    def from_json(cls, record: Mapping[str, Any]) -> AuditSummary:
        """Read a summary back: the ``audit`` entry of a ``fix.json``, or a whole ``audit.json`` (whose ``per_class``
        holds the broad hijack rates as ``suspicion``)."""
        per_class = record.get("per_class", {})
        broad = record.get("broad_rate")
        if broad is None:
            broad = {c: entry["suspicion"] for c, entry in per_class.items() if entry.get("suspicion") is not None}
        return cls(
            suspicion_ranking=tuple(int(c) for c in record["suspicion_ranking"]),
            flagged=tuple(int(c) for c in record["flagged"]),
            broad_rate={int(c): float(v) for c, v in broad.items()},
            threshold=float(record["threshold"]),
            untested=tuple(int(c) for c in record.get("untested", ())),
            n_classes=int(record.get("n_classes", len(per_class))),
            accuracy=float(record.get("accuracy") or 0.0),
        )

    def to_json(self) -> dict[str, Any]:
        """JSON-ready fields; class ids as strings in ``broad_rate``."""
        return {
            "suspicion_ranking": list(self.suspicion_ranking),
            "flagged": list(self.flagged),
            "broad_rate": {str(c): v for c, v in self.broad_rate.items()},
            "threshold": self.threshold,
            "untested": list(self.untested),
            "n_classes": self.n_classes,
            "accuracy": self.accuracy,
        }


_MEASURED = ("accuracy", "accuracy_non_target", "clean_target_accuracy", "flip_rate", "flip_rate_by_class", "n_images")
"""The numbers of an :class:`~klugerhans.models.evaluation.Evaluation` that ``fix.json`` keeps per model."""


@dataclass(frozen=True)
class Measurement:
    """One model (before, after or the control) on the clean test split, and its audit."""

    evaluation: Evaluation
    """Accuracy and sticker flip rate on the test split."""
    audit: AuditSummary | None = None
    """The audit of the model on its training images (None: not audited, the control)."""

    def to_json(self) -> dict[str, Any]:
        """The kept evaluation numbers, then ``audit``."""
        numbers = self.evaluation.to_json()
        kept = {k: numbers[k] for k in _MEASURED}
        return kept if self.audit is None else kept | {"audit": self.audit.to_json()}


@dataclass(frozen=True)
class LocateNumbers:
    """How the located artefact masks look, and how they match the true sticker masks (for the report only)."""

    images: int
    """Training images of the class the artefact was located in."""
    mean_area_px: float
    """Mean located area in pixels."""
    relevance_share_inside: float
    """Mean share of the positive relevance inside the located mask."""
    truth_available: bool
    """Whether any of the images carries a true artefact mask."""
    truth_covered: float | None
    """Mean share of each true mask the located mask covers (None without truth)."""
    truth_covered_90: float | None
    """Share of true masks covered at least 90%."""
    precision: float | None
    """Mean share of the located pixels inside the true mask."""


def score_located(located: np.ndarray, share: np.ndarray, truth: np.ndarray) -> LocateNumbers:
    """Score (K, S, S) bool located masks against (K, S, S) bool true masks; ``share``: (K,) relevance inside."""
    with_truth = truth.any(axis=(1, 2))
    hits = (located & truth).sum((1, 2))
    covered = hits / np.maximum(truth.sum((1, 2)), 1)
    precision = hits / np.maximum(located.sum((1, 2)), 1)
    some = bool(with_truth.any())
    return LocateNumbers(
        images=len(located),
        mean_area_px=float(located.sum((1, 2)).mean()),
        relevance_share_inside=float(share.mean()),
        truth_available=some,
        truth_covered=float(covered[with_truth].mean()) if some else None,
        truth_covered_90=float((covered[with_truth] >= 0.9).mean()) if some else None,
        precision=float(precision[with_truth].mean()) if some else None,
    )


@dataclass(frozen=True)
class FixNumbers:
    """Everything :func:`~klugerhans.fix.run.compute_fix` measured."""

    locate: LocateNumbers
    """The located artefact."""
    details: dict[str, Any]
    """The repair method's own numbers (:attr:`~klugerhans.fix.methods.FixOutcome.details`)."""
    before: Measurement
    """The model before the repair."""
    after: Measurement
    """The repaired model."""
    control: Measurement | None = None
    """The control model, if one was given."""
    seconds: float = 0.0
    """Wall time of the whole repair."""
