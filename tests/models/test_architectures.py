"""Architecture families: every listed torchvision model and a timm one build and classify; names and sizes are
checked with one-line errors."""

from __future__ import annotations

import pytest
import torch

from klugerhans.errors import KlugerhansError
from klugerhans.models.architectures import (
    MIN_INPUT_SIZE,
    build_timm,
    build_torchvision,
    classifier_layer,
    on_meta,
    parse_arch,
)
from klugerhans.models.checkpoint import CheckpointMeta
from klugerhans.models.vgg import ModelConfig, create_model

TORCHVISION = {
    # name: the final classification layer the generic finder must name
    "vgg11": "classifier.6",
    "vgg11_bn": "classifier.6",
    "vgg13": "classifier.6",
    "vgg13_bn": "classifier.6",
    "vgg16": "classifier.6",
    "vgg16_bn": "classifier.6",
    "resnet18": "fc",
    "resnet34": "fc",
    "resnet50": "fc",
    "resnet101": "fc",
    "wide_resnet50_2": "fc",
    "resnext50_32x4d": "fc",
    "densenet121": "classifier",
    "mobilenet_v2": "classifier.1",
    "mobilenet_v3_large": "classifier.3",
    "efficientnet_b0": "classifier.1",
    "regnet_y_400mf": "fc",
    "convnext_tiny": "classifier.2",
}
SIZE = 32
"""Input side of the forward tests: the measured minimum of the torchvision family (VGG and ConvNeXt need 32)."""


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the test machine is shared
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_torchvision_model_maps_a_batch_to_class_scores(name):
    torch.manual_seed(0)
    model = create_model(family="torchvision", arch=name, input_size=SIZE, num_classes=5).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, SIZE, SIZE))
    assert out.shape == (2, 5) and bool(torch.isfinite(out).all())


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_classifier_layer_is_found_generically(name):
    model = on_meta(lambda: build_torchvision(name, 5)).eval()
    assert classifier_layer(model) == TORCHVISION[name]


def test_timm_model_maps_a_batch_to_class_scores():
    pytest.importorskip("timm")
    model = create_model(family="timm", arch="resnet10t", input_size=SIZE, num_classes=5).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, SIZE, SIZE)).shape == (2, 5)
    assert classifier_layer(on_meta(lambda: build_timm("resnet10t", 5)).eval()) == "fc"


def test_our_vgg_is_the_default_family():
    assert ModelConfig().family == "klugerhans"
    assert classifier_layer(on_meta(lambda: create_model(width=0.125)).eval(), 32) == "classifier.3"


@pytest.mark.parametrize(
    ("text", "fields"),
    [
        ("resnet18", {"family": "torchvision", "arch": "resnet18"}),
        ("torchvision:vgg16_bn", {"family": "torchvision", "arch": "vgg16_bn"}),
        ("klugerhans:vgg11_bn", {"family": "klugerhans", "arch": "vgg11_bn"}),
        ("klugerhans:vgg11", {"family": "klugerhans", "arch": "vgg11"}),
    ],
)
def test_parse_arch(text, fields):
    assert parse_arch(text) == fields


def test_parse_arch_timm():
    pytest.importorskip("timm")
    assert parse_arch("timm:convnext_atto") == {"family": "timm", "arch": "convnext_atto"}


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("resnet181", "did you mean resnet18"),
        ("klugerhans:resnet18", "unknown architecture klugerhans:resnet18: choose one of vgg11, vgg11_bn"),
        ("keras:resnet18", "unknown architecture family 'keras'"),
    ],
)
def test_unknown_arch_suggests_names(text, words):
    with pytest.raises(KlugerhansError) as info:
        parse_arch(text)
    assert words in str(info.value) and "\n" not in str(info.value)


def test_missing_timm_says_how_to_install(monkeypatch):
    import sys

    import klugerhans.models.architectures as architectures

    architectures.timm_names.cache_clear()
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm -> ImportError
    try:
        with pytest.raises(KlugerhansError, match=r"pip install klugerhans\[timm\]"):
            parse_arch("timm:resnet18")
    finally:
        architectures.timm_names.cache_clear()


@pytest.mark.parametrize(
    ("arch", "size", "words"),
    [
        ("resnet18", 8, f"give at least {MIN_INPUT_SIZE}"),
        ("efficientnet_b0", 16, f"give at least {MIN_INPUT_SIZE}"),
        ("convnext_tiny", 16, f"give at least {MIN_INPUT_SIZE}"),
        ("inception_v3", 32, "the smallest size it takes is 75 px"),
        ("alexnet", 48, "the smallest size it takes is 63 px"),
        ("vit_b_16", 60, "cannot be built for 60 px inputs (Input shape indivisible by patch size!)"),
    ],
)
def test_input_too_small_names_the_minimum(arch, size, words):
    with pytest.raises(KlugerhansError) as info:
        create_model(family="torchvision", arch=arch, input_size=size, num_classes=5)
    assert words in str(info.value) and "\n" not in str(info.value)


def test_input_size_check_passes_at_the_minimum():
    model = on_meta(lambda: create_model(family="torchvision", arch="inception_v3", input_size=75, num_classes=5))
    assert classifier_layer(model.eval(), 75) == "fc"


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"family": "torchvision", "arch": "resnet18", "width": 0.5}, "^resnet18 takes no width multiplier"),
        ({"family": "onnx"}, "unknown architecture family"),
        ({"family": "torchvision", "arch": "resnet181"}, "did you mean resnet18"),
    ],
)
def test_bad_config(kwargs, words):
    with pytest.raises(KlugerhansError, match=words):
        ModelConfig(**kwargs)


def test_old_metadata_without_family_means_ours():
    meta = CheckpointMeta(model=ModelConfig(width=0.125))
    text = meta.to_json().replace(', "family": "klugerhans"', "").replace('"family": "klugerhans", ', "")
    assert '"family"' not in text
    assert CheckpointMeta.from_json(text).model == ModelConfig(width=0.125)
