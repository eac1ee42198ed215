"""``klugerhans.audit_model``: audit any classifier on any map-style dataset of ``(image, label)`` pairs.

>>> import klugerhans
>>> result = klugerhans.audit_model(model, torchvision.datasets.ImageFolder("photos/train"), image_size=64)
>>> result.ranking.flagged                     # classes whose most relevant patch hijacks other images
>>> result.to_json()["per_class"]              # every number, as ``klugerhans audit`` writes it
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import fields
from typing import Any, Protocol

import numpy as np
import torch
from PIL import Image
from torch import nn

from klugerhans.audit.config import AuditConfig
from klugerhans.audit.run import AuditResult, audit_classifier
from klugerhans.data.dataset import SignData
from klugerhans.data.images import resize_center_crop
from klugerhans.errors import KlugerhansError
from klugerhans.models.classifier import classifier_from_model
from klugerhans.models.config import IN_MEMORY, ModelConfig
from klugerhans.models.distributed import resolve_device
from klugerhans.models.meta import CheckpointMeta
from klugerhans.models.preprocess import IMAGENET, Normalization, to_uint8

__all__ = ["audit_model", "dataset_images"]


class MapDataset(Protocol):
    """What ``audit_model`` reads: ``len(ds)`` and ``ds[i] -> (image, label)`` (a torch ``Dataset`` is one)."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Any: ...


def _to_uint8(image: Any, norm: Normalization) -> np.ndarray:
    """One image as (H, W, 3) uint8: PIL, (H, W, 3)/(H, W) uint8 arrays, (3, H, W) uint8 or normalised floats."""
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    if isinstance(image, torch.Tensor) and image.is_floating_point():
        if image.ndim != 3 or image.shape[0] != 3:
            raise KlugerhansError(f"float images must be (3, H, W) normalised tensors, got {tuple(image.shape)}")
        return to_uint8(image[None], norm)[0]
    array = image.cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if array.dtype != np.uint8:
        raise KlugerhansError(
            f"images must be PIL images, uint8 arrays or (3, H, W) normalised float tensors, got {array.dtype}"
        )
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    if array.ndim == 3 and array.shape[0] == 3 and array.shape[2] != 3:
        array = array.transpose(1, 2, 0)
    if array.ndim != 3 or array.shape[2] != 3:
        raise KlugerhansError(f"uint8 images must be (H, W, 3) RGB, got shape {array.shape}")
    return array


def dataset_images(
    dataset: MapDataset, image_size: int | None = None, norm: Normalization | None = None
) -> tuple[SignData, int]:
    """Read every ``(image, label)`` of ``dataset`` into a :class:`SignData` of (N, S, S, 3) uint8 images.

    Images of another size are brought to S x S like torchvision's evaluation transform (short side to S, centre
    crop); ``image_size`` defaults to the short side of the first image.

    Returns:
        ``(data, number of classes seen)`` (the largest label + 1).
    """
    norm = norm or Normalization(*IMAGENET)
    n = len(dataset)
    if n == 0:
        raise KlugerhansError("the dataset has no images")
    images: list[np.ndarray] = []
    labels = np.empty(n, dtype=np.int64)
    for i in range(n):
        item = dataset[i]
        if not isinstance(item, tuple | list) or len(item) < 2:
            raise KlugerhansError(f"dataset[{i}] must be an (image, label) pair, got {type(item).__name__}")
        image = _to_uint8(item[0], norm)
        size = image_size or min(image.shape[:2])
        if image.shape[:2] != (size, size):
            image = resize_center_crop(Image.fromarray(image), size)
        image_size = size
        images.append(image)
        labels[i] = int(item[1])
    if labels.min() < 0:
        raise KlugerhansError(f"labels must be class ids 0..C-1, got {int(labels.min())}")
    assert image_size is not None
    data = SignData(
        images=np.stack(images),
        labels=labels,
        tracks=np.full(n, -1, dtype=np.int64),
        boxes=np.tile(np.array([0, 0, image_size, image_size], dtype=np.float32), (n, 1)),
        sources=np.asarray([f"dataset[{i}]" for i in range(n)]),
    )
    return data, int(labels.max()) + 1


