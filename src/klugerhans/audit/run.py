"""The audit pipeline: discovery without labels, then verification where the ground truth is known.

Stages (each timed, see :attr:`AuditResult.timings`):

1. ``load``: checkpoint and data; the checkpoint's training stickers are glued on the audited split when
   ``artefacts`` is set (the data as the model saw it), never on an image folder (audited as given).
2. ``predict``: one batched forward pass over the audited images.
3. ``lrp``: one streaming LRP pass over the correctly classified images (explaining their class), keeping
   downsampled maps and most-relevant windows (:mod:`klugerhans.audit.collect`).
4. ``spray``: SpRAy per class (:mod:`klugerhans.audit.spray`), t-SNE for the classes the report shows.
5. ``transplant``: the transplant test per class and the ranking (:mod:`klugerhans.audit.transplant`,
   :mod:`klugerhans.audit.ranking`). Stages 3-5 never use the sticker's class or masks.
6. ``methods``: every attribution method on the same images: stickered signs that flipped to the sticker class
   (localisation against the sticker mask) and correctly classified signs (pixel flipping, AOPC).
7. ``sanity``: model parameter randomisation per method.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from klugerhans.audit.collect import collect_heatmaps, select_explained
from klugerhans.audit.compare import compare_methods
from klugerhans.audit.config import PREDICT_PIXELS, AuditConfig, batch_for
from klugerhans.audit.ranking import Ranking, rank_classes
from klugerhans.audit.result import AuditResult, Discovery, MethodImages
from klugerhans.audit.spray import SprayConfig, SprayResult, spray_class, tsne_view
from klugerhans.audit.thresholds import ShippedThreshold, shipped_threshold
from klugerhans.audit.transplant import (
    TransplantConfig,
    TransplantResult,
    patch_side,
    resolve_placement,
    transplant_class,
)
from klugerhans.data.dataset import DATASETS, SignData
from klugerhans.data.sticker import manipulate_class
from klugerhans.errors import KlugerhansError
from klugerhans.explain.composites import get_composite
from klugerhans.explain.lrp import LRP
from klugerhans.models.checkpoint import load_classifier, resolve_checkpoint
from klugerhans.models.classifier import Classifier
from klugerhans.models.evaluation import load_split, predict_labels
from klugerhans.progress import progress_bar, say, timed

__all__ = ["AuditResult", "MethodImages", "audit_classifier", "compute_audit", "load_audit_data"]


def load_audit_data(config: AuditConfig, clf: Classifier) -> tuple[SignData, np.ndarray | None, dict[str, Any]]:
    """Load the audited split and reproduce the checkpoint's training artefacts on it when asked.

    Returns:
        ``(data, masks or None, info)``.
    """
    # A folder stays in its files: each stage decodes the rows it reads, so memory does not grow with the images.
    spec = DATASETS.get_or_raise(config.data)
    data, ds = load_split(
        clf,
        config.data,
        config.split,
        config.data_dir,
        max_images=config.max_images,
        seed=config.seed,
        lazy=spec.lazy,
    )
    if len(data) == 0:
        raise KlugerhansError(f"the {config.split} split of {config.data!r} has no images; check the data folder")
    masks = None
    # The recipe's sticker names a GTSRB class: data with classes of its own (a folder) is audited as given.
    if config.artefacts and clf.meta.manipulated and spec.class_names is None:
        data, masks = manipulate_class(data, clf.meta.sticker, seed=config.seed)
    info = {
        "name": config.data,
        "split": config.split,
        "n_images": len(data),
        "size": data.size,
        "artefacts_reproduced": masks is not None,
        "n_with_artefact": int(masks.any(axis=(1, 2)).sum()) if masks is not None else 0,
        "loader": {k: v for k, v in ds.info.items() if isinstance(v, str | int | float | bool)},
    }
    return data, masks, info


def compute_audit(config: AuditConfig) -> AuditResult:
    """Load the checkpoint and data named in ``config`` and audit them (nothing is written)."""
    timings: dict[str, float] = {}
    with timed(timings, "load"):
        clf = load_classifier(config.checkpoint, device=config.device)
        data, masks, data_info = load_audit_data(config, clf)
    checkpoint = str(resolve_checkpoint(config.checkpoint))
    return audit_classifier(clf, data, config, masks, data_info, timings, checkpoint)


def audit_classifier(
    clf: Classifier,
    data: SignData,
    config: AuditConfig,
    artefact_masks: np.ndarray | None = None,
    data_info: dict[str, Any] | None = None,
    timings: dict[str, float] | None = None,
    checkpoint: str | None = None,
) -> AuditResult:
    """Audit an in-memory classifier on ``data`` (the images as given; no artefacts are added here)."""
    timings = {} if timings is None else timings
    progress = config.progress
    norm = clf.meta.normalization
    if data.size != clf.input_size:
        raise KlugerhansError(f"images are {data.size} px but the model takes {clf.input_size} px")
    # Batches by pixel count: what fits at 32 px (64 heatmaps) would need 10 GB for a 224 px ResNet-50.
    predict_batch = batch_for(data.size, PREDICT_PIXELS)

    def predict(images: np.ndarray) -> np.ndarray:
        return predict_labels(clf, images, batch_size=predict_batch)

    say("audit", f"predicting {len(data)} images", progress)
    with timed(timings, "predict"):
        preds = predict(data.images)
    correct = preds == data.labels
    present = tuple(int(c) for c in np.unique(data.labels))

    side = patch_side(data.size, config.patch)
    with timed(timings, "lrp"):
        index = select_explained(data.labels, correct, config.max_per_class, config.seed)
        say("audit", f"explaining {len(index)} correctly classified images with LRP ({config.composite})", progress)
        explainer = LRP(
            clf.model,
            get_composite(config.composite, norm=clf.meta.normalization),
            fallback=config.fallback,
        )
        heatmaps = collect_heatmaps(
            explainer,
            data.images,
            data.labels,
            index,
            config.spray_grid,
            side,
            norm,
            config.explain_batch(data.size),
            progress,
            keep_pixels="pixels" in config.probes,
        )

    spray_cfg = SprayConfig(grid=config.spray_grid, seed=config.seed)
    spray: dict[int, SprayResult] = {}
    with timed(timings, "spray"):
        classes = [c for c in present if len(heatmaps.rows_of(c)) >= spray_cfg.min_images]
        for c in progress_bar(classes, "SpRAy", progress):
            spray[c] = spray_class(heatmaps.maps[heatmaps.rows_of(c)], c, spray_cfg)

    placement = resolve_placement(config.placement, data.boxes, data.size)
    transplant_cfg = TransplantConfig(
        patch=config.patch,
        recipients=config.recipients,
        placement=placement,
        seed=config.seed,
        probes=config.probes,
    )
    results: dict[int, TransplantResult] = {}
    with timed(timings, "transplant"):
        tested = [c for c in present if len(heatmaps.rows_of(c)) >= transplant_cfg.min_donors]
        for c in progress_bar(tested, "transplant", progress):
            rows = heatmaps.rows_of(c)
            recipients = np.flatnonzero(correct & (data.labels != c))
            if len(recipients) == 0:
                continue
            results[c] = transplant_class(
                predict,
                c,
                data.images,
                data.boxes,
                heatmaps.index[rows],
                heatmaps.corners[rows],
                heatmaps.share[rows],
                recipients,
                transplant_cfg,
                heatmaps.pixels[rows] if heatmaps.pixels.shape[1] else None,
                labels=data.labels,
            )
        source: ShippedThreshold | None = None
        if config.threshold is None:
            source = shipped_threshold(placement)
            threshold = source.value
        else:
            threshold = config.threshold
        ranking = rank_classes(results, threshold, config.alpha, present, n_probes=len(config.probes))
    say("audit", f"most suspicious classes: {list(ranking.order[:5])}; flagged: {list(ranking.flagged)}", progress)

    tsne: dict[int, np.ndarray] = {}
    with timed(timings, "tsne"):
        shown = _shown_classes(ranking, config.tsne_classes)
        for c in progress_bar([c for c in shown if c in spray], "t-SNE", progress):
            tsne[c] = tsne_view(heatmaps.maps[heatmaps.rows_of(c)], config.seed)

    discovery = Discovery(
        composite=config.composite,
        n_explained=len(heatmaps.index),
        patch_px=side,
        batch_size=config.explain_batch(data.size),
        placement=placement,
        probes=tuple(config.probes),
        spray_grid=config.spray_grid,
        coverage=explainer.coverage() if config.fallback == "gradient" else None,
    )
    comparison = compare_methods(clf, data, correct, config, timings) if config.methods else None
    return AuditResult(
        config,
        data,
        artefact_masks,
        preds,
        heatmaps,
        spray,
        tsne,
        results,
        ranking,
        clf.meta.model,
        discovery,
        source,
        data_info=data_info or {},
        checkpoint=checkpoint,
        trained_sticker=clf.meta.sticker if clf.meta.manipulated else None,
        comparison=comparison,
        timings=timings,
        classifier=clf,
    )


def _shown_classes(ranking: Ranking, top: int) -> list[int]:
    shown = list(ranking.order[:top])
    return shown + [c for c in ranking.flagged if c not in shown]
