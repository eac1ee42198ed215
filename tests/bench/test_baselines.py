"""ART's poison detectors as benchmark baselines (:mod:`klugerhans.bench.baselines`) on a backdoor with a known target.

Five classes of coloured squares on grey noise; the dirty-label model learned a BadNets backdoor (10% of the other
classes' images carry a black 5x5 patch and are relabelled to class 4, so 29% of class 4 is poison, under the 35%
Activation Clustering expects at most), the control the same data without it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from klugerhans.bench.baselines import BASELINES, BaselineResult, run_baselines
from klugerhans.errors import KlugerhansError
from klugerhans.models.preprocess import Normalization, to_tensor
from klugerhans.models.vgg import ModelConfig, create_model

pytest.importorskip("art")

COLOURS = np.array([[220, 40, 40], [40, 200, 40], [40, 40, 220], [220, 220, 40], [200, 40, 200]], dtype=np.int64)
"""Square colour of classes 0..4: red, green, blue, yellow, magenta."""
TARGET = 4
NORM = Normalization()
NAMES = ("activation_clustering", "spectral_signatures", "strip", "neural_cleanse")


def squares(per_class: int, seed: int, poison_share: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images, labels, poisoned): ``poison_share`` of classes 0..3 get a black 5x5 patch and label ``TARGET``."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(COLOURS)), per_class)
    images = rng.integers(100, 121, size=(len(labels), 32, 32, 3))
    poisoned = np.zeros(len(labels), dtype=bool)
    for c in range(TARGET):
        own = np.flatnonzero(labels == c)
        poisoned[rng.choice(own, round(poison_share * len(own)), replace=False)] = True
    lo, hi = 32 // 5, 32 - 32 // 5
    for i, c in enumerate(labels):
        images[i, lo:hi, lo:hi] = COLOURS[c] + rng.integers(-10, 11, size=3)
        if poisoned[i]:
            y, x = rng.integers(lo, hi - 5, size=2)
            images[i, y : y + 5, x : x + 5] = 0
    return np.clip(images, 0, 255).astype(np.uint8), np.where(poisoned, TARGET, labels).astype(np.int64), poisoned


def train_cnn(images: np.ndarray, labels: np.ndarray, epochs: int = 6) -> nn.Module:
    """A small CNN (global max pooling, so a patch anywhere counts), a few seconds of Adam on the CPU."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveMaxPool2d(1), nn.Flatten(),
        nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, len(COLOURS)),
    )  # fmt: skip
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x, y = to_tensor(images, NORM), torch.from_numpy(labels)
    gen = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), 32):
            batch = order[i : i + 32]
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
            opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def backdoor() -> tuple[nn.Module, np.ndarray, np.ndarray]:
    images, labels, _ = squares(per_class=60, seed=0, poison_share=0.1)
    model = train_cnn(images, labels)
    test, _, test_poisoned = squares(per_class=20, seed=1, poison_share=1.0)
    with torch.no_grad():
        hits = model(to_tensor(test[test_poisoned], NORM)).argmax(1)
    assert (hits == TARGET).float().mean() > 0.9, "the backdoor was not learned: the test case is void"
    return model, images, labels


@pytest.fixture(scope="module")
def control() -> tuple[nn.Module, np.ndarray, np.ndarray]:
    images, labels, _ = squares(per_class=60, seed=0)
    return train_cnn(images, labels), images, labels


@pytest.fixture(scope="module")
def backdoor_results(backdoor: tuple[nn.Module, np.ndarray, np.ndarray]) -> dict[str, BaselineResult]:
    return run_baselines(*backdoor, NORM, seed=0)


def check_shape(results: dict[str, BaselineResult], num_classes: int = len(COLOURS)) -> None:
    assert tuple(results) == NAMES
    for name, result in results.items():
        assert result.name == name and result.note and result.seconds >= 0
        assert sorted(result.scores) == list(range(num_classes))
        assert all(math.isfinite(s) for s in result.scores.values()), (name, result.scores)
        assert set(result.flagged) <= set(range(num_classes))


def top(result: BaselineResult) -> int:
    return max(result.scores, key=lambda c: result.scores[c])


