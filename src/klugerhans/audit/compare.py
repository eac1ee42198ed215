"""The attribution methods compared on the same images: localisation against the sticker, faithfulness, sanity.

Stage 6 (``methods``) and 7 (``sanity``) of the audit (:mod:`klugerhans.audit.run`): stickered signs that flipped to
the sticker's class are explained as that class and scored against the sticker mask; correctly classified signs are
explained as their class and perturbed most relevant region first; the same signs then go through the model parameter
randomisation test.
"""

from __future__ import annotations

import numpy as np
import torch

from klugerhans.audit.collect import select_explained
from klugerhans.audit.config import PREDICT_PIXELS, AuditConfig, batch_for
from klugerhans.audit.faithfulness import aopc, region_perturbation, uniform_fill
from klugerhans.audit.localisation import localisation_scores
from klugerhans.audit.methods import MethodOptions, attribute, make_attributor
from klugerhans.audit.result import Faithfulness, FlipCurve, Localisation, MethodComparison, MethodImages, Sanity
from klugerhans.audit.sanity import sanity_check
from klugerhans.data.dataset import SignData
from klugerhans.data.sticker import StickerConfig, apply_sticker
from klugerhans.errors import KlugerhansError
from klugerhans.models.classifier import Classifier
from klugerhans.models.evaluation import predict_labels
from klugerhans.models.preprocess import to_tensor
from klugerhans.progress import progress_bar, say, timed

__all__ = ["compare_methods"]


def _localisation_images(
    clf: Classifier, data: SignData, correct: np.ndarray, sticker: StickerConfig, n: int, seed: int
) -> tuple[np.ndarray, np.ndarray, tuple[int, float, int] | None]:
    """Glue the sticker on correctly classified signs of other classes; keep up to ``n`` that flip to its class.

    Returns:
        ``(images, masks, (candidates, flip rate, flipped) or None where the sticker was glued on nothing)``.
    """
    if sticker.target_class >= clf.meta.model.num_classes:
        n = 0  # no such class: nothing a sticker could flip to (only flipped images are localised)
    rng = np.random.default_rng([seed, 7])
    pool = np.flatnonzero(correct & (data.labels != sticker.target_class))
    pool = rng.permutation(pool)[: max(4 * n, 256)]
    if len(pool) == 0 or n == 0:
        return np.zeros((0, data.size, data.size, 3), np.uint8), np.zeros((0, data.size, data.size), bool), None
    stickered, masks = apply_sticker(data.images[pool], data.boxes[pool], sticker, seed=seed)
    flipped = predict_labels(clf, stickered) == sticker.target_class
    keep = np.flatnonzero(flipped)[:n]
    return stickered[keep], masks[keep], (len(pool), float(flipped.mean()), int(flipped.sum()))


def compare_methods(
    clf: Classifier, data: SignData, correct: np.ndarray, config: AuditConfig, timings: dict[str, float]
) -> MethodComparison:
    """Localisation, faithfulness and sanity of every method in ``config``, on the same images.

    Args:
        clf: the audited model; its training sticker is the localisation's ground truth.
        data: the audited images.
        correct: (N,) bool, which of them the model classifies correctly.
        config: the audit's settings (methods, image counts, flip region and steps, sanity mode, seed).
        timings: stage -> seconds; ``methods`` and ``sanity`` are added.
    """
    progress = config.progress
    norm = clf.meta.normalization
    options = MethodOptions(norm=norm, seed=config.seed, fallback=config.fallback)
    sticker = clf.meta.sticker
    with timed(timings, "methods"):
        loc_images, loc_masks, tried = _localisation_images(
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
        loc_scores: dict[str, dict[str, float | int | None]] = {}
        faith: dict[str, FlipCurve] = {}
        example_maps: dict[str, np.ndarray] = {}
        n_examples = min(4, n_loc) if n_loc else min(4, len(images))
        for method in progress_bar(list(config.methods), "methods", progress):
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
                faith[method] = FlipCurve(aopc(curves), tuple(curves.mean(0).tolist()))
        n_candidates, flip_rate, n_flipped = tried if tried is not None else (None, None, None)
        localisation = Localisation(sticker, n_loc, loc_scores, n_candidates, flip_rate, n_flipped)
        faithfulness = Faithfulness(len(faith_rows), region, steps, faith)
        examples = MethodImages(
            images[:n_examples], _pad_masks(loc_masks, n_examples, data.size), targets[:n_examples], example_maps
        )
    if not (config.n_sanity and len(faith_rows)):
        return MethodComparison(localisation, faithfulness, examples)
    k = min(config.n_sanity, len(faith_rows))
    say("audit", f"sanity check ({config.sanity} randomisation) on {k} images", progress)
    with timed(timings, "sanity"):
        xs, ts = x[n_loc : n_loc + k], torch.as_tensor(targets[n_loc : n_loc + k])
        batch = config.explain_batch(data.size)
        similarities = sanity_check(clf.model, config.methods, xs, ts, options, config.sanity, True, batch, config.seed)
    return MethodComparison(localisation, faithfulness, examples, Sanity(config.sanity, k, similarities))


def _pad_masks(masks: np.ndarray, n: int, size: int) -> np.ndarray:
    out = np.zeros((n, size, size), dtype=bool)
    out[: min(n, len(masks))] = masks[:n]
    return out
