"""Every torchvision classifier and a range of timm's: explained, or refused in one line naming the operation.

Random weights at a small input size; the epsilon rule everywhere (the cheapest composite: no modified weight copies,
which matters for the 644M-weight RegNet). What is asserted holds for any weights: a heatmap of the input's shape
with finite values, or a :class:`KlugerhansError` of one line, never another exception.

Marked ``extended``: minutes of model building, so not in the default run; CI runs them as a step of their own
(``python -m pytest -q -m extended``).
"""

from __future__ import annotations

import warnings

import pytest
import torch
import torchvision
from torch import nn

from klugerhans.errors import KlugerhansError
from klugerhans.explain import LRP, Composite, Epsilon

TORCHVISION = torchvision.models.list_models(module=torchvision.models)
TIMM = [
    # CNNs
    "resnet18", "resnet10t", "resnet50d", "efficientnet_b0", "regnety_002", "regnetx_002", "densenet121", "dla34",
    "inception_v3",
    "mobilenetv3_small_100", "convnext_atto", "ghostnet_100", "cspresnet50", "mixnet_s", "hrnet_w18_small",
    # transformers and hybrids
    "vit_tiny_patch16_224", "vit_small_patch32_224", "deit_tiny_patch16_224", "deit_tiny_distilled_patch16_224",
    "swin_tiny_patch4_window7_224", "eva02_tiny_patch14_224",
    "beit_base_patch16_224", "mobilevit_xxs", "levit_128s", "pit_ti_224", "xcit_nano_12_p16_224", "tiny_vit_5m_224",
    "coatnet_nano_rw_224", "maxvit_nano_rw_256", "caformer_s18", "cait_xxs24_224",
    # MLPs and others
    "mixer_s16_224", "resmlp_12_224", "poolformer_s12", "convmixer_768_32", "twins_svt_small",
]  # fmt: skip
EPSILON = Composite(conv=Epsilon(), linear=Epsilon())


def _explained_or_refused(model: nn.Module, size: int) -> str:
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    try:
        expl = LRP(model, EPSILON).attribute(x)
    except KlugerhansError as err:
        assert "\n" not in str(err), str(err)
        return "refused"
    assert expl.relevance.shape == x.shape and bool(torch.isfinite(expl.relevance).all())
    return "explained"


def _torchvision(name: str) -> tuple[nn.Module, int]:
    kwargs: dict[str, object] = {"num_classes": 10}
    if name.startswith("vit_"):
        kwargs["image_size"] = 28 if name.endswith("_14") else 32
    if name in ("googlenet", "inception_v3"):
        kwargs |= {"init_weights": False, "aux_logits": False}
    size = {"maxvit_t": 224, "inception_v3": 96}.get(name, kwargs.get("image_size", 64))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torchvision.models.get_model(name, **kwargs).eval(), int(size)  # type: ignore[call-overload]


@pytest.mark.extended
def test_every_torchvision_classifier_is_explained_or_refused_in_one_line() -> None:
    torch.manual_seed(0)
    outcome = {name: _explained_or_refused(*_torchvision(name)) for name in TORCHVISION}
    explained = [name for name, what in outcome.items() if what == "explained"]
    # every family the engines support (the rest are refused naming the operation)
    for family in ("resnet", "vgg", "densenet", "efficientnet", "convnext", "regnet", "mobilenet", "vit_", "swin"):
        assert any(name.startswith(family) for name in explained), family
    assert len(explained) >= 0.9 * len(TORCHVISION), sorted(set(TORCHVISION) - set(explained))


@pytest.mark.extended
def test_timm_classifiers_are_explained_or_refused_in_one_line() -> None:
    timm = pytest.importorskip("timm")
    outcome = {}
    for name in TIMM:
        torch.manual_seed(0)
        try:
            model, size = timm.create_model(name, pretrained=False, num_classes=10, img_size=64), 64
        except TypeError:  # a CNN: any size it can pool down
            model, size = timm.create_model(name, pretrained=False, num_classes=10), 96 if "inception" in name else 64
        outcome[name] = _explained_or_refused(model.eval(), size)
    assert sum(what == "explained" for what in outcome.values()) >= 20, outcome
