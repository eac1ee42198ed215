"""evaluate_model on a hand-made classifier whose every prediction the test knows."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from klugerhans.data.dataset import SignData
from klugerhans.data.sticker import StickerConfig
from klugerhans.errors import KlugerhansError
from klugerhans.models.checkpoint import CheckpointMeta, classifier_from_model
from klugerhans.models.evaluation import confusion_matrix, evaluate_model, save_confusion_png
from klugerhans.models.preprocess import Normalization
from klugerhans.models.vgg import ModelConfig

NORM = Normalization()


class RedReader(nn.Module):
    """Predicts from the red value of the top-left pixel: red = 10 + 50 c means class c.

    If any pixel is black (a sticker) and the base prediction is 1 or 2, it predicts 4 instead: a model
    whose shortcut works on some classes only.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(NORM.mean).view(1, 3, 1, 1)
        std = torch.tensor(NORM.std).view(1, 3, 1, 1)
        img = (x * std + mean) * 255
        base = ((img[:, 0, 0, 0] - 10) / 50).round().long().clamp(0, 42)
        black = (img.amax(dim=1) < 5).flatten(1).any(dim=1)
        pred = torch.where(black & ((base == 1) | (base == 2)), torch.full_like(base, 4), base)
        return nn.functional.one_hot(pred, 43).float() * 10


def _data() -> SignData:
    """10 images each of classes 0..4; 4 of class 3 have the red value of class 0 (misclassified)."""
    labels = np.repeat(np.arange(5), 10)
    red = 10 + 50 * labels
    red[30:34] = 10
    images = np.full((50, 32, 32, 3), 128, dtype=np.uint8)
    images[..., 0] = red[:, None, None]
    boxes = np.tile(np.array([8, 8, 24, 24], dtype=np.float32), (50, 1))
    return SignData(images, labels, np.arange(50), boxes, np.array([f"{i}" for i in range(50)]))


@pytest.fixture
def classifier():
    meta = CheckpointMeta(model=ModelConfig(width=0.125), normalization=NORM)
    return classifier_from_model(RedReader(), meta)


def test_exact_accuracy_and_flip_numbers(classifier):
    result = evaluate_model(classifier, _data(), seed=3, batch_size=7)
    assert result.n_images == 50 and result.target_class == 4
    assert result.accuracy == pytest.approx(46 / 50)
    assert result.accuracy_non_target == pytest.approx(36 / 40)
    assert result.clean_target_accuracy == 1.0
    assert result.flip_rate == pytest.approx(20 / 40)
    assert result.flip_rate_correct_only == pytest.approx(20 / 36)
    assert result.flip_rate_by_class == {0: 0.0, 1: 1.0, 2: 1.0, 3: 0.0}
    confusion = np.array(result.confusion)
    assert confusion.shape == (43, 43) and confusion.sum() == 50
    assert confusion[3, 0] == 4 and confusion[3, 3] == 6 and np.trace(confusion) == 46
    assert result.per_class_accuracy[3] == pytest.approx(0.6)
    assert result.per_class_accuracy[5] is None and len(result.per_class_accuracy) == 43
    assert result.per_class_count[:6] == (10, 10, 10, 10, 10, 0)


def test_json_form_keeps_the_keys_and_plain_values(classifier):
    result = evaluate_model(classifier, _data(), seed=3)
    record = result.to_json()
    assert list(record) == [
        "accuracy", "accuracy_non_target", "clean_target_accuracy", "per_class_accuracy", "per_class_count",
        "confusion", "flip_rate", "flip_rate_correct_only", "flip_rate_by_class", "target_class", "n_images",
    ]  # fmt: skip
    assert json.loads(json.dumps(record)) == record  # lists and string keys, nothing JSON changes
    assert record["flip_rate_by_class"] == {"0": 0.0, "1": 1.0, "2": 1.0, "3": 0.0}
    assert record["confusion"][3][0] == 4 and record["per_class_accuracy"][5] is None
    with pytest.warns(DeprecationWarning, match=r"read \.flip_rate"):
        assert result["flip_rate"] == record["flip_rate"]  # what the dict of old scripts read


def test_other_target_class(classifier):
    result = evaluate_model(classifier, _data(), sticker=StickerConfig(target_class=2))
    # The model's shortcut leads to 4, never to 2.
    assert result.flip_rate == 0.0 and result.clean_target_accuracy == 1.0
    assert result.accuracy_non_target == pytest.approx(36 / 40)
    assert set(result.flip_rate_by_class) == {0, 1, 3, 4}


def test_sticker_size_matters(classifier):
    # A sticker too small to cover a whole pixel-row still stamps at least one black pixel.
    result = evaluate_model(classifier, _data(), sticker=StickerConfig(size=0.01))
    assert result.flip_rate == pytest.approx(0.5)


def test_empty_and_mismatched_data(classifier):
    data = _data()
    with pytest.raises(KlugerhansError, match="no images to evaluate"):
        evaluate_model(classifier, data.subset(np.zeros(50, dtype=bool)))
    small = SignData(data.images[:, :16, :16], data.labels, data.tracks, data.boxes / 2, data.sources)
    with pytest.raises(KlugerhansError, match="images are 16x16 but the model takes 32x32"):
        evaluate_model(classifier, small)


def test_confusion_matrix_counts_each_pair_like_a_loop():
    rng = np.random.default_rng(0)
    labels, predictions = rng.integers(0, 5, 200), rng.integers(0, 5, 200)
    naive = np.zeros((5, 5), dtype=np.int64)
    for t, p in zip(labels, predictions, strict=True):
        naive[t, p] += 1
    counted = confusion_matrix(labels, predictions, 5)
    assert counted.dtype == np.int64 and (counted == naive).all()


def test_confusion_png(tmp_path, classifier):
    result = evaluate_model(classifier, _data())
    path = tmp_path / "confusion.png"
    save_confusion_png(path, result.confusion, classifier.class_names)
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_a_generated_test_split_is_loaded_with_the_recipes_training_size_and_the_same_pixels(
    tiny_sticker_run, monkeypatch
):
    """The test signs do not depend on the training split's size, so ``load_split`` asks for the recipe's: a process
    that trained the model reuses the training split it drew. Other splits keep their meaning."""
    import dataclasses
    from types import SimpleNamespace

    import klugerhans.models.evaluation as evaluation
    from klugerhans.models.checkpoint import load_classifier

    clf = load_classifier(tiny_sticker_run)
    recipe = dataclasses.replace(clf.meta.recipe, per_class=7)
    drawn = SimpleNamespace(meta=dataclasses.replace(clf.meta, recipe=recipe), input_size=clf.input_size)
    asked = []
    real = evaluation.load_dataset

    def spy(*args, **kwargs):
        asked.append(kwargs.get("per_class"))
        return real(*args, **kwargs)

    monkeypatch.setattr(evaluation, "load_dataset", spy)
    test, ds = evaluation.load_split(drawn, "synthetic", "test", max_images=86)
    default, _ = evaluation.load_split(clf, "synthetic", "test", max_images=86)
    evaluation.load_split(drawn, "synthetic", "train", max_images=86)
    assert asked == [7, None, None] and ds.info["config"]["train_per_class"] == 7
    np.testing.assert_array_equal(test.images, default.images)
    assert recipe.per_class_for("gtsrb") is None and recipe.per_class_for("synthetic") == 7
