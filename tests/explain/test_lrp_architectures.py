"""The graph engine on torchvision CNNs: equal to zennit on VGG/ResNet, conservative on every architecture."""

import pytest
import torch
import torchvision
from lrp_reference import (
    COMPOSITE_NAMES,
    ExactMergeBatchNorm,
    exact_resnet_canonizer,
    randomize,
    run_graph,
    zennit_relevance,
)
from torch import nn

from klugerhans.errors import KlugerhansError
from klugerhans.explain import LRP, Composite, Epsilon, box_bounds, canonize, compute_heatmaps
from klugerhans.models.preprocess import Normalization

GTSRB = Normalization()


def _zennit_options(name):
    if name != "epsilon_gamma_box":
        return {}
    low, high = box_bounds(GTSRB)
    return {"low": low.float().view(1, 3, 1, 1), "high": high.float().view(1, 3, 1, 1)}


def _relative_error(ours, theirs):
    return float((ours - theirs).abs().max() / theirs.abs().max())


def _torchvision(arch: str, hidden: int | None = None) -> nn.Module:
    torch.manual_seed(0)
    model = getattr(torchvision.models, arch)(weights=None)
    if hidden is not None:  # VGG: narrow the 4096-wide dense layers (120M weights); same layout otherwise
        model.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, hidden), nn.ReLU(True), nn.Dropout(), nn.Linear(hidden, 10)
        )
    return randomize(model, 3)


def _check_zennit(model, canonizer, names, size=64):
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(6))
    explainer = LRP(model)
    for name in names:
        expl = explainer.with_composite(name, norm=GTSRB).attribute(x)
        theirs = zennit_relevance(model, x, name, expl.targets, canonizer(), **_zennit_options(name))
        assert _relative_error(expl.relevance, theirs) <= 1e-4, name


@pytest.mark.slow
def test_equals_zennit_on_resnet18_all_composites():
    _check_zennit(_torchvision("resnet18"), exact_resnet_canonizer, COMPOSITE_NAMES)


def test_equals_zennit_on_resnet18():
    _check_zennit(_torchvision("resnet18"), exact_resnet_canonizer, ("epsilon_gamma_box", "epsilon_alpha2_beta1_flat"))


def test_equals_zennit_on_resnet50():
    _check_zennit(_torchvision("resnet50"), exact_resnet_canonizer, ("epsilon_plus_flat", "epsilon_gamma_box"))


def test_equals_zennit_on_vgg16_bn_layout():
    _check_zennit(
        _torchvision("vgg16_bn", hidden=64), ExactMergeBatchNorm, ("epsilon_plus_flat", "epsilon_alpha2_beta1")
    )


@pytest.mark.slow
def test_equals_zennit_on_full_models():
    names = ("epsilon_gamma_box", "epsilon_plus", "epsilon_alpha2_beta1", "epsilon_alpha2_beta1_flat")
    _check_zennit(_torchvision("resnet50"), exact_resnet_canonizer, names)
    _check_zennit(_torchvision("vgg16_bn"), ExactMergeBatchNorm, COMPOSITE_NAMES)


ARCHITECTURES = [
    "vgg11",
    "vgg11_bn",
    "vgg13",
    "vgg13_bn",
    "vgg16",
    "vgg16_bn",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "wide_resnet50_2",
    "resnext50_32x4d",
    "densenet121",
    "mobilenet_v2",
    "mobilenet_v3_large",
    "efficientnet_b0",
    "regnet_y_400mf",
    "convnext_tiny",
    "mnasnet0_5",  # x.mean((2, 3)) as global pooling
    "googlenet",  # functional max pooling
]


def _bias_free(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """No biases anywhere (conv/dense biases zero, BatchNorm means zero) and activations of order one.

    At initialisation MobileNet's and EfficientNet's logits are ~1e-10 (BatchNorm variance 1 on far smaller
    activations), so any epsilon would absorb all relevance: each BatchNorm's variance is set to the mean square of
    its input on ``x``, one value per layer (per channel would blow up near-constant channels; mean kept at 0, so no
    bias).
    """

    def calibrate(bn: nn.Module, inputs: tuple[torch.Tensor]) -> None:
        bn.running_var.fill_(float(inputs[0].pow(2).mean()) + 1e-12)

    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d | nn.Linear) and m.bias is not None:
                m.bias.zero_()
        model.eval()
        hooks = [m.register_forward_pre_hook(calibrate) for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
        model(x)
        for hook in hooks:
            hook.remove()
    return model


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_every_architecture_computes_the_model_and_conserves(arch):
    """Biases off, epsilon rules: the input relevance sums to the target logit; the graph computes the model."""
    torch.manual_seed(0)
    kwargs = {"num_classes": 10} if arch.startswith("vgg") else {}  # VGG's 4096-wide head is most of its time
    kwargs |= {"init_weights": False} if arch == "googlenet" else {}  # its truncated-normal init is slow
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    model = _bias_free(getattr(torchvision.models, arch)(weights=None, **kwargs), x)
    nodes = canonize(model)
    with torch.no_grad():
        logits = model(x)
        torch.testing.assert_close(run_graph(nodes, x), logits, rtol=1e-4, atol=1e-4 * float(logits.abs().max()))
    explainer = LRP(model, Composite(conv=Epsilon(), linear=Epsilon()))
    assert explainer.rule_share == 1.0 and explainer.fallback_ops == ()
    expl = explainer.attribute(x, batch_size=64)
    target = expl.logits.gather(1, expl.targets[:, None])[:, 0]
    torch.testing.assert_close(expl.relevance.sum((1, 2, 3)), target, rtol=1e-3, atol=1e-5 * float(target.abs().max()))


class _Sine(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(torch.sin(self.conv(x)).mean((2, 3)))


def test_operation_without_rule_raises_one_line_naming_it():
    with pytest.raises(KlugerhansError) as info:
        LRP(_Sine())
    message = str(info.value)
    assert "\n" not in message and "sin" in message and "fallback='gradient'" in message


def test_gradient_fallback_reports_its_share():
    torch.manual_seed(0)
    explainer = LRP(_Sine(), fallback="gradient")
    assert set(explainer.fallback_ops) == {"sin"}  # x.mean((2, 3)) is global average pooling
    assert explainer.rule_share == pytest.approx(1 - 1 / explainer.coverage()["n_ops"])
    expl = explainer.attribute(torch.randn(2, 3, 8, 8))
    assert expl.relevance.shape == (2, 3, 8, 8) and bool(torch.isfinite(expl.relevance).all())


def test_squeeze_excitation_gate_gets_no_relevance():
    """Relevance flows through the signal of ``x * sigmoid(f(x))``: as if the gate were a constant."""

    class Gated(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
            self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(4, 4, 1), nn.Sigmoid())
            self.fc = nn.Linear(4, 2, bias=False)

        def forward(self, x):
            h = torch.relu(self.conv(x))
            return self.fc(torch.flatten((h * self.gate(h)).mean((2, 3), keepdim=True), 1))

    torch.manual_seed(0)
    model = Gated().eval()
    x = torch.randn(2, 3, 6, 6)
    assert LRP(model).rule_share == 1.0  # x.mean((2, 3)) is global average pooling
    expl = compute_heatmaps(model, x, composite=Composite(conv=Epsilon(), linear=Epsilon()))
    target = expl.logits.gather(1, expl.targets[:, None])[:, 0]
    torch.testing.assert_close(expl.relevance.sum((1, 2, 3)), target, rtol=1e-4, atol=1e-6)
