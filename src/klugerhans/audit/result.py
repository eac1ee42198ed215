"""What an audit found, as typed records; :meth:`AuditResult.to_json` is the one place they become JSON."""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from klugerhans.audit.collect import ClassHeatmaps
from klugerhans.audit.config import AuditConfig
from klugerhans.audit.ranking import Ranking
from klugerhans.audit.spray import SprayResult
from klugerhans.audit.thresholds import ShippedThreshold
from klugerhans.audit.transplant import TransplantResult
from klugerhans.data.classes import class_name
from klugerhans.data.dataset import SignData
from klugerhans.data.sticker import StickerConfig
from klugerhans.io import to_jsonable
from klugerhans.models.classifier import Classifier
from klugerhans.models.config import ModelConfig
from klugerhans.version import __version__

__all__ = [
    "AuditResult",
    "ClassFinding",
    "Discovery",
    "Faithfulness",
    "FlipCurve",
    "Localisation",
    "MethodComparison",
    "MethodImages",
    "Sanity",
]

SUSPICION_SCORE = (
    "broad hijack rate: share of other classes' correctly classified signs that a small part of the class's signs "
    "(its best transplant probe: the most relevant window pasted anywhere or in place, its most relevant pixels, or "
    "its colours) turns into the class, counted class by class without the quarter of recipient classes it turns "
    "most; flagged if at least the threshold, significantly above that probe's control, and apart from the model's "
    "other classes (separation)"
)
"""What ``audit.json``'s ``suspicion_score`` says the score is."""


@dataclass(frozen=True)
class ClassFinding:
    """The audit's numbers for one class present in the audited data."""

    name: str
    """Class name (the model's, else GTSRB's)."""
    n_images: int
    """Audited images of the class."""
    n_correct: int
    """Of those, classified correctly."""
    accuracy: float
    """``n_correct / n_images``."""
    n_explained: int
    """Heatmaps computed for the class (correctly classified images, up to the per-class cap)."""
    suspicion: float | None
    """Broad hijack rate (None: not tested)."""
    rank: int | None
    """Place in the suspicion ranking, 1 = most suspicious (None: not ranked)."""
    flagged: bool
    """Whether the audit flags the class."""
    transplant: TransplantResult | None
    """The transplant test (None: too few donors or recipients)."""
    spray: SprayResult | None
    """SpRAy (None: too few heatmaps)."""

    def to_json(self) -> dict[str, Any]:
        """The numbers as ``audit.json``'s ``per_class`` entry."""
        return {
            "name": self.name,
            "n_images": self.n_images,
            "n_correct": self.n_correct,
            "accuracy": self.accuracy,
            "n_explained": self.n_explained,
            "suspicion": self.suspicion,
            "rank": self.rank,
            "flagged": self.flagged,
            "transplant": self.transplant.summary() if self.transplant is not None else None,
            "spray": self.spray.summary() if self.spray is not None else None,
        }


@dataclass(frozen=True)
class Discovery:
    """How discovery ran: what ``audit.json`` reports as ``discovery``."""

    composite: str
    """LRP composite of the heatmaps."""
    n_explained: int
    """Heatmaps computed, all classes."""
    patch_px: int
    """Side of the transplanted window in pixels."""
    batch_size: int
    """LRP batch size."""
    placement: str
    """Where transplanted windows go: "random" or "same"."""
    probes: tuple[str, ...]
    """Transplant probes run."""
    spray_grid: int
    """Side of the downsampled heatmaps SpRAy clusters."""
    coverage: dict[str, Any] | None = None
    """With the gradient fallback: the explainer's coverage (``lrp_rule_share``, ``n_ops``, ``fallback_ops``)."""

    def to_json(self) -> dict[str, Any]:
        """JSON-ready fields; the coverage as ``lrp_rule_share``, ``lrp_ops`` and ``fallback_ops``."""
        out: dict[str, Any] = {
            "composite": self.composite,
            "n_explained": self.n_explained,
            "patch_px": self.patch_px,
            "batch_size": self.batch_size,
            "placement": self.placement,
            "probes": list(self.probes),
            "spray_grid": self.spray_grid,
        }
        if self.coverage is not None:
            out["lrp_rule_share"] = self.coverage["lrp_rule_share"]
            out["lrp_ops"] = self.coverage["n_ops"]
            out["fallback_ops"] = self.coverage["fallback_ops"]
        return out


