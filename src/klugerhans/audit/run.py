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

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from klugerhans.audit.collect import ClassHeatmaps, collect_heatmaps, select_explained
from klugerhans.audit.config import PREDICT_PIXELS, AuditConfig, batch_for
from klugerhans.audit.faithfulness import aopc, region_perturbation, uniform_fill
from klugerhans.audit.localisation import localisation_scores
from klugerhans.audit.methods import MethodOptions, attribute, make_attributor
from klugerhans.audit.ranking import Ranking, rank_classes
from klugerhans.audit.sanity import sanity_check
from klugerhans.audit.spray import SprayConfig, SprayResult, spray_class, tsne_view
from klugerhans.audit.thresholds import ShippedThreshold, shipped_threshold
from klugerhans.audit.transplant import (
    TransplantConfig,
    TransplantResult,
    patch_side,
    resolve_placement,
    transplant_class,
)
from klugerhans.data.classes import class_name
from klugerhans.data.dataset import DATASETS, SignData
from klugerhans.data.sticker import StickerConfig, apply_sticker, manipulate_class
from klugerhans.errors import KlugerhansError
from klugerhans.explain.composites import get_composite
from klugerhans.explain.lrp import LRP
from klugerhans.io import to_jsonable
from klugerhans.models.checkpoint import load_classifier, resolve_checkpoint
from klugerhans.models.classifier import Classifier
from klugerhans.models.evaluation import load_split, predict_labels
from klugerhans.models.preprocess import to_tensor
from klugerhans.progress import say
from klugerhans.version import __version__

__all__ = ["AuditResult", "MethodImages", "audit_classifier", "compute_audit", "load_audit_data"]


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


@dataclass
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
    info: dict[str, Any]
    localisation: dict[str, Any] = field(default_factory=dict)
    faithfulness: dict[str, Any] = field(default_factory=dict)
    sanity: dict[str, Any] = field(default_factory=dict)
    examples: MethodImages | None = None
    timings: dict[str, float] = field(default_factory=dict)
    classifier: Classifier | None = None
    """The audited model (not serialised), for exports that recompute heatmaps."""

    def per_class(self) -> dict[str, dict[str, Any]]:
        """JSON-ready per-class numbers, keyed by class id as a string."""
        labels = self.data.labels
        names = self.classifier.class_names if self.classifier is not None else ()
        rank = {c: i + 1 for i, c in enumerate(self.ranking.order)}
        out: dict[str, dict[str, Any]] = {}
        for c in np.unique(labels).tolist():
            of_c = labels == c
            entry: dict[str, Any] = {
                "name": names[c] if c < len(names) else class_name(c),
                "n_images": int(of_c.sum()),
                "n_correct": int((of_c & (self.preds == labels)).sum()),
                "accuracy": float((self.preds[of_c] == c).mean()),
                "n_explained": int((self.heatmaps.labels == c).sum()),
                "suspicion": self.ranking.scores.get(c),
                "rank": rank.get(c),
                "flagged": c in self.ranking.flagged,
                "transplant": self.transplant[c].summary() if c in self.transplant else None,
                "spray": self.spray[c].summary() if c in self.spray else None,
            }
            out[str(c)] = entry
        return out

    def to_json(self) -> dict[str, Any]:
        """Every number of the audit as plain JSON values (NaN -> null)."""
        return to_jsonable(
            {
                "klugerhans_version": __version__,
                "config": asdict(self.config),
                **self.info,
                "accuracy": float((self.preds == self.data.labels).mean()) if len(self.preds) else None,
                "threshold": self.ranking.threshold,
                "alpha": self.ranking.alpha,
                "corrected_alpha": self.ranking.corrected_alpha,
                "threshold_rationale": self.ranking.rationale(
                    self.config.patch**2, self.config.probes, _source_sentence(self.info.get("threshold_source"))
                ),
                "separation": self.ranking.separation,
                "suspicion_score": "broad hijack rate: share of other classes' correctly classified signs that a "
                "small part of the class's signs (its best transplant probe: the most relevant window pasted anywhere "
                "or in place, its most relevant pixels, or its colours) turns into the class, counted class by class "
                "without the quarter of recipient classes it turns most; flagged if at least the threshold, "
                "significantly above that probe's control, and apart from the model's other classes (separation)",
                "suspicion_ranking": list(self.ranking.order),
                "flagged": list(self.ranking.flagged),
                "untested": list(self.ranking.untested),
                "per_class": self.per_class(),
                "localisation": self.localisation,
                "faithfulness": self.faithfulness,
                "sanity": self.sanity,
                "methods": list(self.config.methods),
                "timings": self.timings,
            }
        )


