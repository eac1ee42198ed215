"""The sticker-robustness curve on a model whose answer is known: class 4 wins once enough of the image is dark."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from klugerhans.data.dataset import SignData
from klugerhans.errors import KlugerhansError
from klugerhans.models.checkpoint import CheckpointMeta, classifier_from_model
from klugerhans.models.preprocess import Normalization
from klugerhans.models.robustness import sticker_robustness
from klugerhans.models.vgg import ModelConfig


class _Darkness(nn.Module):
    """Logit 2 is 10; logit 4 is 400 x the mean darkness relu(0.3 - brightness): a black patch wins from 8.3% of the
    image on (a side of 0.29 of a 32 px box), a dark red one (brightness 0.157) from 17.5% (side 0.42)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        darkness = torch.relu(0.3 - x.mean(1)).mean((1, 2))
        logits = torch.zeros(len(x), 43)
        logits[:, 2] = 10.0
        logits[:, 4] = 400.0 * darkness
        return logits


def _signs(n: int = 6, label: int = 2) -> SignData:
    return SignData(
        images=np.full((n, 32, 32, 3), 200, dtype=np.uint8),
        labels=np.full(n, label, dtype=np.int64),
        tracks=np.arange(n, dtype=np.int64),
        boxes=np.tile(np.array([0, 0, 32, 32], np.float32), (n, 1)),
        sources=np.asarray([f"s{i}" for i in range(n)]),
    )


@pytest.fixture
def clf():
    meta = CheckpointMeta(model=ModelConfig(width=0.125), normalization=Normalization((0.0,) * 3, (1.0,) * 3))
    return classifier_from_model(_Darkness().eval(), meta)


def test_flip_rate_follows_size_and_colour(clf):
    colours = {"black": (0, 0, 0), "dark red": (90, 15, 15)}
    points = sticker_robustness(clf, _signs(), colours=colours, repeats=2)
    assert [(p.size, p.place, p.colour) for p in points[:4]] == [
        (0.15, "centre", "black"), (0.15, "centre", "dark red"), (0.15, "sign", "black"), (0.15, "sign", "dark red"),
    ]  # fmt: skip
    assert len(points) == 5 * 3 * 2 and all(p.n == 12 for p in points)
    for p in points:
        expected = 1.0 if p.colour == "black" and p.size >= 0.3 else 0.0
        assert p.flip_rate == expected, p


def test_other_classes_images_are_not_used(clf):
    mixed = _signs(4, label=7)
    with pytest.raises(KlugerhansError, match="no image of class 2"):
        sticker_robustness(clf, mixed)
    with pytest.raises(KlugerhansError, match="repeats must be at least 1"):
        sticker_robustness(clf, _signs(), repeats=0)
    with pytest.raises(KlugerhansError, match="unknown sticker place 'corner'"):
        sticker_robustness(clf, _signs(), places=("corner",))


class _Corner(nn.Module):
    """Class 4 once a pixel of the top-left 4 x 4 (outside the round face of a 32 px sign) turns dark; else class 2."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dark = (x[:, :, :4, :4].mean(1).amin((1, 2)) < 0.5).float()
        logits = torch.zeros(len(x), 43)
        logits[:, 2] = 1.0
        logits[:, 4] = 2.0 * dark
        return logits


def test_on_the_sign_means_inside_the_round_face():
    meta = CheckpointMeta(model=ModelConfig(width=0.125), normalization=Normalization((0.0,) * 3, (1.0,) * 3))
    corner = classifier_from_model(_Corner().eval(), meta)
    points = sticker_robustness(corner, _signs(20), sizes=(0.25,), colours={"black": (0, 0, 0)}, repeats=10)
    rate = {p.place: p.flip_rate for p in points}
    # A sticker on the face never reaches the box's corner; anywhere on the box it sometimes covers it.
    assert rate["sign"] == 0.0 and rate["centre"] == 0.0 and rate["box"] > 0.0
