"""The ``"folder"`` dataset: a user's own images in torchvision's ImageFolder layout, at the model's input size.

Every file is brought to S x S by :func:`klugerhans.data.images.resize_center_crop` (torchvision's
``Resize(S)`` + ``CenterCrop(S)``, pixel for pixel), labelled by its class folder in ``ImageFolder`` order
(:mod:`klugerhans.data.folder.scan`). Photos have no sign box and no tracks: the box is the whole image and
every image is its own track (-1). ``max_images`` picks the files before anything is decoded, and
``lazy=True`` decodes nothing up front (:mod:`klugerhans.data.folder.stream`).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from klugerhans.data.dataset import MIN_IMAGE_SIZE, SignData, SignDataset, balanced_index, register_dataset
from klugerhans.data.folder.scan import FolderIndex, FolderSplit, scan_folder
from klugerhans.data.folder.stream import decode_files, lazy_sign_data
from klugerhans.errors import KlugerhansError


def folder_class_names(data_dir: str | None) -> tuple[str, ...]:
    """The class folder names of ``data_dir`` in label order (no image is opened)."""
    return scan_folder(data_dir).class_names


@register_dataset("folder", title="your images", sizes=None, lazy=True, class_names=folder_class_names)
def load_folder(
    *,
    data_dir: str | os.PathLike[str] | None = None,
    size: int = 224,
    download: bool = False,
    max_images: int | None = None,
    seed: int = 0,
    lazy: bool = False,
    progress: bool = True,
) -> SignDataset:
    """Load ``DIR/{train,val,test}/<class>/*`` or a bare ``DIR/<class>/*`` (any size and format Pillow reads).

    Args:
        data_dir: the folder (layouts: :mod:`klugerhans.data.folder.scan`).
        size: side S of the (N, S, S, 3) uint8 images, the model's input size (any S >= 8).
        download: ignored (nothing to fetch).
        max_images: keep a class-balanced subset of at most this many images per split
            (:func:`klugerhans.data.dataset.take_balanced`'s choice), chosen before decoding.
        seed: seed of that subset.
        lazy: leave the images in their files: each split's ``images`` is a
            :class:`~klugerhans.data.folder.stream.LazyImages` that decodes the rows it is indexed with, so
            memory does not grow with the number of images (read it with ``iter_batches``).
        progress: show a progress bar on stderr while decoding (in memory, from 500 images on).

    Returns:
        A :class:`SignDataset` with ``train``, ``test`` and, where ``val/`` exists, ``val`` (in the train/val
        layout ``test`` is the val split; in a bare folder ``train`` and ``test`` are the same images; with ``train/``
        alone ``test`` is empty, a split the folder does not have). Labels
        index ``info["class_names"]``. ``info`` also holds ``name``, ``root``, ``layout``, ``splits`` (each
        split's folder), ``image_size``, ``resize``, ``lazy`` and, per split, ``images`` (returned),
        ``available`` (found), ``classes`` (with images) and ``per_class`` (found per class).

    Raises:
        DataError: no such folder, no class folders, empty class folders, an unknown class in val/ or test/,
            or (while decoding) a file with an image extension that is not a readable image.
    """
    del download
    if size < MIN_IMAGE_SIZE:
        raise KlugerhansError(
            f"image size {size} is too small: use {MIN_IMAGE_SIZE} pixels or more (the model's input)"
        )
    if max_images is not None and max_images < 1:
        raise KlugerhansError(f"--max-images must be a positive number, got {max_images}")
    index = scan_folder(data_dir)
    loaded: dict[int, SignData] = {}  # by id of the FolderSplit: shared splits are decoded once

    def load(split: FolderSplit) -> SignData:
        if id(split) not in loaded:
            loaded[id(split)] = _load_split(split, size, max_images, seed, lazy, progress)
        return loaded[id(split)]

    train = load(index.train)
    test = load(index.test) if index.test is not None else train.subset(slice(0, 0))  # train/ alone: no test split
    val = load(index.val) if index.val is not None else None
    info = _info(index, size, lazy, {"train": train, "val": val, "test": test})
    return SignDataset(train=train, test=test, info=info, val=val)


def _load_split(
    split: FolderSplit, size: int, max_images: int | None, seed: int, lazy: bool, progress: bool
) -> SignData:
    if max_images is not None:
        split = split.take(balanced_index(split.labels, max_images, seed))
    if lazy:
        return lazy_sign_data(split.paths, split.labels, size)
    n = len(split)
    return SignData(
        images=decode_files(split.paths, size, progress=progress, desc=f"decoding {split.name}"),
        labels=split.labels,
        tracks=np.full(n, -1, dtype=np.int64),
        boxes=np.tile(np.array([0, 0, size, size], dtype=np.float32), (n, 1)),
        sources=split.paths,
    )


def _info(index: FolderIndex, size: int, lazy: bool, data: dict[str, SignData | None]) -> dict[str, Any]:
    """JSON-serialisable facts for ``klugerhans data`` and the reports."""
    num_classes = len(index.class_names)
    found = {"train": index.train, "val": index.val, "test": index.test}
    root = index.root
    info: dict[str, Any] = {
        "name": "folder",
        "root": root,
        "layout": index.layout,
        "splits": {name: os.path.relpath(split.folder, root) for name, split in found.items() if split is not None},
        "image_size": size,
        "resize": f"short side to {size} px, centre {size}x{size} crop (torchvision Resize + CenterCrop)",
        "lazy": lazy,
        "classes": num_classes,
        "class_names": list(index.class_names),
    }
    for name, split in found.items():
        returned = data[name]
        if split is None or returned is None:
            continue
        counts = split.class_counts(num_classes)
        info[name] = {
            "images": len(returned),
            "available": len(split),
            "classes": int((counts > 0).sum()),
            "per_class": counts.tolist(),
        }
    return info
