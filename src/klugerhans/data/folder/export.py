"""Write splits of sign images as an ImageFolder tree, the layout :mod:`klugerhans.data.folder.scan` reads back.

The use: hand the images a model was trained on (our stickers included) to an audit that knows nothing about how
they were made, exactly as a user hands over their own photos (``klugerhans data --export DIR --as-trained RUN``).
Files are lossless PNG at the split's size, so reading the tree back at that size gives the same pixels.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from klugerhans.data.dataset import SignData
from klugerhans.errors import DataError
from klugerhans.io import atomic_write_text

__all__ = ["class_folder", "export_image_folder"]


def class_folder(class_id: int, num_classes: int) -> str:
    """Folder name of a class: its id zero-padded (at least 5 digits, as GTSRB), so sorting keeps id order."""
    return f"{class_id:0{max(5, len(str(num_classes - 1)))}d}"


def export_image_folder(
    splits: Mapping[str, SignData],
    out: str | os.PathLike[str],
    class_names: Sequence[str],
    *,
    progress: bool = False,
) -> dict[str, int]:
    """Write ``out/<split>/<class id>/<n>.png`` for every image of every split, atomically.

    The tree is written next to ``out`` and renamed into place when complete, so an interrupted export leaves
    nothing at ``out``. ``out/classes.tsv`` maps each folder to its class name (the loader skips it).

    Args:
        splits: split name ("train", "val" or "test") -> images; every class with an image in any split gets a
            folder in ``train/`` (an empty one would be an error for the loader, so ``train`` must hold them all).
        out: target folder; must not exist or be empty.
        class_names: name of each class id, its length the number of classes.
        progress: show a progress bar on stderr.

    Returns:
        Images written per split.

    Raises:
        DataError: an unknown split name, a class missing from ``train``, or ``out`` not empty.
    """
    root = Path(out)
    unknown = sorted(set(splits) - {"train", "val", "test"})
    if unknown:
        raise DataError(f"cannot export split(s) {unknown}: use train, val and test")
    if "train" not in splits:
        raise DataError("an image folder needs a train split: its class folders define the classes")
    train_classes = set(np.unique(splits["train"].labels).tolist())
    for name, data in splits.items():
        missing = sorted(set(np.unique(data.labels).tolist()) - train_classes)
        if missing:
            raise DataError(f"classes {missing} have images in {name} but none in train; the loader would reject them")
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise DataError(f"{root} exists and is not empty; choose a new folder for the export")
    n = len(class_names)
    partial = root.parent / f".{root.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    written: dict[str, int] = {}
    for name, data in splits.items():
        written[name] = _write_split(data, partial / name, n, progress)
    atomic_write_text(
        partial / "classes.tsv",
        "".join(f"{class_folder(c, n)}\t{class_names[c]}\n" for c in sorted(train_classes)),
    )
    if root.exists():
        root.rmdir()
    os.replace(partial, root)
    return written


def _write_split(data: SignData, folder: Path, num_classes: int, progress: bool) -> int:
    rows = range(len(data))
    if progress:
        from tqdm.auto import tqdm

        rows = tqdm(rows, desc=f"writing {folder.name}", unit="img", leave=False, file=sys.stderr)
    made: set[int] = set()
    for i in rows:
        c = int(data.labels[i])
        target = folder / class_folder(c, num_classes)
        if c not in made:
            target.mkdir(parents=True, exist_ok=True)
            made.add(c)
        Image.fromarray(np.asarray(data.images[i])).save(target / f"{i:06d}.png", compress_level=1)
    return len(data)