@dataclass(frozen=True)
class MethodImages:
    """Images every method explains, and the first few heatmaps of each method for the report."""

    images: np.ndarray
    """(e, S, S, 3) uint8 example images (stickered signs flipped to the sticker class, if any)."""
    masks: np.ndarray
    """(e, S, S) bool sticker masks of ``images`` (all False without a sticker)."""
    targets: np.ndarray
    """(e,) explained classes."""
    maps: dict[str, np.ndarray]
    """Method -> (e, S, S) heatmaps."""


@dataclass(frozen=True)
class Localisation:
    """How well each method's heatmaps of stickered signs point at the sticker."""

    sticker: StickerConfig
    """The sticker glued on (the model's training sticker)."""
    n: int
    """Stickered signs that flipped to the sticker's class and were explained."""
    methods: dict[str, dict[str, float | int | None]]
    """Method -> :func:`~klugerhans.audit.localisation.localisation_scores` of its heatmaps."""
    n_candidates: int | None = None
    """Signs the sticker was glued on (None: none could be, e.g. the model lacks the sticker's class)."""
    flip_rate: float | None = None
    """Share of those that flipped to the sticker's class."""
    n_flipped: int | None = None
    """How many flipped."""

    def to_json(self) -> dict[str, Any]:
        """``audit.json``'s ``localisation``."""
        sticker = {"target_class": self.sticker.target_class, "size": self.sticker.size, "shape": self.sticker.shape}
        tried = (
            {"n_candidates": self.n_candidates, "flip_rate": self.flip_rate, "n_flipped": self.n_flipped}
            if self.n_candidates is not None
            else {}
        )
        return {
            "sticker": sticker,
            **tried,
            "n": self.n,
            "what": "signs of other classes, correctly classified, with the sticker glued on and then predicted as "
            "the sticker's class; each method explains that class",
            "methods": self.methods,
        }


@dataclass(frozen=True)
class FlipCurve:
    """One method's pixel-flipping result."""

    aopc: float
    """Area over the perturbation curve (higher: more faithful)."""
    curve: tuple[float, ...]
    """(steps + 1,) mean target logit after each removed region."""


@dataclass(frozen=True)
class Faithfulness:
    """Region perturbation (Samek et al. 2017) of correctly classified signs, most relevant regions first."""

    n: int
    """Signs perturbed."""
    region_px: int
    """Side of a removed region in pixels."""
    steps: int
    """Regions removed."""
    methods: dict[str, FlipCurve]
    """Method -> its curve (empty without images)."""

    def to_json(self) -> dict[str, Any]:
        """``audit.json``'s ``faithfulness``."""
        return {
            "n": self.n,
            "region_px": self.region_px,
            "steps": self.steps,
            "order": "most relevant first (MoRF), regions replaced by uniform noise",
            "score": "target logit",
            "methods": {m: {"aopc": c.aopc, "curve": list(c.curve)} for m, c in self.methods.items()},
        }


@dataclass(frozen=True)
class Sanity:
    """The model parameter randomisation test (Adebayo et al. 2018) per method."""

    mode: str
    """"cascading" or "independent" randomisation."""
    n: int
    """Images explained."""
    methods: dict[str, dict[str, Any]]
    """Method -> :func:`~klugerhans.audit.sanity.sanity_check`'s similarities per randomised layer."""

    def to_json(self) -> dict[str, Any]:
        """``audit.json``'s ``sanity`` (Spearman of absolute relevance)."""
        return {"mode": self.mode, "absolute": True, "n": self.n, "methods": self.methods}


@dataclass(frozen=True)
class MethodComparison:
    """Every configured attribution method measured on the same images."""

    localisation: Localisation
    faithfulness: Faithfulness
    examples: MethodImages
    sanity: Sanity | None = None
    """None when skipped (``n_sanity`` 0 or no correctly classified image)."""


