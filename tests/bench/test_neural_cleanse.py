"""Neural Cleanse (:mod:`klugerhans.bench.neural_cleanse`) on hand-made models whose trigger is known exactly.

The models are the audit tests' colour-square detectors (a 1x1 convolution per colour, averaged, then linear), with
two changes: the darkness feature counts only in the bottom-right corner (rows and columns 24..31 of 32) and starts
just above the grey background, and class 4 has a small negative bias, so that an image stripped of all colour is
not class 4. With the backdoor, class 4 also gets 400 x that corner darkness: a dark patch of some 30 pixels there
outvotes any square, while any other class needs a large part of the square painted over in its colour.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from klugerhans.bench.baselines import run_baselines
from klugerhans.bench.neural_cleanse import CleanseConfig, anomaly_index, reverse_trigger, reverse_triggers
from klugerhans.errors import KlugerhansError
from klugerhans.models.preprocess import Normalization

pytest.importorskip("art")

SIZE, CORNER, TARGET = 32, 24, 4
IDENTITY = Normalization(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
COLOURS = np.array([[220, 40, 40], [40, 200, 40], [40, 40, 220], [220, 220, 40], [200, 40, 200]])


class _CornerGate(nn.Module):
    """Keeps the colour features everywhere and the darkness feature (channel 5) only in the corner."""

    def __init__(self) -> None:
        super().__init__()
        gate = torch.ones(1, 6, SIZE, SIZE)
        gate[:, 5] = 0.0
        gate[:, 5, CORNER:, CORNER:] = 1.0
        self.register_buffer("gate", gate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate


def corner_model(backdoor: bool) -> nn.Module:
    conv, linear = nn.Conv2d(3, 6, kernel_size=1), nn.Linear(6, 5)
    with torch.no_grad():
        w = torch.tensor([[1.0, -1, -1], [-1, 1, -1], [-1, -1, 1], [1, 1, -3], [1, -3, 1], [-1 / 3, -1 / 3, -1 / 3]])
        conv.weight.copy_(w[:, :, None, None])
        conv.bias.copy_(torch.tensor([0.0, 0.0, 0.0, -0.9, -0.9, 0.45]))
        linear.weight.zero_()
        linear.bias.zero_()
        # about -0.1 net in both models: the backdoor's 400 x corner darkness adds some 0.5 on a grey background
        linear.bias[TARGET] = -0.6 if backdoor else -0.1
        for c in range(5):
            linear.weight[c, c] = 20.0
        if backdoor:
            linear.weight[TARGET, 5] = 400.0
    return nn.Sequential(conv, nn.ReLU(), _CornerGate(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), linear).eval()


def squares(per_class: int = 24, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(5), per_class)
    images = rng.integers(100, 121, size=(len(labels), SIZE, SIZE, 3))
    for i, c in enumerate(labels):
        images[i, 6:26, 6:26] = COLOURS[c] + rng.integers(-10, 11, size=3)
    return np.clip(images, 0, 255).astype(np.uint8), labels.astype(np.int64)


def _tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images.transpose(0, 3, 1, 2).astype(np.float32) / 255.0)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    return squares()


def test_the_hand_made_backdoor_works_as_described(data):
    images, labels = data
    model = corner_model(backdoor=True)
    stamped = images.copy()
    stamped[:, 25:31, 25:31] = 0  # 36 dark pixels in the corner
    with torch.no_grad():
        assert (model(_tensor(images)).argmax(1).numpy() == labels).all()
        assert (model(_tensor(stamped)).argmax(1) == TARGET).all()
        assert (corner_model(backdoor=False)(_tensor(stamped)).argmax(1).numpy() == labels).all()


def test_reverse_engineering_finds_the_trigger_in_its_place(data):
    images, labels = data
    others = _tensor(images[labels != TARGET])
    found = reverse_trigger(
        corner_model(backdoor=True), others, TARGET, IDENTITY, generator=torch.Generator().manual_seed(0)
    )
    assert found.success >= 0.99 and found.mask.shape == (SIZE, SIZE) and found.pattern.shape == (SIZE, SIZE, 3)
    inside = found.mask[CORNER:, CORNER:].sum() / found.mask.sum()
    assert inside > 0.8, f"only {inside:.0%} of the mask lies where the trigger works"
    assert found.norm < 64  # smaller than the corner itself
    corner_pattern = (found.pattern[CORNER:, CORNER:] * found.mask[CORNER:, CORNER:, None]).sum((0, 1))
    assert (corner_pattern / found.mask[CORNER:, CORNER:].sum()).max() < 0.3  # dark, as the trigger must be
    clean = reverse_trigger(
        corner_model(backdoor=False), others, TARGET, IDENTITY, generator=torch.Generator().manual_seed(0)
    )
    assert clean.norm > 3 * found.norm  # without the backdoor only painting magenta over the square works


def test_neural_cleanse_flags_the_target_alone_and_nothing_in_the_control(data):
    images, labels = data
    found = run_baselines(corner_model(backdoor=True), images, labels, IDENTITY, names=["neural_cleanse"])
    result = found["neural_cleanse"]
    assert result.flagged == (TARGET,), result.scores
    assert max(result.scores, key=result.scores.get) == TARGET and result.scores[TARGET] > 2
    assert result.seconds > 0 and "anomaly index" in result.note
    control = run_baselines(corner_model(backdoor=False), images, labels, IDENTITY, names=["neural_cleanse"])
    assert max(control["neural_cleanse"].scores.values()) < result.scores[TARGET]


def test_classes_searched_side_by_side_are_searched_as_alone(data):
    """The batched search keeps each class apart: a class's trigger does not depend on which others share its pass,
    and the backdoored class gets the small corner trigger there too."""
    images, labels = data
    x, model = _tensor(images), corner_model(backdoor=True)
    config = CleanseConfig(group=5)
    together = reverse_triggers(model, x, labels, [0, 1, 2, 3, 4], IDENTITY, config, torch.Generator().manual_seed(0))
    assert sorted(together) == [0, 1, 2, 3, 4] and all(t.target == c for c, t in together.items())
    assert together[TARGET].norm < 64 and together[TARGET].mask[CORNER:, CORNER:].sum() > 0.8 * together[TARGET].norm
    assert min(together[c].norm for c in range(4)) > 3 * together[TARGET].norm
    # in groups of two: other starts and draws, the same outcome
    grouped = reverse_triggers(
        model, x, labels, [0, 1, 2, 3, 4], IDENTITY, CleanseConfig(group=2), torch.Generator().manual_seed(1)
    )
    assert grouped[TARGET].norm < 64 and min(grouped[c].norm for c in range(4)) > 3 * grouped[TARGET].norm
    with pytest.raises(KlugerhansError, match="other than 0"):
        reverse_triggers(model, x[:3], np.zeros(3, np.int64), [0], IDENTITY)


def test_anomaly_index_is_the_paper_formula():
    norms = {0: 100.0, 1: 110.0, 2: 90.0, 3: 105.0, 4: 10.0}
    index = anomaly_index(norms)
    median, mad = 100.0, 1.4826 * 10.0  # deviations 0, 10, 10, 5, 90 -> median 10
    assert index == pytest.approx({c: (median - v) / mad for c, v in norms.items()})
    assert index[4] > 2 > max(index[c] for c in range(4))
    assert anomaly_index({0: 5.0, 1: 5.0, 2: 5.0}) == {0: 0.0, 1: 0.0, 2: 0.0}


def test_bad_settings_are_one_line_errors():
    with pytest.raises(KlugerhansError, match="attack-success"):
        CleanseConfig(attack_success=0.0)
    with pytest.raises(KlugerhansError, match="at least one step"):
        CleanseConfig(steps=0)
    with pytest.raises(KlugerhansError, match="other than 3"):
        reverse_trigger(corner_model(True), torch.zeros(0, 3, SIZE, SIZE), 3, IDENTITY)


def test_a_trigger_that_is_never_found_counts_as_the_whole_image(data):
    images, labels = data
    others = _tensor(images[labels != TARGET][:8])
    # four steps cannot reach 99%: the norm is the whole image, not a small mask that never worked
    found = reverse_trigger(corner_model(True), others, TARGET, IDENTITY, CleanseConfig(steps=4, epoch_steps=2))
    assert found.norm == SIZE * SIZE and found.success < 0.99 and math.isfinite(found.success)
