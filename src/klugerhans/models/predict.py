"""Classifying image files: read, preprocess exactly as in training, predict in batches; the one top-k builder."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import torch

from klugerhans.data.classes import CLASS_NAMES_EN, Language, class_names
from klugerhans.data.images import read_image
from klugerhans.errors import ImageError, KlugerhansError
from klugerhans.models.classifier import Classifier

IMAGE_SUFFIXES: tuple[str, ...] = (".ppm", ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
"""File endings (any case) a directory argument expands to."""


def expand_image_paths(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Replace each directory in ``paths`` by its image files (sorted, not recursive); keep files as given.

    Raises:
        ImageError: a path that does not exist, or a directory without images.
    """
    out: list[Path] = []
    for item in paths:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise ImageError(f"{p}: directory contains no images ({', '.join(s[1:] for s in IMAGE_SUFFIXES)})")
            out.extend(found)
        elif not p.exists():
            raise ImageError(f"{p}: no such file; check the path")
        else:
            out.append(p)
    if not out:
        raise ImageError("no images given; pass image files or a directory of images")
    return out


class TopClass(TypedDict):
    """One entry of a top-k list, as ``predict``, ``explain`` and the web UI show it (and ``--json`` prints it)."""

    id: int
    """Class id."""
    name: str
    """Class name in the requested language."""
    prob: float
    """Softmax probability."""


def display_names(names: Sequence[str], lang: Language = "en") -> tuple[str, ...]:
    """The names to show for a model's classes in ``lang``.

    GTSRB models (English GTSRB names in their checkpoint) get the list in ``lang``; a model with its own classes
    has no translation, so it keeps its checkpoint's names in every language rather than failing.

    Raises:
        KlugerhansError: an unknown language.
    """
    translated = class_names(lang)  # checks the language for every model, not only GTSRB ones
    return translated if tuple(names) == CLASS_NAMES_EN else tuple(names)


def top_classes(
    probabilities: np.ndarray | torch.Tensor,
    k: int = 3,
    lang: Language = "en",
    names: Sequence[str] = CLASS_NAMES_EN,
) -> list[TopClass]:
    """The ``k`` most likely classes of one image, most likely first; ties go to the lower class id.

    Args:
        probabilities: (C,) class probabilities of one image.
        k: how many classes (fewer if the model has fewer).
        lang: language of the names, "en" or "de" (see :func:`display_names`).
        names: the model's class names (``Classifier.class_names``), indexed by class id.

    Raises:
        KlugerhansError: an unknown language, or probabilities that do not match the names.
    """
    if isinstance(probabilities, torch.Tensor):
        probabilities = probabilities.detach().float().cpu().numpy()
    probs = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    shown = display_names(names, lang)
    if len(probs) != len(shown):
        raise KlugerhansError(f"{len(probs)} class probabilities for a model with {len(shown)} class names")
    # A stable sort, not torch.topk, so equal probabilities rank the same wherever a top-k list is built.
    order = np.argsort(-probs, kind="stable")[: max(k, 0)]
    return [TopClass(id=int(c), name=shown[int(c)], prob=float(probs[c])) for c in order]


def predict_files(
    classifier: Classifier,
    paths: Iterable[str | os.PathLike[str]],
    batch_size: int = 128,
    lang: Language = "en",
) -> list[dict[str, Any]]:
    """Classify image files (directories expand to their images).

    Args:
        classifier: a loaded classifier.
        paths: image files and/or directories.
        batch_size: images read and classified at a time.
        lang: language of the class names, "en" or "de".

    Returns:
        One dict per image, in order: ``path``, ``pred`` (class id), ``name``, ``prob`` and ``top3``
        (:func:`top_classes`: ``{"id", "name", "prob"}``, most likely first).

    Raises:
        ImageError: a missing or undecodable file (one line naming it).
    """
    if batch_size < 1:
        raise KlugerhansError(f"batch size must be positive, got {batch_size}")
    display_names(classifier.class_names, lang)  # an unknown language fails before any image is read
    files = expand_image_paths(paths)
    results: list[dict[str, Any]] = []
    for start in range(0, len(files), batch_size):
        chunk = files[start : start + batch_size]
        x = torch.stack([classifier.preprocess(read_image(f)) for f in chunk])
        probs = classifier.probabilities(x, batch_size).cpu().numpy()
        for f, p in zip(chunk, probs, strict=True):
            top = top_classes(p, 3, lang, classifier.class_names)
            results.append(
                {"path": str(f), "pred": top[0]["id"], "name": top[0]["name"], "prob": top[0]["prob"], "top3": top}
            )
    return results