def audit_model(
    model: nn.Module,
    dataset: MapDataset,
    *,
    class_names: Sequence[str] | None = None,
    norm: Normalization | None = None,
    image_size: int | None = None,
    out: str | os.PathLike[str] | None = None,
    device: str = "cpu",
    **options: Any,
) -> AuditResult:
    """Audit any classifier for shortcuts (SpRAy, transplant test, ranking) on a dataset of ``(image, label)`` pairs.

    Args:
        model: any ``nn.Module`` mapping (N, 3, S, S) normalised images to (N, C) logits that LRP can trace.
        dataset: ``len(dataset)`` and ``dataset[i] -> (image, label)``; images as PIL images, (H, W, 3) uint8 arrays
            or (3, H, W) float tensors normalised with ``norm`` (what a torchvision dataset with ``ToTensor`` and
            ``Normalize`` gives). Audit the training images to find what the model learned from them.
        class_names: one per output (default: ``dataset.classes`` where it has them, else "class 0".."class C-1").
        norm: the model's input normalisation (default ImageNet's).
        image_size: input side S (default: the short side of the first image).
        out: also write ``audit.json``, ``report.html`` and the figures into this folder.
        device: ``cpu``, ``cuda``, ``cuda:N``, ``mps`` or ``auto``.
        **options: fields of :class:`~klugerhans.audit.config.AuditConfig` (``threshold``, ``max_per_class``,
            ``composite``, ``methods``, ``placement``, ``seed``, ``progress``, ...).

    Returns:
        The :class:`~klugerhans.audit.result.AuditResult`: ``ranking.order``/``ranking.flagged``, ``findings()``
        per class, ``transplant``, ``spray``, ``comparison`` of the methods, and ``to_json()`` with every number.

    Raises:
        KlugerhansError: unreadable items, labels beyond the model's outputs, wrong class names, unknown options.
    """
    if not isinstance(model, nn.Module):
        raise KlugerhansError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    allowed = {f.name for f in fields(AuditConfig)} - {"checkpoint", "data", "data_dir", "split", "device", "out"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise KlugerhansError(f"unknown audit option {unknown[0]!r}; options: {', '.join(sorted(allowed))}")
    norm = norm or Normalization(*IMAGENET)
    data, seen = dataset_images(dataset, image_size, norm)
    dev = resolve_device(device)
    was_training = model.training
    with torch.no_grad():
        probe = model.eval().to(dev)(torch.zeros(1, 3, data.size, data.size, device=dev))
    if probe.ndim != 2:
        raise KlugerhansError(f"the model must output (N, classes) logits, got {tuple(probe.shape)}")
    num_classes = int(probe.shape[1])
    if seen > num_classes:
        raise KlugerhansError(f"the dataset has class ids up to {seen - 1} but the model has {num_classes} outputs")
    names = class_names if class_names is not None else getattr(dataset, "classes", None)
    if names is None or (class_names is None and len(names) != num_classes):
        names = [f"class {i}" for i in range(num_classes)]
    if len(names) != num_classes:
        raise KlugerhansError(f"got {len(names)} class names for a model with {num_classes} outputs")
    meta = CheckpointMeta(
        model=ModelConfig(family=IN_MEMORY, arch=type(model).__name__, input_size=data.size, num_classes=num_classes),
        normalization=norm,
        class_names=tuple(str(n) for n in names),
        data={"dataset": type(dataset).__name__},
    )
    config = AuditConfig(checkpoint=f"<{type(model).__name__}>", data="dataset", out=str(out or "."), **options)
    info = {"name": type(dataset).__name__, "split": "given", "n_images": len(data), "size": data.size}
    try:
        result = audit_classifier(classifier_from_model(model, meta, dev), data, config, data_info=info)
    finally:
        model.train(was_training)
    if out is not None:
        from klugerhans.audit.report import write_audit

        write_audit(result, out)
    return result
