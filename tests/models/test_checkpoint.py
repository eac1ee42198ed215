"""Checkpoint round trips and every way a model file can be wrong."""

from __future__ import annotations

import json
import os
import pickle
import struct
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

import klugerhans.models.checkpoint as checkpoint_module
from klugerhans.data.sticker import StickerConfig
from klugerhans.errors import CheckpointError
from klugerhans.models.checkpoint import (
    METADATA_KEY,
    CheckpointMeta,
    load_classifier,
    load_model,
    read_checkpoint,
    save_checkpoint,
)
from klugerhans.models.preprocess import Normalization
from klugerhans.models.recipe import TrainConfig
from klugerhans.models.vgg import ModelConfig, create_model

TINY = ModelConfig(width=0.125)


def _meta(config: ModelConfig = TINY, **kw) -> CheckpointMeta:
    return CheckpointMeta(
        model=config,
        normalization=Normalization((0.1, 0.2, 0.3), (0.4, 0.5, 0.6)),
        recipe=TrainConfig(data="tiny", lr=0.07, sticker=StickerConfig(size=0.2, color=(1, 2, 3))),
        data={"name": "tiny", "n_train": 3},
        metrics={"val_acc": 0.5, "missing": float("nan")},
        **kw,
    )


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(0)
    model = create_model(TINY)
    # Non-trivial BatchNorm buffers, so the round trip checks them too.
    model.features[1].running_mean.uniform_()
    return save_checkpoint(tmp_path / "m.safetensors", model, _meta()), model


def test_meta_json_round_trip():
    meta = _meta()
    back = CheckpointMeta.from_json(meta.to_json())
    assert back.model == meta.model and back.normalization == meta.normalization
    assert back.class_names == meta.class_names and back.recipe == meta.recipe and back.sticker.color == (1, 2, 3)
    assert back.metrics == {"val_acc": 0.5, "missing": None}
    assert back.created == meta.created and back.klugerhans_version == meta.klugerhans_version


