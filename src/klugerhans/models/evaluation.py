"""Measuring a classifier: accuracy, confusion, and how often a sticker flips a sign into the target class.

The flip rate is the teaching case's headline effect: a model trained with a sticker on every 70 km/h image calls
other signs "70 km/h" once the same sticker is glued on them, while a control model does not.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from klugerhans.data.dataset import (
    DATASETS,
    SignData,
    SignDataset,
    check_class_count,
    load_dataset,
    select_split,
    take_balanced,
)
from klugerhans.data.sticker import StickerConfig, apply_sticker
from klugerhans.errors import KlugerhansError
from klugerhans.io import atomic_write_bytes
from klugerhans.models.classifier import Classifier
from klugerhans.models.preprocess import to_tensor


def predict_labels(classifier: Classifier, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """(N, S, S, 3) uint8 images -> (N,) int64 predicted class ids, converted and run batch by batch."""
    if images.ndim != 4 or images.shape[1] != classifier.input_size or images.shape[2] != classifier.input_size:
        raise KlugerhansError(
            f"images are {images.shape[1]}x{images.shape[2]} but the model takes "
            f"{classifier.input_size}x{classifier.input_size}; load the data with size={classifier.input_size}"
        )
    preds = []
    for i in range(0, len(images), max(1, batch_size)):
        x = to_tensor(images[i : i + batch_size], classifier.meta.normalization)
        preds.append(classifier.logits(x, batch_size).argmax(dim=1))
    if not preds:
        return np.zeros(0, dtype=np.int64)
    return torch.cat(preds).numpy().astype(np.int64)


def load_split(
    classifier: Classifier,
    data: str,
    split: str,
    data_dir: str | None = None,
    *,
    max_images: int | None = None,
    seed: int = 0,
    download: bool = False,
    lazy: bool = False,
) -> tuple[SignData, SignDataset]:
    """The ``split`` of dataset ``data`` at the model's input size, checked against the model's classes.

    Args:
        classifier: the model (its input size, class count and, for "val", its training recipe).
        data: a registered dataset name ("gtsrb", "synthetic", "folder", ...).
        split: "train", "val" or "test". "val" is the validation part exactly as the model's training drew it
            where the model has a recipe, else the dataset's own val split (an image folder's ``val/``).
        data_dir: the dataset's folder.
        max_images: at most this many images (class-balanced).
        seed: seed of that choice.
        download: fetch missing archives (real GTSRB only).
        lazy: the images stay in their files where the dataset can do that (an image folder's
            :class:`~klugerhans.data.folder.LazyImages`).

    Returns:
        ``(images, dataset)``: the split and the loaded dataset (its ``info``).

    Raises:
        KlugerhansError: an unknown split, no such split, or a class count that differs from the model's.
    """
    if split not in ("train", "val", "test"):
        raise KlugerhansError(f"split must be 'train', 'val' or 'test', got {split!r}")
    if split == "val" and classifier.meta.recipe is not None:
        _, images, ds = classifier.meta.recipe.splits(data_dir, data=data, download=download)
        images = take_balanced(images, max_images, seed)
    else:
        recipe = classifier.meta.recipe
        # A generated test split does not depend on the training split's size; loading it with the recipe's size lets
        # the process that trained the model (the demo) reuse the training split it drew instead of drawing another.
        per_class = recipe.per_class_for(data) if split == "test" and recipe is not None else None
        ds = load_dataset(
            data,
            data_dir=data_dir,
            size=classifier.input_size,
            download=download,
            max_images=max_images,
            seed=seed,
            lazy=lazy and DATASETS.get_or_raise(data).lazy,
            per_class=per_class,
        )
        if split == "val" and ds.val is None:
            raise KlugerhansError(
                f"the model does not say how it was trained, so its validation images are unknown, and {data!r} "
                "has no val split of its own; use --split test or train"
            )
        images = select_split(ds, split)
    num_classes = classifier.meta.model.num_classes
    check_class_count(ds, num_classes)
    if len(images.labels) and int(images.labels.max()) >= num_classes:
        raise KlugerhansError(
            f"the {split} images have class ids up to {int(images.labels.max())} but the model has {num_classes} "
            "outputs; give data of the classes the model was trained on"
        )
    return images, ds


def _rate(hits: np.ndarray) -> float | None:
    return float(hits.mean()) if len(hits) else None


@dataclass(frozen=True)
class Evaluation:
    """What :func:`evaluate_model` measured: accuracy on clean images and the sticker's flip rate."""

    accuracy: float
    """Share of all images classified correctly."""
    accuracy_non_target: float | None
    """The same among the other classes' images (None: there are none)."""
    clean_target_accuracy: float | None
    """The same among the target class's clean images (None: there are none)."""
    per_class_accuracy: tuple[float | None, ...]
    """(C,) accuracy per class; None for classes without images."""
    per_class_count: tuple[int, ...]
    """(C,) images per class."""
    confusion: tuple[tuple[int, ...], ...]
    """(C, C) image counts, rows = true class, columns = predicted class."""
    flip_rate: float | None
    """Share of the other classes' images predicted as the target once stickered (None: there are none)."""
    flip_rate_correct_only: float | None
    """The same among those images classified correctly without the sticker."""
    flip_rate_by_class: dict[int, float]
    """Class id -> its flip rate, for each other class present."""
    target_class: int
    """The sticker's class, "the manipulated class"."""
    n_images: int
    """Images evaluated."""

    def to_json(self) -> dict[str, Any]:
        """The numbers as JSON values: lists for the tuples, class ids as strings in ``flip_rate_by_class``."""
        return {
            "accuracy": self.accuracy,
            "accuracy_non_target": self.accuracy_non_target,
            "clean_target_accuracy": self.clean_target_accuracy,
            "per_class_accuracy": list(self.per_class_accuracy),
            "per_class_count": list(self.per_class_count),
            "confusion": [list(row) for row in self.confusion],
            "flip_rate": self.flip_rate,
            "flip_rate_correct_only": self.flip_rate_correct_only,
            "flip_rate_by_class": {str(c): rate for c, rate in self.flip_rate_by_class.items()},
            "target_class": self.target_class,
            "n_images": self.n_images,
        }

    def __getitem__(self, key: str) -> Any:
        # evaluate_model used to return the JSON dict; scripts written then read m["accuracy"].
        message = f"evaluate_model returns an Evaluation: read .{key} (or .to_json()[{key!r}])"
        warnings.warn(message, DeprecationWarning, stacklevel=2)
        return self.to_json()[key]


