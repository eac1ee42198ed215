"""``klugerhans fix``: locate the shortcut with LRP, repair the model, and prove it with a before/after report.

1. Load the checkpoint and the training data as the model saw it (its training stickers re-applied, exactly as
   ``klugerhans train`` drew them: the artefact lives in the data; nobody hands the method the masks).
2. If no class is given, audit the model and take the most suspicious class.
3. LRP-explain the training images of that class and cut the artefact blob out of each heatmap
   (:mod:`klugerhans.fix.locate`).
4. Repair with the chosen method (:mod:`klugerhans.fix.methods`).
5. Before and after (and for an optional control model): accuracy, clean accuracy of the class, sticker flip rate,
   the audit's ranking and flags, and the teaching case's figure on the same four images; ``report.html``/``.md`` and
   ``fix.json``; the repaired weights as ``fixed.safetensors``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from klugerhans.audit.config import AuditConfig
from klugerhans.audit.run import audit_classifier, load_audit_data
from klugerhans.data.classes import check_class_id
from klugerhans.data.dataset import SignData
from klugerhans.defaults import DEFAULT_DEVICE
from klugerhans.errors import KlugerhansError
from klugerhans.explain.composites import Fallback
from klugerhans.fix.finetune import FineTuneConfig
from klugerhans.fix.locate import LocateConfig, locate_artefacts
from klugerhans.fix.methods import FIX_METHODS, FixInputs, check_method
from klugerhans.fix.numbers import AuditSummary, FixNumbers, Measurement, score_located
from klugerhans.io import atomic_write_text, to_jsonable
from klugerhans.models.checkpoint import load_classifier, save_checkpoint
from klugerhans.models.classifier import Classifier, classifier_from_model
from klugerhans.models.evaluation import evaluate_model
from klugerhans.models.trainset import prepare_data
from klugerhans.progress import say

__all__ = ["FixConfig", "FixResult", "NothingToRepair", "compute_fix", "save_fixed", "suspect_class", "write_numbers"]


class NothingToRepair(KlugerhansError):
    """No class was given and the audit flagged none: there is no shortcut to repair."""

    def __init__(self, finding: str, advice: str) -> None:
        super().__init__(f"{finding}; {advice}")
        self.finding = finding
        """What the audit found, as a clause ("the audit flagged no class (...)")."""


@dataclass(frozen=True)
class FixConfig:
    """Everything that determines a repair; written into ``fix.json``."""

    checkpoint: str
    """Model to repair: checkpoint file, run directory or released-weights name."""
    method: str = "inpaint"
    """Repair method: "inpaint" (data-side), "rrr" or "pclarc" (model-side)."""
    data: str = "auto"
    """Dataset the model was trained on: "gtsrb", "synthetic", or "auto" (what the checkpoint says)."""
    data_dir: str | None = None
    """GTSRB folder."""
    out: str = "klugerhans-fix"
    """Output folder: fixed.safetensors, fix.json, report.html."""
    class_id: int | None = None
    """Suspicious class; None: the audit's most suspicious class."""
    control: str | None = None
    """Optional model trained without the artefact, measured alongside for comparison."""
    epochs: int = FineTuneConfig.epochs
    """Fine-tuning epochs."""
    lr: float = FineTuneConfig.lr
    """Peak fine-tuning learning rate."""
    rrr_weight: float = FineTuneConfig.rrr_weight
    """Weight of the right-for-the-right-reasons penalty (method "rrr")."""
    counterfactual: float = 0.1
    """Method "inpaint": share of the other classes' training images that get a located artefact pasted on, with
    their own labels (0: only remove the artefact; fine-tuning alone then hardly unlearns it: measured, see docs)."""
    locate: LocateConfig = dataclasses.field(default_factory=LocateConfig)
    """How the artefact is cut out of the heatmaps."""
    audit_per_class: int = 50
    """Heatmaps per class in the before/after audits."""
    fallback: Fallback = "error"
    """An operation without an LRP rule: "error" stops naming it; "gradient" passes gradient x input through it
    (in the audits and the locating heatmaps)."""
    max_images: int | None = None
    """Use at most this many images per split (quick runs, tests)."""
    device: str = DEFAULT_DEVICE
    """auto, cpu, cuda, cuda:N or mps."""
    seed: int = 0
    """Seed of fine-tuning, audits and sticker positions."""
    progress: bool = True
    """Progress output on stderr."""

    def __post_init__(self) -> None:
        check_method(self.method)
        if self.epochs < 0:
            raise KlugerhansError(f"epochs must be >= 0, got {self.epochs}")
        if self.class_id is not None:
            check_class_id(self.class_id, what="class")
        if self.method != "pclarc" and self.epochs < 1:
            raise KlugerhansError(f"method {self.method!r} fine-tunes: give --epochs 1 or more")
        if not 0.0 <= self.counterfactual <= 1.0:
            raise KlugerhansError(f"counterfactual share must be in [0, 1], got {self.counterfactual}")
        if self.fallback not in ("error", "gradient"):
            raise KlugerhansError(f"fallback must be 'error' or 'gradient', got {self.fallback!r}")
        if self.audit_per_class < 5:
            raise KlugerhansError(f"the audits need at least 5 heatmaps per class, got {self.audit_per_class}")


