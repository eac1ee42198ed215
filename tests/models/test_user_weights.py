"""The user's own weights: state_dicts as safetensors or torch.save files, wrappers, class counts read from the
file, pickled modules refused without running them, mismatches named, conversion into a klugerhans checkpoint."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from safetensors.torch import save_file

import klugerhans
from klugerhans.data.images import resize_center_crop
from klugerhans.errors import CheckpointError, KlugerhansError
from klugerhans.models.checkpoint import CheckpointMeta, load_classifier, read_checkpoint, save_checkpoint
from klugerhans.models.preprocess import IMAGENET, Normalization, to_tensor
from klugerhans.models.user_weights import load_user_model, read_weights
from klugerhans.models.vgg import ModelConfig, create_model

CLASSES = 7


class _Evil:
    """Unpickling this creates a marker file: proof that foreign code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


class _Module(torch.nn.Linear):
    """A module whose unpickling would also create the marker."""

    marker: Path

    def __reduce_ex__(self, protocol: Any) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


@pytest.fixture(scope="module")
def resnet() -> torch.nn.Module:
    torch.manual_seed(0)
    return torchvision.models.resnet18(num_classes=CLASSES).eval()


def _same_outputs(clf: klugerhans.models.Classifier, model: torch.nn.Module, size: int = 64) -> bool:
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        return torch.allclose(clf.model(x), model(x), atol=1e-5)


@pytest.mark.parametrize("fmt", ["safetensors", "pt", "wrapped", "prefixed"])
def test_weights_round_trip_and_class_count_comes_from_the_file(resnet, tmp_path, fmt):
    state = resnet.state_dict()
    path = tmp_path / f"w.{'safetensors' if fmt == 'safetensors' else 'pt'}"
    if fmt == "safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, path)
    elif fmt == "pt":
        torch.save(state, path)
    elif fmt == "wrapped":
        torch.save({"model": state, "epoch": 12, "optimizer": {"lr": 0.1}}, path)
    else:
        torch.save({"state_dict": {f"module._orig_mod.{k}": v for k, v in state.items()}}, path)
    clf = load_user_model("resnet18", path, image_size=64)
    assert clf.meta.model == ModelConfig(family="torchvision", arch="resnet18", input_size=64, num_classes=CLASSES)
    assert clf.meta.recipe is None and clf.input_size == 64
    assert clf.class_names == tuple(f"class {i}" for i in range(CLASSES))
    assert clf.meta.normalization == Normalization(*IMAGENET)
    assert _same_outputs(clf, resnet)


def test_defaults_and_preprocess_like_torchvision(resnet, tmp_path):
    path = tmp_path / "w.pt"
    torch.save(resnet.state_dict(), path)
    names = [f"thing {i}" for i in range(CLASSES)]
    clf = klugerhans.load_user_model("resnet18", path, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), class_names=names)
    assert clf.input_size == 224 and clf.class_names == tuple(names) and clf.meta.resize == "center_crop"
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8))
    expected = to_tensor(resize_center_crop(photo, 224)[None], Normalization((0.5,) * 3, (0.25,) * 3))[0]
    assert torch.equal(clf.preprocess(photo), expected)
    with pytest.raises(KlugerhansError, match="got 2 class names for a model with 7 classes"):
        load_user_model("resnet18", path, class_names=["a", "b"])


def test_converted_checkpoint_round_trips(resnet, tmp_path):
    torch.save(resnet.state_dict(), tmp_path / "w.pt")
    clf = load_user_model("resnet18", tmp_path / "w.pt", image_size=64, class_names=[str(i) for i in range(CLASSES)])
    saved = save_checkpoint(tmp_path / "user.safetensors", clf.model, clf.meta)
    _, meta = read_checkpoint(saved)
    assert meta.model == clf.meta.model and meta.recipe is None and meta.class_names == clf.class_names
    again = load_classifier(saved)
    assert again.meta.resize == "center_crop" and again.input_size == 64
    assert _same_outputs(again, resnet)
    # The converted checkpoint is also a valid --weights file; its stored size and names are the defaults.
    third = load_user_model("resnet18", saved)
    assert third.input_size == 64 and third.class_names == clf.class_names


def test_pickled_module_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "FOREIGN_CODE_RAN"
    evil = _Module(2, 2)
    evil.marker = marker
    torch.save(evil, tmp_path / "whole.pt")
    (tmp_path / "raw.pth").write_bytes(pickle.dumps(_Evil(marker)))
    torch.save(torchvision.models.resnet18(num_classes=3), tmp_path / "resnet.pt")
    for name in ("whole.pt", "raw.pth", "resnet.pt"):
        with pytest.raises(CheckpointError) as info:
            load_user_model("resnet18", tmp_path / name)
        message = str(info.value)
        assert "torch.save(model.state_dict(), PATH)" in message and "\n" not in message
    assert not marker.exists()