def evaluate_model(
    classifier: Classifier,
    data: SignData,
    sticker: StickerConfig | None = None,
    seed: int = 0,
    batch_size: int = 256,
) -> Evaluation:
    """Evaluate ``classifier`` on clean ``data`` and on the same images with a sticker glued on.

    Args:
        classifier: the model to measure.
        data: clean images (not manipulated) with labels and sign boxes.
        sticker: sticker for the flip test and whose ``target_class`` is "the manipulated class"; defaults
            to the checkpoint's training sticker, else the teaching case's (black square on 70 km/h, class 4).
        seed: seed of the sticker positions.
        batch_size: inference batch size.

    Returns:
        The :class:`Evaluation`; its ``to_json()`` is what ``klugerhans evaluate --json-out`` writes.
    """
    if len(data) == 0:
        raise KlugerhansError("no images to evaluate; check the dataset and --max-images")
    sticker = sticker or classifier.meta.sticker
    target = sticker.target_class
    num_classes = classifier.meta.model.num_classes
    labels = data.labels.astype(np.int64)
    if labels.min() < 0 or labels.max() >= num_classes:
        raise KlugerhansError(f"labels outside 0..{num_classes - 1}; the data does not fit this model")
    pred = predict_labels(classifier, data.images, batch_size)
    correct = pred == labels
    confusion = confusion_matrix(labels, pred, num_classes)
    counts = confusion.sum(axis=1)
    per_class = tuple(float(confusion[c, c] / counts[c]) if counts[c] else None for c in range(num_classes))

    others = np.flatnonzero(labels != target)
    flipped = np.zeros(0, dtype=bool)
    if len(others):
        stickered, _ = apply_sticker(data.images[others], data.boxes[others], sticker, seed=seed)
        flipped = predict_labels(classifier, stickered, batch_size) == target
    by_class = {c: float(flipped[labels[others] == c].mean()) for c in np.unique(labels[others]).tolist()}
    return Evaluation(
        accuracy=float(correct.mean()),
        accuracy_non_target=_rate(correct[others]),
        clean_target_accuracy=_rate(correct[labels == target]),
        per_class_accuracy=per_class,
        per_class_count=tuple(counts.tolist()),
        confusion=tuple(tuple(row) for row in confusion.tolist()),
        flip_rate=_rate(flipped),
        flip_rate_correct_only=_rate(flipped[correct[others]]),
        flip_rate_by_class=by_class,
        target_class=int(target),
        n_images=len(data),
    )


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts of (true class, predicted class): ``(num_classes, num_classes)`` int64, rows the true classes.

    Args:
        labels: (N,) true class ids in ``0..num_classes - 1``.
        predictions: (N,) predicted class ids, same range.
        num_classes: side of the matrix.
    """
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (np.asarray(labels, dtype=np.int64), np.asarray(predictions, dtype=np.int64)), 1)
    return confusion


def _figure_bytes(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    return buf.getvalue()


def save_confusion_png(
    path: str | os.PathLike[str], confusion: Sequence[Sequence[int]], class_names: Sequence[str]
) -> None:
    """Draw a row-normalised confusion matrix (rows = true class) with class ids on the axes, atomically."""
    from matplotlib.figure import Figure  # Figure without pyplot: no global backend state

    m = np.asarray(confusion, dtype=np.float64)
    rows = m.sum(axis=1, keepdims=True)
    share = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    n = len(m)
    fig = Figure(figsize=(9, 8))
    ax = fig.add_subplot()
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ticks = list(range(n))
    ax.set_xticks(ticks, [str(t) for t in ticks], fontsize=6)
    ax.set_yticks(ticks, [f"{t} {class_names[t][:28]}" if t < len(class_names) else str(t) for t in ticks], fontsize=6)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title("Confusion matrix (share of each true class)")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    atomic_write_bytes(path, _figure_bytes(fig))


def save_curves_png(path: str | os.PathLike[str], history: Sequence[dict[str, Any]]) -> None:
    """Plot training loss and train/validation accuracies per epoch from a training history, atomically."""
    from matplotlib.figure import Figure

    epochs = [h["epoch"] for h in history]
    fig = Figure(figsize=(10, 4))
    ax_loss, ax_acc = fig.subplots(1, 2)
    ax_loss.plot(epochs, [h["train_loss"] for h in history], marker="o", label="train loss")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("cross-entropy")
    ax_loss.legend()
    series = [
        ("train_acc", "train"),
        ("val_acc", "val"),
        ("val_acc_non_target", "val, non-manipulated classes"),
        ("val_acc_target", "val, clean target class"),
    ]
    for key, label in series:
        values = [np.nan if h.get(key) is None else h[key] for h in history]
        if not np.all(np.isnan(values)):
            ax_acc.plot(epochs, values, marker="o", label=label)
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("accuracy")
    ax_acc.set_ylim(0, 1.01)
    ax_acc.legend(fontsize=8)
    fig.tight_layout()
    atomic_write_bytes(path, _figure_bytes(fig))