@dataclass(frozen=True)
class AuditResult:
    """Everything an audit computed; :meth:`to_json` gives the numbers, the arrays feed the report's figures."""

    config: AuditConfig
    data: SignData
    """The audited images (with artefacts where reproduced)."""
    artefact_masks: np.ndarray | None
    """(N, S, S) bool masks of reproduced artefacts, or None."""
    preds: np.ndarray
    """(N,) predictions on the audited images."""
    heatmaps: ClassHeatmaps
    spray: dict[int, SprayResult]
    tsne: dict[int, np.ndarray]
    transplant: dict[int, TransplantResult]
    ranking: Ranking
    model: ModelConfig
    """The audited architecture."""
    discovery: Discovery
    threshold_source: ShippedThreshold | None
    """Where the threshold comes from; None: the user set it."""
    data_info: dict[str, Any] = field(default_factory=dict)
    """What :func:`~klugerhans.audit.run.load_audit_data` says about the data (``audit.json``'s ``data``)."""
    checkpoint: str | None = None
    """The checkpoint file audited (None: a model in memory)."""
    trained_sticker: StickerConfig | None = None
    """The sticker the model was trained with (None: a clean model or weights from elsewhere)."""
    comparison: MethodComparison | None = None
    """The attribution methods compared (None: no methods configured)."""
    timings: dict[str, float] = field(default_factory=dict)
    """Stage -> seconds; the report adds its own stages when it is written."""
    classifier: Classifier | None = None
    """The audited model (not serialised), for exports that recompute heatmaps."""

    def findings(self) -> dict[int, ClassFinding]:
        """Per class present in the data, in class order."""
        labels = self.data.labels
        names = self.classifier.class_names if self.classifier is not None else ()
        rank = {c: i + 1 for i, c in enumerate(self.ranking.order)}
        out: dict[int, ClassFinding] = {}
        for c in np.unique(labels).tolist():
            of_c = labels == c
            out[c] = ClassFinding(
                name=names[c] if c < len(names) else class_name(c),
                n_images=int(of_c.sum()),
                n_correct=int((of_c & (self.preds == labels)).sum()),
                accuracy=float((self.preds[of_c] == c).mean()),
                n_explained=int((self.heatmaps.labels == c).sum()),
                suspicion=self.ranking.scores.get(c),
                rank=rank.get(c),
                flagged=c in self.ranking.flagged,
                transplant=self.transplant.get(c),
                spray=self.spray.get(c),
            )
        return out

    def per_class(self) -> dict[str, dict[str, Any]]:
        """JSON-ready :meth:`findings`, keyed by class id as a string."""
        return {str(c): finding.to_json() for c, finding in self.findings().items()}

    @property
    def accuracy(self) -> float | None:
        """Share of the audited images classified correctly (None: no images)."""
        return float((self.preds == self.data.labels).mean()) if len(self.preds) else None

    def __getattr__(self, name: str) -> Any:
        # Until the comparison was typed, these were attributes: dicts as audit.json holds them, and the examples.
        if name not in ("localisation", "faithfulness", "sanity", "examples"):
            raise AttributeError(name)
        warnings.warn(f"AuditResult.{name} is now AuditResult.comparison.{name}", DeprecationWarning, stacklevel=2)
        if name == "examples":
            return self.comparison.examples if self.comparison is not None else None
        return self.to_json()[name]

    @property
    def info(self) -> dict[str, Any]:
        """JSON-ready ``model``, ``data``, ``discovery`` and ``threshold_source``, as ``audit.json`` has them."""
        source = self.threshold_source
        return {
            "model": {
                "checkpoint": self.checkpoint,
                **self.model.to_dict(),
                "trained_sticker": asdict(self.trained_sticker) if self.trained_sticker is not None else None,
            },
            "data": self.data_info or {"n_images": len(self.data), "size": self.data.size},
            "discovery": self.discovery.to_json(),
            "threshold_source": source.to_dict() if source is not None else {"set_by": "the user (--threshold)"},
        }

    def to_json(self) -> dict[str, Any]:
        """Every number of the audit as plain JSON values (NaN -> null)."""
        comparison = self.comparison
        return to_jsonable(
            {
                "klugerhans_version": __version__,
                "config": asdict(self.config),
                **self.info,
                "accuracy": self.accuracy,
                "threshold": self.ranking.threshold,
                "alpha": self.ranking.alpha,
                "corrected_alpha": self.ranking.corrected_alpha,
                "threshold_rationale": self.ranking.rationale(
                    self.config.patch**2, self.config.probes, _source_sentence(self.threshold_source)
                ),
                "separation": self.ranking.separation,
                "suspicion_score": SUSPICION_SCORE,
                "suspicion_ranking": list(self.ranking.order),
                "flagged": list(self.ranking.flagged),
                "untested": list(self.ranking.untested),
                "per_class": self.per_class(),
                "localisation": comparison.localisation.to_json() if comparison is not None else {},
                "faithfulness": comparison.faithfulness.to_json() if comparison is not None else {},
                "sanity": comparison.sanity.to_json() if comparison is not None and comparison.sanity else {},
                "methods": list(self.config.methods),
                "timings": self.timings,
            }
        )


def _source_sentence(source: ShippedThreshold | None) -> str:
    if source is None:
        return "The threshold was set by the user."
    return (
        f"The threshold was set on {source.n_clean} clean models of the benchmark suite {source.suite!r} "
        f"({source.command}), never on manipulated ones: {source.rationale}."
    )
