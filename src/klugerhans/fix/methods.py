"""The repair methods, by name: each takes what LRP located and returns a repaired copy of the model.

``@register_fix`` fills :data:`FIX_METHODS`; :func:`klugerhans.fix.run.compute_fix` looks the method up by name. No
method sees ground-truth artefact masks: they get the images of the suspicious class and the masks
:func:`klugerhans.fix.locate.locate_artefacts` cut from the model's own heatmaps.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import nn

from klugerhans.data.dataset import SignData
from klugerhans.errors import KlugerhansError
from klugerhans.fix.clarc import (
    artefact_subspace,
    fold_projection,
    penultimate_features,
    project_features,
    train_head,
)
from klugerhans.fix.finetune import FineTuneConfig, fine_tune
from klugerhans.fix.inpaint import inpaint
from klugerhans.models.classifier import Classifier
from klugerhans.registry import Registry

__all__ = ["FIX_METHODS", "FixInputs", "FixOutcome", "check_method", "register_fix"]


@dataclass(frozen=True)
class FixInputs:
    """What a repair method gets."""

    classifier: Classifier
    """The model under repair (left unchanged: methods work on a copy)."""
    train: SignData
    """The training images as the model was trained on them (artefacts included)."""
    val: SignData
    """Clean validation images (model selection during fine-tuning)."""
    class_id: int
    """The suspicious class."""
    located: np.ndarray
    """(N_train, S, S) bool artefact masks that LRP located; all False outside the suspicious class."""
    finetune: FineTuneConfig
    """Fine-tuning settings."""
    counterfactual: float = 0.1
    """Share of the other classes' training images that get a located artefact pasted on (method "inpaint")."""
    seed: int = 0
    """Seed of the counterfactual pasting."""
    device: str = "cpu"
    """Where to train."""
    progress: bool = True
    """Progress output."""


@dataclass(frozen=True)
class FixOutcome:
    """A repaired model and what the method did."""

    model: nn.Module
    """The repaired network (eval mode)."""
    details: dict[str, Any] = field(default_factory=dict)
    """Method-specific numbers for the report (JSON-ready)."""


FIX_METHODS: Registry[Callable[[FixInputs], FixOutcome]] = Registry("fix method")
"""Repair methods by name."""
register_fix = FIX_METHODS.register


def _copy(clf: Classifier) -> nn.Module:
    return copy.deepcopy(clf.model).float().train()


def _cleaned_images(inputs: FixInputs) -> tuple[np.ndarray, int]:
    """Inpaint the located artefacts; paste them onto a share of the other classes' images (labels kept).

    Returns:
        ``(images, number of counterfactual images)``.
    """
    images = inputs.train.images.copy()
    rows = np.flatnonzero(inputs.located.any(axis=(1, 2)))
    images[rows] = inpaint(images[rows], inputs.located[rows])
    others = np.flatnonzero(inputs.train.labels != inputs.class_id)
    n = round(inputs.counterfactual * len(others)) if len(rows) else 0
    if n:
        rng = np.random.default_rng(inputs.seed)
        targets = rng.choice(others, size=n, replace=False)
        donors = rng.choice(rows, size=n)
        for t, d in zip(targets, donors, strict=True):
            mask = inputs.located[d]
            images[t][mask] = inputs.train.images[d][mask]
    return images, n


@register_fix("inpaint")
def _fix_inpaint(inputs: FixInputs) -> FixOutcome:
    """Data-side: remove the located artefact from the suspicious class's training images by harmonic inpainting
    (Bertalmio et al. 2000), paste it onto a share of the other classes' images with their own labels (the
    augmentative ClArC of Anders et al. 2022, so the artefact stops predicting the class), then fine-tune."""
    images, n_counter = _cleaned_images(inputs)
    model, history = fine_tune(
        _copy(inputs.classifier), images, inputs.train.labels, inputs.val.images, inputs.val.labels,
        inputs.classifier.meta.normalization, inputs.finetune, target_class=inputs.class_id,
        device=inputs.device, progress=inputs.progress,
    )  # fmt: skip
    details = {
        "history": history,
        "inpainted_images": int(inputs.located.any((1, 2)).sum()),
        "counterfactual_images": n_counter,
    }
    return FixOutcome(model.cpu(), details)


@register_fix("rrr")
def _fix_rrr(inputs: FixInputs) -> FixOutcome:
    """Model-side: fine-tune on the unchanged training set with the right-for-the-right-reasons penalty (Ross et al.
    2017) on the input gradients inside the located artefact."""
    model, history = fine_tune(
        _copy(inputs.classifier), inputs.train.images, inputs.train.labels, inputs.val.images, inputs.val.labels,
        inputs.classifier.meta.normalization, inputs.finetune, masks=inputs.located, target_class=inputs.class_id,
        device=inputs.device, progress=inputs.progress,
    )  # fmt: skip
    return FixOutcome(model.cpu(), {"history": history, "rrr_weight": inputs.finetune.rrr_weight})


@register_fix("pclarc")
def _fix_pclarc(inputs: FixInputs) -> FixOutcome:
    """Model-side: P-ClArC (Anders et al. 2022): project the artefact subspace, estimated from the suspicious class's
    images with and without the located artefact, out of the head's input; then fine-tune the head on the projected
    features of the training set (convolutions frozen)."""
    clf = inputs.classifier
    model = _copy(clf).eval()
    rows = np.flatnonzero(inputs.located.any(axis=(1, 2)))
    if len(rows) < 2:
        raise KlugerhansError("P-ClArC needs at least two images with a located artefact")
    norm = clf.meta.normalization
    with_artefact = penultimate_features(model, inputs.train.images[rows], norm)
    without = penultimate_features(model, inpaint(inputs.train.images[rows], inputs.located[rows]), norm)
    subspace = artefact_subspace(with_artefact, without)
    losses: list[float] = []
    if inputs.finetune.epochs > 0:
        features = penultimate_features(model, inputs.train.images, norm)
        losses = train_head(
            model, project_features(features, subspace), inputs.train.labels, epochs=10 * inputs.finetune.epochs,
            lr=inputs.finetune.lr, weight_decay=inputs.finetune.weight_decay, seed=inputs.finetune.seed,
        )  # fmt: skip
    fold_projection(model, subspace)
    details = {"dimensions": int(subspace.basis.shape[1]), "energy": subspace.energy, "head_losses": losses}
    return FixOutcome(model.eval(), details)


def check_method(name: str) -> str:
    """Return ``name`` if it is a registered repair method, else raise a one-line error."""
    if name not in FIX_METHODS:
        raise KlugerhansError(f"unknown fix method {name!r}: choose one of {', '.join(sorted(FIX_METHODS))}")
    return name