def test_every_baseline_scores_every_class(backdoor_results: dict[str, BaselineResult]) -> None:
    check_shape(backdoor_results)
    assert set(BASELINES) == set(NAMES)
    assert "penultimate" in backdoor_results["activation_clustering"].note
    assert backdoor_results["spectral_signatures"].flagged == ()  # ART's decision never singles out a class


def test_dirty_label_backdoor_target_ranks_first(backdoor_results: dict[str, BaselineResult]) -> None:
    ranked = {name: top(backdoor_results[name]) for name in ("activation_clustering", "spectral_signatures")}
    assert TARGET in ranked.values(), {n: r.scores for n, r in backdoor_results.items()}
    assert TARGET in backdoor_results["activation_clustering"].flagged  # a small, well-separated cluster


def test_neural_cleanse_finds_the_dirty_label_target(backdoor_results: dict[str, BaselineResult]) -> None:
    result = backdoor_results["neural_cleanse"]
    assert top(result) == TARGET and TARGET in result.flagged, result.scores


def test_backdoored_model_scores_above_control(
    backdoor_results: dict[str, BaselineResult], control: tuple[nn.Module, np.ndarray, np.ndarray]
) -> None:
    # the benchmark ranks models by their highest class score (model-level AUROC)
    clean = run_baselines(*control, NORM, names=["activation_clustering", "spectral_signatures"])
    above = [max(backdoor_results[n].scores.values()) > max(clean[n].scores.values()) for n in clean]
    assert any(above), ({n: r.scores for n, r in backdoor_results.items()}, {n: r.scores for n, r in clean.items()})


def test_same_seed_same_numbers_and_global_rng_untouched(
    backdoor: tuple[nn.Module, np.ndarray, np.ndarray], backdoor_results: dict[str, BaselineResult]
) -> None:
    np.random.seed(123)
    expected = np.random.random()
    np.random.seed(123)
    again = run_baselines(*backdoor, NORM, seed=0)
    assert np.random.random() == expected
    for name, result in backdoor_results.items():
        assert again[name].scores == result.scores and again[name].flagged == result.flagged


@pytest.mark.parametrize("family", ["vgg", "resnet18"])
def test_runs_on_project_and_torchvision_architectures(family: str) -> None:
    torch.manual_seed(0)
    if family == "vgg":
        model = create_model(ModelConfig(width=0.125, num_classes=5))
    else:
        model = create_model(family="torchvision", arch="resnet18", num_classes=5, input_size=32)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    images, labels, _ = squares(per_class=12, seed=2)
    results = run_baselines(model, images, labels, NORM, max_per_class=12, settings={"neural_cleanse": {"steps": 10}})
    check_shape(results)
    assert "penultimate" in results["spectral_signatures"].note
    assert model.training and all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_small_classes_are_not_scored(backdoor: tuple[nn.Module, np.ndarray, np.ndarray]) -> None:
    model, images, labels = backdoor
    keep = (labels != 0) | (np.cumsum(labels == 0) <= 5)  # class 0 keeps 5 images
    results = run_baselines(model, images[keep], labels[keep], NORM, names=["spectral_signatures"])
    scores = results["spectral_signatures"].scores
    assert math.isnan(scores[0]) and all(math.isfinite(scores[c]) for c in range(1, 5))


def test_unknown_name_is_a_one_line_error_with_a_suggestion(backdoor: tuple[nn.Module, np.ndarray, np.ndarray]) -> None:
    with pytest.raises(KlugerhansError) as err:
        run_baselines(*backdoor, NORM, names=["spectral_signature"])
    assert "\n" not in str(err.value) and "did you mean spectral_signatures" in str(err.value)


def test_bad_inputs_are_one_line_errors(backdoor: tuple[nn.Module, np.ndarray, np.ndarray]) -> None:
    model, images, labels = backdoor
    with pytest.raises(KlugerhansError, match="uint8"):
        run_baselines(model, images.astype(np.float32), labels, NORM)
    with pytest.raises(KlugerhansError, match="max_per_class"):
        run_baselines(model, images, labels, NORM, max_per_class=3)
    with pytest.raises(KlugerhansError, match="model's classes"):
        run_baselines(model, images, labels + 1, NORM)
