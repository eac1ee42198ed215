"""predict_files: directories, ordering, top-3 and one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from klugerhans.data.classes import CLASS_NAMES_DE
from klugerhans.errors import ImageError, KlugerhansError
from klugerhans.models.checkpoint import CheckpointMeta, classifier_from_model
from klugerhans.models.predict import predict_files, top_classes
from klugerhans.models.vgg import ModelConfig, create_model


@pytest.fixture
def classifier():
    torch.manual_seed(0)
    config = ModelConfig(width=0.125)
    return classifier_from_model(create_model(config), CheckpointMeta(model=config))


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name in ("b.PNG", "a.ppm", "c.jpg"):
        Image.fromarray(rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)).save(folder / name)
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_predict_directory_and_files(classifier, images):
    results = predict_files(classifier, [images, images / "a.ppm"], batch_size=2, lang="en")
    assert [r["path"].rsplit("/", 1)[1] for r in results] == ["a.ppm", "b.PNG", "c.jpg", "a.ppm"]
    x = torch.stack([classifier.preprocess(Image.open(images / n).convert("RGB")) for n in ("a.ppm", "b.PNG", "c.jpg")])
    probs = classifier.probabilities(x)
    for r, p in zip(results, probs, strict=False):
        assert r["pred"] == int(p.argmax()) and r["prob"] == pytest.approx(float(p.max()), abs=1e-6)
        assert r["name"] == classifier.class_names[r["pred"]]
        top = r["top3"]
        assert len(top) == 3 and top[0]["id"] == r["pred"]
        assert top[0]["prob"] >= top[1]["prob"] >= top[2]["prob"]
        assert {"id", "name", "prob"} == set(top[0])
    assert results[0]["pred"] == results[3]["pred"]


def test_german_names(classifier, images):
    (r,) = predict_files(classifier, [images / "c.jpg"], lang="de")
    assert r["name"] == CLASS_NAMES_DE[r["pred"]]


def test_bad_inputs(classifier, images, tmp_path):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(ImageError, match=r"broken\.png"):
        predict_files(classifier, [tmp_path / "broken.png"])
    with pytest.raises(ImageError, match="no such file"):
        predict_files(classifier, [tmp_path / "missing.png"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ImageError, match="contains no images"):
        predict_files(classifier, [empty])


def test_top_classes_order_ties_and_languages():
    probs = np.zeros(43, np.float32)
    probs[[14, 2, 9]] = [0.5, 0.25, 0.25]  # 2 and 9 tie: the lower id comes first
    assert top_classes(probs) == [
        {"id": 14, "name": "Stop", "prob": 0.5},
        {"id": 2, "name": "Speed limit (50km/h)", "prob": 0.25},
        {"id": 9, "name": "No passing", "prob": 0.25},
    ]
    german = top_classes(torch.from_numpy(probs), k=2, lang="de")
    assert [t["name"] for t in german] == [CLASS_NAMES_DE[14], CLASS_NAMES_DE[2]]
    own = ("cat", "dog", "bird")
    assert [t["name"] for t in top_classes(np.array([0.2, 0.5, 0.3]), k=5, lang="de", names=own)] == [
        "dog",
        "bird",
        "cat",
    ]
    with pytest.raises(KlugerhansError, match="unknown language"):
        top_classes(probs, lang="fr")
    with pytest.raises(KlugerhansError, match="3 class probabilities"):
        top_classes(np.ones(3) / 3)