def test_weights_of_another_architecture_name_the_key(resnet, tmp_path):
    torch.save(resnet.state_dict(), tmp_path / "w.pt")
    with pytest.raises(CheckpointError) as info:
        load_user_model("resnet34", tmp_path / "w.pt")
    assert "weights do not fit resnet34: tensor layer1.2.conv1.weight is missing" in str(info.value)
    with pytest.raises(CheckpointError, match=r"no tensor classifier\.1\.weight"):
        load_user_model("efficientnet_b0", tmp_path / "w.pt")
    state = resnet.state_dict()
    state["layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 1)
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError) as info:
        load_user_model("resnet18", tmp_path / "bad.pt")
    assert "layer1.0.conv1.weight has shape (64, 64, 1, 1), resnet18 expects (64, 64, 3, 3)" in str(info.value)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", "cannot read weights"),
        (b"not a torch file at all", "cannot read weights"),
    ],
)
def test_unreadable_files(tmp_path, content, words):
    (tmp_path / "w.pt").write_bytes(content)
    with pytest.raises(CheckpointError, match=words):
        read_weights(tmp_path / "w.pt")


def test_not_a_state_dict(tmp_path):
    torch.save({"epoch": 3, "lr": 0.1}, tmp_path / "w.pt")
    with pytest.raises(CheckpointError, match="is not a tensor"):
        read_weights(tmp_path / "w.pt")
    torch.save([torch.zeros(2)], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="holds no state_dict"):
        read_weights(tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="no such weights file"):
        read_weights(tmp_path / "missing.pt")


def test_our_vgg_as_plain_state_dict(tmp_path):
    model = create_model(width=0.125, input_size=64, num_classes=5).eval()
    torch.save(model.state_dict(), tmp_path / "vgg.pt")
    clf = load_user_model("klugerhans:vgg11_bn", tmp_path / "vgg.pt")  # width and size read from the shapes
    assert clf.meta.model == ModelConfig(width=0.125, input_size=64, num_classes=5)
    assert clf.meta.resize == "square"
    assert _same_outputs(clf, model, 64)
    with pytest.raises(CheckpointError, match=r"classifier\.0\.weight has shape \(64, 256\)"):
        load_user_model("klugerhans:vgg11_bn", tmp_path / "vgg.pt", image_size=48)  # 48 px heads are 32 px-shaped


def test_timm_weights(tmp_path):
    timm = pytest.importorskip("timm")
    model = timm.create_model("resnet10t", pretrained=False, num_classes=CLASSES).eval()
    save_file(model.state_dict(), tmp_path / "t.safetensors")
    clf = load_user_model("timm:resnet10t", tmp_path / "t.safetensors", image_size=64)
    assert clf.meta.model.family == "timm" and clf.meta.model.num_classes == CLASSES
    assert _same_outputs(clf, model)


@pytest.mark.parametrize(
    ("family", "arch"),
    [("torchvision", "regnet_y_400mf"), ("torchvision", "mobilenet_v3_large"), ("timm", "resnet10t")],
)
def test_checkpoints_of_every_family_are_checked_and_load(tmp_path, family, arch):
    if family == "timm":
        pytest.importorskip("timm")
    config = ModelConfig(family=family, arch=arch, input_size=32, num_classes=4)
    model = create_model(config).eval()
    names = tuple("abcd")
    path = save_checkpoint(tmp_path / "m.safetensors", model, CheckpointMeta(model=config, class_names=names))
    clf = load_classifier(path)
    assert clf.meta.model == config and _same_outputs(clf, model, 32)
    other = ModelConfig(family=family, arch=arch, input_size=32, num_classes=5)
    save_checkpoint(tmp_path / "bad.safetensors", model, CheckpointMeta(model=other, class_names=tuple("abcde")))
    with pytest.raises(CheckpointError, match="has shape"):
        load_classifier(tmp_path / "bad.safetensors")


def test_import_klugerhans_stays_free_of_torch():
    import subprocess
    import sys

    code = "import sys, klugerhans; print('torch' in sys.modules, 'load_user_model' in klugerhans.__all__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]


def test_a_transformer_built_for_a_small_size_loads_at_that_size(tmp_path: Path) -> None:
    """A ViT's position embeddings fix its input size: ``--image-size`` builds timm's ViT for it, so weights of a
    32 px model load and are explained."""
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=5, img_size=32).eval()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, tmp_path / "vit.safetensors")
    clf = load_user_model("timm:vit_tiny_patch16_224", tmp_path / "vit.safetensors", image_size=32)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(clf.model(x), model(x))
    expl = klugerhans.explain_model(clf.model, x)
    assert expl.relevance.shape == (2, 3, 32, 32) and bool(torch.isfinite(expl.relevance).all())