@dataclass(frozen=True)
class FixResult:
    """What :func:`compute_fix` measured and produced (nothing is written)."""

    config: FixConfig
    before: Classifier
    after: Classifier
    control: Classifier | None
    class_id: int
    numbers: FixNumbers
    """What was measured; :meth:`to_json` makes ``fix.json`` of it."""
    located_examples: tuple[np.ndarray, np.ndarray]
    """(K, S, S, 3) images of the class and their (K, S, S) located masks, for the report."""
    test: SignData
    """The clean test split everything was measured on (the report's figure picks its images from it)."""

    @property
    def flagged_after(self) -> bool:
        """Whether the audit of the repaired model still flags the repaired class."""
        audit = self.numbers.after.audit
        return audit is not None and self.class_id in audit.flagged

    def to_json(self) -> dict[str, Any]:
        """``fix.json``: the config, the class, the located artefact, the method, before, after, control, seconds."""
        n = self.numbers
        out: dict[str, Any] = {
            "config": to_jsonable(dataclasses.asdict(self.config)),
            "class_id": self.class_id,
            "locate": dataclasses.asdict(n.locate),
            "method": {"name": self.config.method, **to_jsonable(n.details)},
            "before": n.before.to_json(),
            "after": n.after.to_json() | {"flagged_class": self.flagged_after},
        }
        if n.control is not None:
            out["control"] = n.control.to_json()
        out["seconds"] = n.seconds
        return out


def _training_data(clf: Classifier, config: FixConfig) -> tuple[Any, np.ndarray]:
    """The training/validation/test splits as the model was trained (stickers re-applied), and the true masks."""
    recipe = clf.meta.recipe
    if recipe is None:
        raise KlugerhansError("the checkpoint does not say how it was trained; fix needs a model from klugerhans train")
    max_images = recipe.max_images if config.max_images is None else config.max_images
    recipe = dataclasses.replace(recipe, data=config.data, data_dir=config.data_dir, max_images=max_images)
    prepared = prepare_data(recipe)
    return prepared, prepared.train_masks


def suspect_class(audit: AuditSummary | Mapping[str, Any]) -> int:
    """The class to repair when none is given: the audit's most suspicious *flagged* class.

    Args:
        audit: the audit's summary, or its JSON form as ``fix.json`` records it or as ``audit.json`` holds it
            (read with :meth:`AuditSummary.from_json`).

    Raises:
        NothingToRepair: the audit could test no class (an untrained model classifies too few images correctly
            for the transplant test), or tested classes but flagged none. The message says what the audit found
            and that ``--class ID`` repairs a class anyway.
    """
    if not isinstance(audit, AuditSummary):
        audit = AuditSummary.from_json(audit)
    if audit.flagged:
        return audit.flagged[0]
    if not audit.suspicion_ranking:
        raise NothingToRepair(
            f"the audit could test none of the {audit.n_classes} classes: the model classifies "
            f"{audit.accuracy:.1%} of the audited training images correctly, too few per class for the transplant "
            "test (is it trained?)",
            "give --class ID to repair a class of your choice",
        )
    top = audit.suspicion_ranking[0]
    raise NothingToRepair(
        f"the audit flagged no class (the most suspicious, class {top}, broad hijack rate "
        f"{audit.broad_rate[top]:.3f}, threshold {audit.threshold:.3f}): there is no shortcut to repair",
        "give --class ID to repair a class anyway",
    )