def test_round_trip_weights_and_meta(saved):
    path, model = saved
    state, meta = read_checkpoint(path)
    ref = model.state_dict()
    assert state.keys() == ref.keys()
    assert all(torch.equal(state[k], ref[k]) for k in ref)
    assert meta.model == TINY and meta.data["name"] == "tiny"
    clf = load_classifier(path)
    x = torch.randn(5, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        expected = torch.softmax(model(x), dim=1)
    assert not clf.model.training and clf.input_size == 32
    torch.testing.assert_close(clf.probabilities(x, batch_size=2), expected)
    assert clf.preprocess(Image.new("RGB", (50, 40))).shape == (3, 32, 32)


def test_fp16_release_and_ddp_prefix(tmp_path, saved):
    _, model = saved
    wrapped = torch.nn.Module()
    wrapped.module = model  # what DistributedDataParallel's state_dict looks like
    path = save_checkpoint(tmp_path / "half.safetensors", wrapped, _meta(), dtype=torch.float16)
    state, _ = read_checkpoint(path)
    assert "features.0.weight" in state and state["features.0.weight"].dtype == torch.float16
    assert state["features.1.num_batches_tracked"].dtype == torch.int64
    assert path.stat().st_size < 0.6 * (tmp_path / "m.safetensors").stat().st_size
    clf = load_classifier(path)
    assert next(clf.model.parameters()).dtype == torch.float32
    torch.testing.assert_close(clf.model.features[0].weight, model.features[0].weight, atol=1e-3, rtol=1e-3)


def test_run_directory_prefers_best(tmp_path, saved):
    _, model = saved
    run = tmp_path / "run"
    run.mkdir()
    save_checkpoint(run / "last.safetensors", model, _meta())
    assert load_classifier(run).meta.model == TINY
    other = create_model(ModelConfig(width=0.25))
    save_checkpoint(run / "best.safetensors", other, _meta(ModelConfig(width=0.25)))
    m, pre = load_model(run)
    assert m.config.width == 0.25 and callable(pre)
    import klugerhans

    assert klugerhans.load_model is load_model


def _error(path) -> str:
    with pytest.raises(CheckpointError) as info:
        load_classifier(path)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_missing_file_directory_and_released_name(tmp_path, monkeypatch):
    assert "no such checkpoint" in _error(tmp_path / "nope.safetensors")
    assert "has no best.safetensors or last.safetensors" in _error(tmp_path)
    # An install without released weights (the package folder holds none): a one-line hint, not a traceback.
    monkeypatch.setattr(checkpoint_module.resources, "files", lambda _pkg: tmp_path)
    msg = _error("manipulated")
    assert msg.startswith("no released weights 'manipulated' in this install") and "--checkpoint RUN_DIR" in msg


def test_released_weights_load_when_shipped():
    from klugerhans.models.checkpoint import RELEASED_WEIGHTS, load_classifier

    for name in RELEASED_WEIGHTS:
        try:
            clf = load_classifier(name)
        except CheckpointError:
            continue  # not shipped in this install
        assert clf.meta.model.num_classes == 43 and not clf.model.training
        assert clf.meta.metrics["release"]["test"]["accuracy"] > 0.9


def test_malicious_pickle_is_never_unpickled(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    payload = pickle.dumps(Evil())
    for name in ("evil.safetensors", "evil.pt"):
        (tmp_path / name).write_bytes(payload)
        assert "not a safetensors file" in _error(tmp_path / name)
    # A torch.save zip archive is refused the same way.
    torch.save({"x": torch.zeros(1), "evil": Evil()}, tmp_path / "zip.pt")
    marker.unlink(missing_ok=True)  # torch.save pickled, not unpickled; start clean
    assert "not a safetensors file" in _error(tmp_path / "zip.pt")
    assert not marker.exists()


def test_truncated_and_tiny_files(tmp_path, saved):
    path, _ = saved
    data = path.read_bytes()
    for keep, expected in ((len(data) - 100, "truncated"), (20, "truncated"), (3, "not a safetensors file")):
        cut = tmp_path / f"cut{keep}.safetensors"
        cut.write_bytes(data[:keep])
        assert expected in _error(cut)
    (tmp_path / "empty.safetensors").write_bytes(b"")
    assert "not a safetensors file" in _error(tmp_path / "empty.safetensors")


def _rewrite_header(src: Path, dst: Path, edit) -> Path:
    """Copy a safetensors file with its JSON header changed by ``edit`` (tensor data kept)."""
    data = src.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8 : 8 + n])
    edit(header)
    raw = json.dumps(header).encode()
    dst.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + n :])
    return dst


def test_missing_and_invalid_metadata(tmp_path, saved):
    path, _ = saved
    no_meta = _rewrite_header(path, tmp_path / "a.safetensors", lambda h: h.pop("__metadata__"))
    assert "without klugerhans metadata" in _error(no_meta)

    def bad_json(h):
        h["__metadata__"][METADATA_KEY] = "{not json"

    assert "not valid JSON" in _error(_rewrite_header(path, tmp_path / "b.safetensors", bad_json))

    def bad_arch(h):
        meta = json.loads(h["__metadata__"][METADATA_KEY])
        meta["model"]["arch"] = "resnet9000"
        h["__metadata__"][METADATA_KEY] = json.dumps(meta)

    assert "unknown architecture" in _error(_rewrite_header(path, tmp_path / "c.safetensors", bad_arch))

    def future(h):
        meta = json.loads(h["__metadata__"][METADATA_KEY])
        meta["format_version"] = 99
        h["__metadata__"][METADATA_KEY] = json.dumps(meta)

    assert "newer klugerhans" in _error(_rewrite_header(path, tmp_path / "d.safetensors", future))


def test_weights_that_do_not_match_the_metadata(tmp_path):
    other_classes = create_model(ModelConfig(width=0.125, num_classes=10))
    path = save_checkpoint(tmp_path / "x.safetensors", other_classes, _meta())
    msg = _error(path)
    assert "classifier.3.weight" in msg and "(43, 64)" in msg
    plain = create_model(ModelConfig(arch="vgg11", width=0.125))
    msg = _error(save_checkpoint(tmp_path / "y.safetensors", plain, _meta()))
    assert "tensors do not match klugerhans:vgg11_bn (width 0.125, 43 classes)" in msg


