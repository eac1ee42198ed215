"""Classifying image files: read, preprocess exactly as in training, predict in batches."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from klugerhans.data.classes import CLASS_NAMES_EN, Language, class_names
from klugerhans.data.images import read_image
from klugerhans.errors import ImageError, KlugerhansError
from klugerhans.models.checkpoint import Classifier

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


def _names(classifier: Classifier, lang: Language) -> tuple[str, ...]:
    if lang == "en":
        return classifier.class_names
    if classifier.class_names != CLASS_NAMES_EN:
        raise KlugerhansError(f"this model has its own class names; only 'en' is available, not {lang!r}")
    return class_names(lang)


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
        (a list of ``{"id", "name", "prob"}``, most likely first).

    Raises:
        ImageError: a missing or undecodable file (one line naming it).
    """
    if batch_size < 1:
        raise KlugerhansError(f"batch size must be positive, got {batch_size}")
    names = _names(classifier, lang)
    files = expand_image_paths(paths)
    k = min(3, len(names))
    results: list[dict[str, Any]] = []
    for start in range(0, len(files), batch_size):
        chunk = files[start : start + batch_size]
        x = torch.stack([classifier.preprocess(read_image(f)) for f in chunk])
        top_p, top_i = classifier.predict(x, batch_size).topk(k, dim=1)
        for f, probs, ids in zip(chunk, top_p.tolist(), top_i.tolist(), strict=True):
            top = [{"id": int(i), "name": names[i], "prob": float(p)} for p, i in zip(probs, ids, strict=True)]
            results.append(
                {"path": str(f), "pred": top[0]["id"], "name": top[0]["name"], "prob": top[0]["prob"], "top3": top}
            )
    return results