def _audit(clf: Classifier, config: FixConfig) -> AuditSummary:
    audit_config = AuditConfig(
        checkpoint=config.checkpoint, data=config.data, data_dir=config.data_dir, out=config.out,
        max_images=config.max_images, seed=config.seed, methods=(), n_sanity=0, tsne_classes=0,
        max_per_class=config.audit_per_class, progress=False, fallback=config.fallback,
    )  # fmt: skip
    data, masks, info = load_audit_data(audit_config, clf)
    return AuditSummary.from_result(audit_classifier(clf, data, audit_config, masks, info))


def compute_fix(config: FixConfig) -> FixResult:
    """Locate, repair and measure as ``config`` says (see the module docstring)."""
    start = time.perf_counter()
    from klugerhans.models.distributed import resolve_device

    device = str(resolve_device(config.device, 0))
    before = load_classifier(config.checkpoint, device=device)
    if config.data == "auto":
        config = dataclasses.replace(config, data=before.meta.recipe.data if before.meta.recipe else "gtsrb")
    control = load_classifier(config.control, device=device) if config.control else None
    say("fix", "loading the training data as the model saw it", config.progress)
    prepared, true_masks = _training_data(before, config)
    audit_before = _audit(before, config)
    class_id = config.class_id if config.class_id is not None else suspect_class(audit_before)
    say("fix", f"locating the artefact of class {class_id} with LRP ({config.locate.composite})", config.progress)
    rows = np.flatnonzero(prepared.train.labels == class_id)
    if len(rows) < 2:
        raise KlugerhansError(f"class {class_id} has {len(rows)} training images; need at least 2 to locate anything")
    located = locate_artefacts(
        before, prepared.train.images[rows], class_id, config.locate, config.progress, fallback=config.fallback
    )
    masks = np.zeros(prepared.train.images.shape[:3], dtype=bool)
    masks[rows] = located.masks
    # Scored against the truth only for the report: the method never sees ``true_masks``.
    locate_numbers = score_located(located.masks, located.share, true_masks[rows])
    say("fix", f"repairing with {config.method!r}", config.progress)
    finetune = FineTuneConfig(epochs=config.epochs, lr=config.lr, rrr_weight=config.rrr_weight, seed=config.seed)
    inputs = FixInputs(
        before, prepared.train, prepared.val, class_id, masks, finetune, config.counterfactual, config.seed, device,
        config.progress,
    )  # fmt: skip
    outcome = FIX_METHODS[config.method](inputs)
    meta = dataclasses.replace(before.meta, metrics={**before.meta.metrics, "fix": {"method": config.method}})
    after = classifier_from_model(outcome.model, meta, device)
    sticker = before.meta.sticker
    say("fix", "measuring before and after", config.progress)
    measure_before = Measurement(evaluate_model(before, prepared.test, sticker, config.seed), audit_before)
    measure_after = Measurement(evaluate_model(after, prepared.test, sticker, config.seed), _audit(after, config))
    measure_control = None
    if control is not None:
        measure_control = Measurement(evaluate_model(control, prepared.test, sticker, config.seed))
    numbers = FixNumbers(
        locate_numbers, outcome.details, measure_before, measure_after, measure_control, time.perf_counter() - start
    )
    shown = np.unique(np.linspace(0, len(rows) - 1, num=min(8, len(rows))).round().astype(int))  # spread over tracks
    examples = (prepared.train.images[rows[shown]], located.masks[shown])
    return FixResult(config, before, after, control, int(class_id), numbers, examples, prepared.test)


def save_fixed(result: FixResult, out: Path) -> Path:
    """Write the repaired weights (with their before/after numbers in the metadata)."""
    summary = {k: v for k, v in result.to_json()["after"].items() if k != "audit"}
    meta = dataclasses.replace(
        result.after.meta,
        metrics={**result.before.meta.metrics, "fix": {"method": result.config.method, "test": summary}},
    )
    return save_checkpoint(out / "fixed.safetensors", result.after.model, meta)


def write_numbers(result: FixResult, out: Path) -> Path:
    """Write ``fix.json``."""
    path = out / "fix.json"
    atomic_write_text(path, json.dumps(to_jsonable(result.to_json()), indent=2))
    return path