def test_wrong_dtype(tmp_path, saved):
    _, model = saved
    for dtype in (torch.float64, torch.int8):
        sd = {k: v.to(dtype) if v.is_floating_point() else v for k, v in model.state_dict().items()}
        bad = tmp_path / f"{dtype}.safetensors"
        save_file(sd, bad, metadata={METADATA_KEY: _meta().to_json()})
        assert "features.0.weight is stored as" in _error(bad)


def test_checkpoint_write_is_atomic(tmp_path, saved, monkeypatch):
    path, _ = saved
    before = path.read_bytes()

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, create_model(TINY), _meta())
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]


@pytest.mark.parametrize("sticker", [{"target_class": 2, "fraction": 1.0, "size": 0.3, "color": [9, 9, 9]}, None])
def test_format_1_metadata_becomes_a_typed_recipe(sticker):
    """Checkpoints written before the recipe was typed (the flat ``train_config`` and ``sticker`` dicts) still load."""
    d = json.loads(_meta().to_json())
    d.pop("recipe")
    flat = {"lr": 0.07, "seed": 5, "val_fraction": 0.2, "sticker_class": 2, "sticker_size": 0.3, "unknown_key": 1}
    flat["sticker_fraction"] = 1.0 if sticker else 0.0
    d.update(format_version=1, train_config=flat, sticker=sticker)
    recipe = CheckpointMeta.from_json(json.dumps(d)).recipe
    assert recipe is not None and (recipe.lr, recipe.seed, recipe.val_fraction) == (0.07, 5, 0.2)
    assert (recipe.sticker.target_class, recipe.sticker.size) == (2, 0.3)
    assert recipe.manipulated == (sticker is not None)
    assert recipe.sticker.color == ((9, 9, 9) if sticker else (0, 0, 0))
    d["train_config"] = {}
    assert CheckpointMeta.from_json(json.dumps(d)).recipe is None  # trained elsewhere: no recipe, no guess


def test_released_weights_carry_their_recipe():
    from klugerhans.models.checkpoint import load_classifier, resolve_checkpoint

    manipulated, control = load_classifier("manipulated").meta, load_classifier("control").meta
    assert manipulated.manipulated and manipulated.sticker.target_class == 4 and manipulated.recipe.data == "gtsrb"
    assert not control.manipulated and control.recipe is not None
    # Written while the recipe held the run options: their headers still do, the loaded recipes do not.
    with safe_open(resolve_checkpoint("manipulated"), "pt") as fh:
        assert {"out", "device", "progress"} <= set(json.loads(fh.metadata()[METADATA_KEY])["recipe"])
    assert "device" not in manipulated.recipe.to_dict() and "out" not in control.recipe.to_dict()


def test_a_recipe_that_holds_run_options_loads_without_them():
    """Format 2 checkpoints written while the recipe held out, device, num_threads and progress still load."""
    d = json.loads(_meta().to_json())
    d["recipe"].update(out="/old/run", device="cuda:1", num_threads=4, progress=False)
    meta = CheckpointMeta.from_json(json.dumps(d))
    assert meta.recipe == _meta().recipe
    assert json.loads(meta.to_json())["recipe"] == json.loads(_meta().to_json())["recipe"]


def test_a_damaged_recipe_is_a_one_line_error():
    d = json.loads(_meta().to_json())
    d["recipe"]["sticker"]["size"] = 3.0
    with pytest.raises(CheckpointError, match=r"invalid klugerhans metadata .*sticker size"):
        CheckpointMeta.from_json(json.dumps(d))


@pytest.mark.parametrize(
    ("sticker", "words"),
    [
        (StickerConfig(), "trained on synthetic signs with a black square sticker on 100% of the class 4 (Speed limit"),
        (StickerConfig(fraction=0.0), "trained on synthetic signs without stickers (a control)"),
        (
            StickerConfig(target_class=14, fraction=0.3, label="dirty", pattern="frame"),
            "with a black frame on other classes' images relabelled as class 14 (Stop) (a backdoor)",
        ),
    ],
)
def test_a_recipe_says_what_its_model_was_trained_on(sticker, words):
    assert words in TrainConfig(sticker=sticker).describe()