def _source_sentence(source: dict[str, Any] | None) -> str:
    if not source or "value" not in source:
        return "The threshold was set by the user."
    return (
        f"The threshold was set on {source['n_clean']} clean models of the benchmark suite {source['suite']!r} "
        f"({source['command']}), never on manipulated ones: {source['rationale']}."
    )


@contextmanager
def _stage(timings: dict[str, float], name: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = round(time.perf_counter() - start, 3)


def _bar(items: list[Any], desc: str, progress: bool) -> Any:
    if not progress:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, leave=False, file=sys.stderr)


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
    with _stage(timings, "load"):
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
    with _stage(timings, "predict"):
        preds = predict(data.images)
    correct = preds == data.labels
    present = tuple(int(c) for c in np.unique(data.labels))

    side = patch_side(data.size, config.patch)
    with _stage(timings, "lrp"):
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
    with _stage(timings, "spray"):
        classes = [c for c in present if len(heatmaps.rows_of(c)) >= spray_cfg.min_images]
        for c in _bar(classes, "SpRAy", progress):
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
    with _stage(timings, "transplant"):
        tested = [c for c in present if len(heatmaps.rows_of(c)) >= transplant_cfg.min_donors]
        for c in _bar(tested, "transplant", progress):
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
    with _stage(timings, "tsne"):
        shown = _shown_classes(ranking, config.tsne_classes)
        for c in _bar([c for c in shown if c in spray], "t-SNE", progress):
            tsne[c] = tsne_view(heatmaps.maps[heatmaps.rows_of(c)], config.seed)

    info = {
        "model": {
            "checkpoint": checkpoint,
            **clf.meta.model.to_dict(),
            "trained_sticker": asdict(clf.meta.sticker) if clf.meta.manipulated else None,
        },
        "data": data_info or {"n_images": len(data), "size": data.size},
        "discovery": {
            "composite": config.composite,
            "n_explained": len(heatmaps.index),
            "patch_px": side,
            "batch_size": config.explain_batch(data.size),
            "placement": placement,
            "probes": list(config.probes),
            "spray_grid": config.spray_grid,
        },
        "threshold_source": source.to_dict() if source is not None else {"set_by": "the user (--threshold)"},
    }
    if config.fallback == "gradient":
        coverage = explainer.coverage()
        info["discovery"]["lrp_rule_share"] = coverage["lrp_rule_share"]
        info["discovery"]["lrp_ops"] = coverage["n_ops"]
        info["discovery"]["fallback_ops"] = coverage["fallback_ops"]
    result = AuditResult(
        config,
        data,
        artefact_masks,
        preds,
        heatmaps,
        spray,
        tsne,
        results,
        ranking,
        info,
        timings=timings,
        classifier=clf,
    )
    if config.methods:
        _compare_methods(result, clf, correct)
    return result


def _shown_classes(ranking: Ranking, top: int) -> list[int]:
    shown = list(ranking.order[:top])
    return shown + [c for c in ranking.flagged if c not in shown]


