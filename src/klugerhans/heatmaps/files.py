"""Explain image files end to end: read, preprocess as in training, predict, LRP, write PNGs (and .npy).

A thin wrapper: the classifier's preprocessing makes the inputs, the engine's ``attribute`` gives the relevance.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from klugerhans.data.classes import Language, check_class_id
from klugerhans.data.images import read_image
from klugerhans.errors import KlugerhansError
from klugerhans.explain.composites import DEFAULT_COMPOSITE, Fallback
from klugerhans.explain.heatmap import overlay_heatmap, render_heatmap, save_png
from klugerhans.explain.lrp import LRP
from klugerhans.io import atomic_write_bytes
from klugerhans.models.classifier import Classifier
from klugerhans.models.predict import display_names, expand_image_paths, top_classes
from klugerhans.models.preprocess import to_uint8

DISPLAY_SCALE = 8
"""Heatmap PNGs are upsampled by this factor (32 px -> 256 px) so they can be looked at."""


def _target_for(target: str | int | None, num_classes: int) -> int | None:
    if target is None or target == "pred":
        return None
    try:
        return check_class_id(target, num_classes)
    except KlugerhansError as err:
        raise KlugerhansError(f"--target is 'pred' or a class id; {err}") from None


def explain_files(
    classifier: Classifier,
    paths: Iterable[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str] | None = None,
    composite: str = DEFAULT_COMPOSITE,
    target: str | int | None = None,
    save_relevance: bool = False,
    lang: Language = "en",
    cmap: str = "bwr",
    batch_size: int = 64,
    fallback: Fallback = "error",
) -> list[dict[str, Any]]:
    """Predict and explain image files in batches.

    Writes ``<stem>_heatmap.png`` and ``<stem>_overlay.png`` (and ``<stem>_relevance.npy``: float32 (S, S)
    relevance at model input size, summed over colour channels) into ``out_dir`` when it is given.

    Args:
        classifier: the loaded model.
        paths: image files or folders.
        out_dir: where to write; None writes nothing.
        composite: LRP composite name.
        target: "pred"/None for the predicted class, or a class id explained for every image.
        save_relevance: also write the raw relevance as .npy.
        lang: language of class names.
        cmap: heatmap colour map.
        batch_size: images per LRP pass.
        fallback: ``"error"`` refuses a model with an operation that has no LRP rule (a one-line error naming it
            and its module path); ``"gradient"`` propagates through such operations as gradient x input.

    Returns:
        One dict per image: ``path``, ``pred``, ``name``, ``prob``, ``top3`` (``id``, ``name``, ``prob``),
        ``explained`` (class id of the heatmap), ``relevance`` ((S, S) float32 array), ``files`` written, and
        ``coverage`` (:meth:`LRP.coverage`: the share of operations with an LRP rule and the gradient fallbacks).
    """
    # Both are checked before any image is read or any model is wrapped.
    target_id = _target_for(target, len(classifier.class_names))
    display_names(classifier.class_names, lang)
    files = expand_image_paths(paths)
    explainer = LRP(classifier.model, composite, norm=classifier.meta.normalization, fallback=fallback)
    coverage = explainer.coverage()
    results: list[dict[str, Any]] = []
    out = Path(out_dir) if out_dir is not None else None
    stems: dict[str, int] = {}
    for start in range(0, len(files), batch_size):
        chunk = files[start : start + batch_size]
        x = torch.stack([classifier.preprocess(read_image(p)) for p in chunk]).to(classifier.device)
        expl = explainer.attribute(x, None if target_id is None else [target_id] * len(chunk))
        probs = torch.softmax(expl.logits.float(), dim=1).cpu().numpy()
        relevance = expl.relevance.sum(dim=1).float().cpu().numpy()
        shown = to_uint8(x.cpu(), classifier.meta.normalization)
        for i, path in enumerate(chunk):
            top = top_classes(probs[i], 3, lang, classifier.class_names)
            res: dict[str, Any] = {
                "path": str(path),
                "pred": top[0]["id"],
                "name": top[0]["name"],
                "prob": top[0]["prob"],
                "top3": top,
                "explained": int(expl.targets[i]),
                "relevance": relevance[i].astype(np.float32),
                "files": [],
                "coverage": coverage,
            }
            if out is not None:
                stem = path.stem
                stems[stem] = stems.get(stem, 0) + 1
                if stems[stem] > 1:  # two inputs with one name must not overwrite each other
                    stem = f"{stem}_{stems[stem]}"
                big = DISPLAY_SCALE * classifier.input_size
                image = np.asarray(Image.fromarray(shown[i]).resize((big, big), Image.Resampling.NEAREST))
                heat_path, overlay_path = out / f"{stem}_heatmap.png", out / f"{stem}_overlay.png"
                save_png(heat_path, render_heatmap(relevance[i], cmap, size=big))
                save_png(overlay_path, overlay_heatmap(image, relevance[i], 0.6, cmap))
                res["files"] = [str(heat_path), str(overlay_path)]
                if save_relevance:
                    npy = out / f"{stem}_relevance.npy"
                    buf = io.BytesIO()
                    np.save(buf, relevance[i].astype(np.float32), allow_pickle=False)
                    atomic_write_bytes(npy, buf.getvalue())
                    res["files"].append(str(npy))
            results.append(res)
    return results
