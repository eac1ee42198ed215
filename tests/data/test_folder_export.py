"""Writing splits as an ImageFolder tree: the round trip is exact, the training data as a run saw it, errors."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from klugerhans.cli import main
from klugerhans.data.dataset import SignData
from klugerhans.data.folder import class_folder, export_image_folder, load_folder
from klugerhans.errors import DataError


def _data(n: int = 12, size: int = 16, classes: int = 3, seed: int = 0) -> SignData:
    rng = np.random.default_rng(seed)
    return SignData(
        images=rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8),
        labels=np.arange(n, dtype=np.int64) % classes,
        tracks=np.arange(n, dtype=np.int64),
        boxes=np.tile(np.array([0, 0, size, size], np.float32), (n, 1)),
        sources=np.asarray([f"x/{i}" for i in range(n)]),
    )


def _sorted(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.lexsort((images.reshape(len(images), -1).sum(1), labels))
    return images[order], labels[order]


def test_round_trip_gives_the_same_pixels_and_labels(tmp_path):
    train, test = _data(), _data(6, seed=1)
    written = export_image_folder({"train": train, "test": test}, tmp_path / "tree", ["a", "b", "c"])
    assert written == {"train": 12, "test": 6}
    ds = load_folder(data_dir=tmp_path / "tree", size=16, progress=False)
    assert list(ds.info["class_names"]) == ["00000", "00001", "00002"]
    for before, after in ((train, ds.train), (test, ds.test)):
        a, la = _sorted(before.images, before.labels)
        b, lb = _sorted(after.images, after.labels)
        np.testing.assert_array_equal(la, lb)
        np.testing.assert_array_equal(a, b)
    assert (tmp_path / "tree" / "classes.tsv").read_text().splitlines() == ["00000\ta", "00001\tb", "00002\tc"]


def test_class_folders_sort_in_id_order():
    names = [class_folder(c, 120) for c in range(120)]
    assert names == sorted(names) and names[7] == "00007"
    assert class_folder(3, 10**6) == "000003"


@pytest.mark.parametrize(
    ("splits", "words"),
    [
        ({"test": _data()}, "needs a train split"),
        ({"train": _data(), "holdout": _data()}, "cannot export split(s) ['holdout']"),
        ({"train": _data(classes=2), "test": _data(classes=3)}, "classes [2] have images in test but none in train"),
    ],
)
def test_bad_exports_are_refused_before_anything_is_written(tmp_path, splits, words):
    with pytest.raises(DataError, match=re.escape(words)):
        export_image_folder(splits, tmp_path / "tree", ["a", "b", "c"])
    assert not (tmp_path / "tree").exists()


def test_a_non_empty_target_is_refused(tmp_path):
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match="exists and is not empty"):
        export_image_folder({"train": _data()}, tmp_path / "tree", ["a", "b", "c"])
    assert (tmp_path / "tree" / "keep.txt").read_text() == "mine"


@pytest.fixture(scope="module")
def stickered_run(tiny_sticker_run):
    return tiny_sticker_run


def test_as_trained_exports_exactly_what_training_saw(stickered_run, tmp_path, capsys):
    from klugerhans.models.checkpoint import load_classifier
    from klugerhans.models.trainset import prepare_data

    out = tmp_path / "as-trained"
    assert main(["data", "--export", str(out), "--as-trained", str(stickered_run), "--no-progress"]) == 0
    prepared = prepare_data(load_classifier(stickered_run).meta.recipe)
    assert f"({prepared.info['n_stickered']} stickered training images)" in capsys.readouterr().out
    assert prepared.info["n_stickered"] > 0
    ds = load_folder(data_dir=out, size=32, progress=False)
    assert ds.info["layout"] == "train/val/test"
    for before, after in ((prepared.train, ds.train), (prepared.val, ds.val), (prepared.test, ds.test)):
        assert after is not None
        a, la = _sorted(before.images, before.labels)
        b, lb = _sorted(after.images, after.labels)
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(la, lb)


def test_the_audit_of_a_folder_never_glues_the_checkpoints_stickers(stickered_run, tmp_path):
    out = tmp_path / "as-trained"
    assert main(["data", "--export", str(out), "--as-trained", str(stickered_run), "--no-progress"]) == 0
    common = ["audit", "--checkpoint", str(stickered_run), "--split", "train", "--methods", "", "--no-progress"]
    folder = [*common, "--data", "folder", "--data-dir", str(out), "--max-images", "200", "--out", str(tmp_path / "a")]
    assert main([*folder, "--placement", "random"]) == 0
    info = json.loads((tmp_path / "a" / "audit.json").read_text())
    assert info["data"]["artefacts_reproduced"] is False and info["data"]["name"] == "folder"
    assert info["discovery"]["placement"] == "random" and info["config"]["placement"] == "random"
    given = [*common, "--data", "synthetic", "--as-given", "--max-images", "200", "--out", str(tmp_path / "b")]
    assert main(given) == 0
    assert json.loads((tmp_path / "b" / "audit.json").read_text())["data"]["artefacts_reproduced"] is False
    glued = [*common, "--data", "synthetic", "--max-images", "200", "--out", str(tmp_path / "c")]
    assert main(glued) == 0
    assert json.loads((tmp_path / "c" / "audit.json").read_text())["data"]["artefacts_reproduced"] is True


def test_export_errors_are_one_line(stickered_run, tmp_path, capsys):
    assert main(["data", "--as-trained", str(stickered_run)]) != 0
    err = capsys.readouterr().err.strip()
    assert "give --export DIR too" in err and len(err.splitlines()) == 1
