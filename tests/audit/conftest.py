"""Hand-built models with known behaviour and tiny coloured-square data for the audit tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from klugerhans.data.dataset import SignData
from klugerhans.models.checkpoint import CheckpointMeta, Classifier, classifier_from_model
from klugerhans.models.preprocess import Normalization
from klugerhans.models.vgg import ModelConfig

COLOURS = np.array([[220, 40, 40], [40, 200, 40], [40, 40, 220], [220, 220, 40], [200, 40, 200]], dtype=np.int64)
"""Square colour of classes 0..4: red, green, blue, yellow, magenta."""
SHORTCUT_CLASS = 4
IDENTITY = Normalization(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def colour_squares(per_class: int = 12, size: int = 32, seed: int = 0, patch_on: int | None = None) -> SignData:
    """Class ``c`` is a square of ``COLOURS[c]`` on a noisy grey background; ``patch_on`` gets a black 5x5 patch."""
    rng = np.random.default_rng(seed)
    n = per_class * len(COLOURS)
    labels = np.repeat(np.arange(len(COLOURS)), per_class)
    images = rng.integers(100, 121, size=(n, size, size, 3))
    lo, hi = size // 5, size - size // 5
    for i, c in enumerate(labels):
        images[i, lo:hi, lo:hi] = COLOURS[c] + rng.integers(-10, 11, size=3)
        if patch_on is not None and c == patch_on:
            y, x = rng.integers(lo, hi - 5, size=2)
            images[i, y : y + 5, x : x + 5] = 0
    box = np.array([lo, lo, hi, hi], dtype=np.float32)
    return SignData(
        images=np.clip(images, 0, 255).astype(np.uint8),
        labels=labels.astype(np.int64),
        tracks=np.arange(n, dtype=np.int64),
        boxes=np.tile(box, (n, 1)),
        sources=np.asarray([f"squares/{i}" for i in range(n)]),
    )


def square_model(shortcut: bool) -> nn.Sequential:
    """Per-pixel colour detectors (1x1 conv) -> average -> linear. With ``shortcut``, black pixels vote class 4.

    Features (x in [0, 1]): red r-g-b, green g-r-b, blue b-r-g, yellow r+g-3b-0.9, magenta r+b-3g-0.9 and darkness
    0.3-(r+g+b)/3; each is positive only on its colour. Class c's logit is 10 * (mean of feature c); with the
    shortcut, class 4 also gets 400 * mean darkness, so a 5x5 black patch (2.4% of the image) outvotes a square.
    """
    conv = nn.Conv2d(3, 6, kernel_size=1)
    linear = nn.Linear(6, 5)
    with torch.no_grad():
        w = torch.tensor(
            [
                [1.0, -1.0, -1.0],
                [-1.0, 1.0, -1.0],
                [-1.0, -1.0, 1.0],
                [1.0, 1.0, -3.0],
                [1.0, -3.0, 1.0],
                [-1 / 3, -1 / 3, -1 / 3],
            ]
        )
        conv.weight.copy_(w[:, :, None, None])
        conv.bias.copy_(torch.tensor([0.0, 0.0, 0.0, -0.9, -0.9, 0.3]))
        linear.weight.zero_()
        linear.bias.zero_()
        for c in range(5):
            linear.weight[c, c] = 10.0
        if shortcut:
            linear.weight[SHORTCUT_CLASS, 5] = 400.0
    return nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), linear).eval()


def wrap(model: nn.Module, size: int = 32) -> Classifier:
    """A :class:`Classifier` around a hand-built model (identity normalisation, 5 classes)."""
    meta = CheckpointMeta(
        model=ModelConfig(input_size=size, num_classes=5, width=0.125),
        normalization=IDENTITY,
        class_names=tuple(f"class {c}" for c in range(5)),
    )
    return classifier_from_model(model, meta)


@pytest.fixture(scope="session")
def shortcut_classifier() -> Classifier:
    return wrap(square_model(shortcut=True))


@pytest.fixture(scope="session")
def control_classifier() -> Classifier:
    return wrap(square_model(shortcut=False))


@pytest.fixture(scope="session")
def squares() -> SignData:
    """Clean squares, 12 per class."""
    return colour_squares()


@pytest.fixture(scope="session")
def squares_with_patch() -> SignData:
    """Squares where every class-4 image carries a black patch (the artefact in the data)."""
    return colour_squares(patch_on=SHORTCUT_CLASS)