def _localisation_images(
    clf: Classifier, data: SignData, correct: np.ndarray, sticker: StickerConfig, n: int, seed: int
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Glue the sticker on correctly classified signs of other classes; keep up to ``n`` that flip to its class."""
    if sticker.target_class >= clf.meta.model.num_classes:
        n = 0  # no such class: nothing a sticker could flip to (only flipped images are localised)
    rng = np.random.default_rng([seed, 7])
    pool = np.flatnonzero(correct & (data.labels != sticker.target_class))
    pool = rng.permutation(pool)[: max(4 * n, 256)]
    if len(pool) == 0 or n == 0:
        return np.zeros((0, data.size, data.size, 3), np.uint8), np.zeros((0, data.size, data.size), bool), {}
    stickered, masks = apply_sticker(data.images[pool], data.boxes[pool], sticker, seed=seed)
    flipped = predict_labels(clf, stickered) == sticker.target_class
    info = {"n_candidates": len(pool), "flip_rate": float(flipped.mean()), "n_flipped": int(flipped.sum())}
    keep = np.flatnonzero(flipped)[:n]
    return stickered[keep], masks[keep], info


def _compare_methods(result: AuditResult, clf: Classifier, correct: np.ndarray) -> None:
    """Localisation, faithfulness and sanity of every configured method, on the same images."""
    config, data, timings, progress = result.config, result.data, result.timings, result.config.progress
    norm = clf.meta.normalization
    options = MethodOptions(norm=norm, seed=config.seed, fallback=config.fallback)
    sticker = clf.meta.sticker
    with _stage(timings, "methods"):
        loc_images, loc_masks, loc_info = _localisation_images(
            clf, data, correct, sticker, config.n_localisation, config.seed
        )
        faith_rows = select_explained(data.labels, correct, None, config.seed)
        rng = np.random.default_rng([config.seed, 11])
        faith_rows = np.sort(rng.permutation(faith_rows)[: config.n_faithfulness])
        images = np.concatenate([loc_images, data.images[faith_rows]])
        targets = np.concatenate([np.full(len(loc_images), sticker.target_class), data.labels[faith_rows]])
        n_loc = len(loc_images)
        x = to_tensor(images, norm) if len(images) else torch.zeros(0, 3, data.size, data.size)
        fill = uniform_fill(tuple(x.shape), norm, config.seed)
        region = config.flip_region
        predict_batch = batch_for(data.size, PREDICT_PIXELS)
        if data.size % region:
            raise KlugerhansError(f"flip region {region} px must divide the image size {data.size}")
        steps = min(config.flip_steps, (data.size // region) ** 2)
        loc_scores: dict[str, Any] = {}
        faith: dict[str, Any] = {}
        example_maps: dict[str, np.ndarray] = {}
        n_examples = min(4, n_loc) if n_loc else min(4, len(images))
        for method in _bar(list(config.methods), "methods", progress):
            maps = attribute(
                make_attributor(method, clf.model, options),
                x,
                torch.as_tensor(targets),
                config.explain_batch(data.size),
            )
            example_maps[method] = maps[:n_examples].numpy()
            loc_scores[method] = localisation_scores(maps[:n_loc].numpy(), loc_masks)
            if len(faith_rows):
                curves = region_perturbation(
                    lambda t: clf.logits(t, predict_batch),
                    x[n_loc:],
                    maps[n_loc:],
                    targets[n_loc:],
                    fill[n_loc:],
                    region,
                    steps,
                )
                faith[method] = {"aopc": aopc(curves), "curve": curves.mean(0).tolist()}
        result.localisation = {
            "sticker": {"target_class": sticker.target_class, "size": sticker.size, "shape": sticker.shape},
            **loc_info,
            "n": n_loc,
            "what": "signs of other classes, correctly classified, with the sticker glued on and then predicted as "
            "the sticker's class; each method explains that class",
            "methods": loc_scores,
        }
        result.faithfulness = {
            "n": len(faith_rows),
            "region_px": region,
            "steps": steps,
            "order": "most relevant first (MoRF), regions replaced by uniform noise",
            "score": "target logit",
            "methods": faith,
        }
        result.examples = MethodImages(
            images[:n_examples], _pad_masks(loc_masks, n_examples, data.size), targets[:n_examples], example_maps
        )
    if config.n_sanity and len(faith_rows):
        say(
            "audit",
            f"sanity check ({config.sanity} randomisation) on {min(config.n_sanity, len(faith_rows))} images",
            progress,
        )
        with _stage(timings, "sanity"):
            k = min(config.n_sanity, len(faith_rows))
            xs, ts = x[n_loc : n_loc + k], torch.as_tensor(targets[n_loc : n_loc + k])
            result.sanity = {
                "mode": config.sanity,
                "absolute": True,
                "n": k,
                "methods": sanity_check(
                    clf.model,
                    config.methods,
                    xs,
                    ts,
                    options,
                    config.sanity,
                    True,
                    config.explain_batch(data.size),
                    config.seed,
                ),
            }


def _pad_masks(masks: np.ndarray, n: int, size: int) -> np.ndarray:
    out = np.zeros((n, size, size), dtype=bool)
    out[: min(n, len(masks))] = masks[:n]
    return out
