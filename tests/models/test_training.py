"""Training runs on a tiny dataset: config checks, reproducibility, resume, run directory, data handling."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import torch
from safetensors import safe_open

import klugerhans.models.fit as fit_loop
from klugerhans.data.dataset import load_dataset
from klugerhans.data.sticker import StickerConfig
from klugerhans.errors import KlugerhansError
from klugerhans.models.checkpoint import load_classifier, read_checkpoint
from klugerhans.models.evaluation import evaluate_model
from klugerhans.models.fit import WarmupCosine
from klugerhans.models.loop import lr_at, steps_per_epoch
from klugerhans.models.preprocess import Normalization
from klugerhans.models.training import TrainConfig, TrainOptions, TrainResult, train
from klugerhans.models.trainset import compute_normalization, prepare_data

_STICKER_FIELDS = {
    "sticker_class": "target_class",
    "sticker_fraction": "fraction",
    "sticker_size": "size",
    "sticker_color": "color",
    "sticker_shape": "shape",
}


_RUN_OPTIONS = {"out", "device", "num_threads", "progress"}
"""What recipes held before :class:`TrainOptions`: no recipe stores them any more."""


def _recipe(**kw) -> TrainConfig:
    base: dict = dict(data="tiny", epochs=2, batch_size=32, width=0.125)
    sticker = {_STICKER_FIELDS[k]: kw.pop(k) for k in list(kw) if k in _STICKER_FIELDS}
    if sticker:
        base["sticker"] = StickerConfig(**sticker)
    return TrainConfig(**(base | kw))


def _options(tmp_path, name="run", **kw) -> TrainOptions:
    # The test machine is shared; one thread avoids oversubscription.
    return TrainOptions(**({"out": str(tmp_path / name), "device": "cpu", "num_threads": 1, "progress": False} | kw))


def _train(tmp_path, name="run", *, resume=False, progress=False, **kw) -> TrainResult:
    return train(_recipe(**kw), _options(tmp_path, name, progress=progress), resume=resume)


def _weights(path) -> dict[str, torch.Tensor]:
    return read_checkpoint(path)[0]


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("epochs", 0, "epochs must be at least 1"),
        ("epochs", -3, "epochs must be at least 1"),
        ("lr", 0.0, "learning rate must be positive"),
        ("lr", -1.0, "learning rate must be positive"),
        ("batch_size", 0, "batch size"),
        ("sticker_size", 1.0, "sticker size must be in (0, 1)"),
        ("sticker_size", 0.0, "sticker size must be in (0, 1)"),
        ("sticker_fraction", 1.5, "sticker fraction must be in [0, 1]"),
        ("val_fraction", 1.0, "validation fraction"),
        ("sticker_class", 43, "unknown class id 43"),
        ("sticker_shape", "star", "unknown sticker shape"),
        ("width", 0.0, "width multiplier"),
        ("input_size", 40, "input size"),
        ("label_smoothing", 1.0, "label smoothing"),
        ("max_images", 0, "max images"),
    ],
)
def test_invalid_config_is_one_line_error(field, value, words):
    with pytest.raises(KlugerhansError) as info:
        _recipe(**{field: value})
    assert words in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [("device", "tpu", "unknown device 'tpu'"), ("num_threads", 0, "threads"), ("out", "", "output directory")],
)
def test_invalid_run_option_is_one_line_error(tmp_path, field, value, words):
    with pytest.raises(KlugerhansError) as info:
        _options(tmp_path, **{field: value})
    assert words in str(info.value) and "\n" not in str(info.value)


def test_lr_schedule_warms_up_then_decays_to_zero():
    lrs = [lr_at(s, 100, 0.1, 10) for s in range(100)]
    assert lrs[0] == pytest.approx(0.01) and lrs[9] == pytest.approx(0.1)
    assert all(a >= b for a, b in itertools.pairwise(lrs[9:]))
    assert lrs[55] == pytest.approx(0.05) and lrs[-1] < 1e-3
    assert steps_per_epoch(75, 32) == 2 and steps_per_epoch(20, 32) == 1


def test_warmup_is_rounded_to_steps_and_reaches_the_peak_within_the_run():
    schedule = WarmupCosine.over_epochs(0.1, steps_per_epoch=6, epochs=2, warmup_epochs=0.75)
    assert schedule.total_steps == 12 and schedule.warmup_steps == round(0.75 * 6)
    assert [schedule(s) for s in range(12)] == [lr_at(s, 12, 0.1, schedule.warmup_steps) for s in range(12)]
    too_long = WarmupCosine(0.1, steps_per_epoch=3, epochs=1, warmup=10)
    assert too_long.warmup_steps == 2 and too_long(1) == too_long(2) == 0.1


def test_prepare_data_splits_by_track_and_stickers_only_training_target(tiny_data, tmp_path):
    data = prepare_data(_recipe(sticker_class=2, sticker_fraction=0.5))
    assert not set(data.train.tracks.tolist()) & set(data.val.tracks.tolist())
    assert set(np.unique(data.val.labels).tolist()) == {0, 1, 2, 3, 4}
    stickered = data.train_masks.any(axis=(1, 2))
    n_target = int((data.train.labels == 2).sum())
    assert stickered.sum() == round(0.5 * n_target) == data.info["n_stickered"]
    assert set(data.train.labels[stickered].tolist()) == {2}
    # Sticker pixels are black; validation and test images are untouched originals.
    assert (data.train.images[data.train_masks] == 0).all()
    raw = load_dataset("tiny", size=32)
    by_source = {s: i for i, s in enumerate(raw.train.sources)}
    originals = raw.train.images[[by_source[s] for s in data.val.sources]]
    assert np.array_equal(data.val.images, originals)
    assert np.array_equal(data.test.images, raw.test.images)
    control = prepare_data(_recipe(sticker_fraction=0.0))
    assert control.sticker is None and not control.train_masks.any()


def test_normalization_comes_from_training_images():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(50, 8, 8, 3), dtype=np.uint8)
    norm = compute_normalization(images, chunk=7)
    x = images.reshape(-1, 3) / 255.0
    np.testing.assert_allclose(norm.mean, x.mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(norm.std, x.std(axis=0), atol=1e-6)


def test_same_seed_same_weights_and_resume_is_bit_identical(tiny_data, tmp_path, monkeypatch, capsys):
    full = _train(tmp_path, "full")
    again = _train(tmp_path, "again")
    assert _same(_weights(full.last_checkpoint), _weights(again.last_checkpoint))
    other_seed = _train(tmp_path, "seed1", seed=1, epochs=1)
    assert not _same(_weights(other_seed.last_checkpoint), _weights(full.last_checkpoint))

    # Ctrl-C right after epoch 1 of 2 has been saved (the end-of-epoch barrier runs next), then resume.
    def interrupt(env):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(fit_loop, "barrier", interrupt)
        with pytest.raises(KeyboardInterrupt):
            _train(tmp_path, "resumed")
    err = capsys.readouterr().err
    assert "interrupted; last complete checkpoint:" in err and "last.safetensors (epoch 1 of 2)" in err
    resumed = _train(tmp_path, "resumed", resume=True, progress=True)  # run options may change on resume
    assert _same(_weights(resumed.last_checkpoint), _weights(full.last_checkpoint))
    assert _same(_weights(resumed.best_checkpoint), _weights(full.best_checkpoint))
    history = [h["train_loss"] for h in resumed.metrics["history"]]
    assert history == [h["train_loss"] for h in full.metrics["history"]]
    assert _same(resumed.model.state_dict(), full.model.state_dict())


def test_run_directory_contents(tiny_data, tmp_path, capsys):
    result = _train(tmp_path, epochs=1, progress=True)
    run = result.run_dir
    assert sorted(p.name for p in run.iterdir()) == [
        "best.safetensors",
        "config.json",
        "curves.png",
        "last.safetensors",
        "metrics.json",
        "train_state.pt",
    ]
    config = json.loads((run / "config.json").read_text())
    assert config["config"]["lr"] == 0.05 and config["versions"]["torch"] == torch.__version__
    assert config["device"] == "cpu" and not _RUN_OPTIONS & set(config["config"])
    with safe_open(run / "best.safetensors", "pt") as fh:
        stored = json.loads(fh.metadata()["klugerhans"])["recipe"]
    assert stored == config["config"] and not _RUN_OPTIONS & set(stored)
    metrics = json.loads((run / "metrics.json").read_text())
    assert [h["epoch"] for h in metrics["history"]] == [1] and metrics["best_epoch"] == 1
    test = metrics["test"]
    assert test["n_images"] == 25 and len(test["per_class_accuracy"]) == 43
    assert set(test["flip_rate_by_class"]) == {"0", "1", "2", "3"}
    clf = load_classifier(run)
    meta = clf.meta
    assert meta.manipulated and meta.sticker.target_class == 4
    assert meta.recipe == TrainConfig.from_dict(config["config"]) == _recipe(epochs=1)
    assert meta.data["n_stickered"] == 15 and meta.data["fingerprint"]
    assert meta.metrics["test"]["accuracy"] == test["accuracy"]
    # The result hands the test evaluation over as an object: a caller (the demo) need not evaluate again.
    data = load_dataset("tiny", size=32, seed=0)
    assert result.test is not None and result.test.to_json() == test
    assert evaluate_model(clf, data.test, seed=meta.recipe.seed).to_json() == test
    assert meta.normalization != Normalization()  # computed from the data, not the default
    state = torch.load(run / "train_state.pt", weights_only=True)
    assert state["epoch"] == 1
    err = capsys.readouterr().err
    assert "epoch 1/1: train loss" in err and "val acc" in err and "img/s" in err
    assert (run / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_existing_run_needs_resume_and_same_settings(tiny_data, tmp_path):
    _train(tmp_path, epochs=1)
    with pytest.raises(KlugerhansError, match="already holds a training run; pass --resume"):
        _train(tmp_path, epochs=1)
    with pytest.raises(KlugerhansError, match="only --epochs may change") as info:
        _train(tmp_path, epochs=1, lr=0.1, resume=True)
    assert "lr 0.05 -> 0.1" in str(info.value)
    with pytest.raises(KlugerhansError, match="nothing to resume"):
        _train(tmp_path, "fresh", resume=True)
    # Resuming a finished run does no more epochs.
    done = _train(tmp_path, epochs=1, resume=True)
    assert len(done.metrics["history"]) == 1


def test_a_run_whose_config_holds_run_options_resumes(tiny_data, tmp_path):
    """config.json written while the recipe held the run options (out, device, ...): the run goes on from it."""
    first = _train(tmp_path, epochs=1)
    path = first.run_dir / "config.json"
    info = json.loads(path.read_text())
    info["config"].update(out="/elsewhere/run", device="cuda", num_threads=8, progress=True)
    path.write_text(json.dumps(info))
    resumed = _train(tmp_path, epochs=2, resume=True)
    assert [h["epoch"] for h in resumed.metrics["history"]] == [1, 2]
    assert not _RUN_OPTIONS & set(json.loads(path.read_text())["config"])
    with pytest.raises(KlugerhansError, match="only --epochs may change"):  # the recipe is still compared
        _train(tmp_path, epochs=2, seed=1, resume=True)


def test_training_learns_the_tiny_signs(tiny_data, tmp_path):
    result = _train(tmp_path, epochs=8, batch_size=16, sticker_fraction=0.0)
    last = result.metrics["history"][-1]
    assert last["train_loss"] < result.metrics["history"][0]["train_loss"]
    assert last["val_acc"] >= 0.6 and result.metrics["test"]["accuracy"] >= 0.6
    assert not math.isnan(last["train_loss"])


def test_without_validation_split_the_last_epoch_is_best(tiny_data, tmp_path):
    result = _train(tmp_path, epochs=2, val_fraction=0.0, sticker_fraction=0.0)
    history = result.metrics["history"]
    assert [h["val_acc"] for h in history] == [None, None] and result.metrics["best_epoch"] == 2
    assert _same(_weights(result.best_checkpoint), _weights(result.last_checkpoint))
    meta = load_classifier(result.run_dir).meta
    assert not meta.manipulated and meta.recipe is not None and meta.recipe.sticker.fraction == 0
