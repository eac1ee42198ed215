"""LRP for transformers: equal to LXT on torchvision's ViT, conservative on every supported transformer."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models import VisionTransformer

from klugerhans.explain import LRP, Composite, Epsilon, Gamma, Propagator, modules, register_module_rule
from klugerhans.explain.attention import AttnLRP, attention_rules, has_attention
from klugerhans.heatmaps import explain_model
from klugerhans.models.preprocess import Normalization

TINY_VIT = {"image_size": 32, "patch_size": 4, "num_layers": 2, "num_heads": 3, "hidden_dim": 48, "mlp_dim": 96}
LEAKS = ("bias", "class_token", "pos_embedding", "cls_token", "dist_token", "pos_embed", "relative_position_bias")


def _tiny_vit(seed: int = 0, num_classes: int = 43) -> nn.Module:
    torch.manual_seed(seed)
    model = VisionTransformer(**TINY_VIT, num_classes=num_classes).eval()
    with torch.no_grad():  # torchvision starts the head, class token and biases at 0: give every parameter a value
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


def _without_leaks(model: nn.Module) -> nn.Module:
    """Biases, class/distillation tokens and position embeddings at 0: what relevance could leak into."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if any(part in name for part in LEAKS):
                p.zero_()
        for m in model.modules():  # a zero head would make every logit 0
            if isinstance(m, nn.Linear) and not m.weight.any():
                m.weight.normal_(0, 0.05)
    return model.eval()


@pytest.mark.skipif(importlib.util.find_spec("lxt") is None, reason="lxt not installed (pip install --no-deps lxt)")
@pytest.mark.parametrize(("rule", "value"), [("epsilon", 1e-6), ("gamma", 0.25)])
def test_equal_to_lxt_on_torchvision_vit(tmp_path: Path, rule: str, value: float) -> None:
    model = _tiny_vit()
    x, target = torch.randn(3, 3, 32, 32), torch.tensor([0, 5, 42])
    given = {"state": model.state_dict(), "config": {**TINY_VIT, "num_classes": 43}, "x": x, "target": target}
    torch.save({**given, "rule": rule, "value": value}, tmp_path / "in.pt")
    oracle = Path(__file__).with_name("lxt_oracle.py")
    subprocess.run([sys.executable, str(oracle), str(tmp_path / "in.pt"), str(tmp_path / "out.pt")], check=True)
    reference = torch.load(tmp_path / "out.pt", weights_only=True)
    chosen = Epsilon(value) if rule == "epsilon" else Gamma(value)
    ours = LRP(model, Composite(conv=chosen, linear=chosen)).attribute(x, target)
    assert torch.equal(ours.logits, reference["logits"])
    scale = reference["relevance"].abs().max()
    assert float((ours.relevance - reference["relevance"]).abs().max() / scale) <= 1e-4


def _torchvision_small(name: str) -> tuple[nn.Module, int]:
    torch.manual_seed(0)
    if name == "vit":
        return VisionTransformer(**TINY_VIT, num_classes=10), 32
    if name == "swin_t":
        return torchvision.models.swin_t(num_classes=10), 64
    return torchvision.models.swin_v2_t(num_classes=10), 64


def _timm_small(name: str) -> tuple[nn.Module, int]:
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    return timm.create_model(name, pretrained=False, num_classes=10, img_size=64), 64


@pytest.mark.parametrize(
    "build",
    [
        lambda: _torchvision_small("vit"),
        lambda: _torchvision_small("swin_t"),
        lambda: _torchvision_small("swin_v2_t"),
        lambda: _timm_small("vit_tiny_patch16_224"),
        lambda: _timm_small("deit_tiny_distilled_patch16_224"),
        lambda: _timm_small("swin_tiny_patch4_window7_224"),
    ],
    ids=["vit", "swin_t", "swin_v2_t", "timm_vit", "timm_deit_distilled", "timm_swin"],
)
def test_relevance_is_conserved_on_transformers(build) -> None:
    model, size = build()
    model = _without_leaks(model)
    x = torch.randn(2, 3, size, size)
    expl = LRP(model, Composite(conv=Epsilon(0.0), linear=Epsilon(0.0))).attribute(x)
    logit = expl.logits.gather(1, expl.targets[:, None]).flatten()
    torch.testing.assert_close(expl.relevance.sum((1, 2, 3)), logit, rtol=1e-4, atol=1e-6)


def test_lrp_explains_the_vit_of_the_issue_in_one_line() -> None:
    model = VisionTransformer(**TINY_VIT, num_classes=43).eval()
    assert has_attention(model) and isinstance(LRP(model).engine, AttnLRP)
    expl = explain_model(model, torch.rand(2, 3, 32, 32))
    assert expl.relevance.shape == (2, 3, 32, 32) and torch.isfinite(expl.relevance).all()


def test_the_model_is_untouched_and_the_functions_restored() -> None:
    model = _tiny_vit()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    originals = (torch.nn.functional.layer_norm, torch.nn.functional.gelu, torch.Tensor.softmax, torch.softmax)
    LRP(model, "epsilon_gamma_box", norm=Normalization()).attribute(torch.randn(1, 3, 32, 32))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.requires_grad for p in model.parameters()) and "forward" not in vars(model.heads.head)
    now = (torch.nn.functional.layer_norm, torch.nn.functional.gelu, torch.Tensor.softmax, torch.softmax)
    assert now == originals


def test_the_rules_change_gradients_not_values() -> None:
    model = _tiny_vit()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        plain = model(x)
        with attention_rules():
            ruled = model(x)
    torch.testing.assert_close(ruled, plain, rtol=1e-5, atol=1e-5)


def test_identity_rule_passes_relevance_through_gelu_and_layer_norm_keeps_its_share() -> None:
    """Re-derived by hand on one token: dense -> LayerNorm -> GELU -> dense, LRP-0 everywhere."""
    torch.manual_seed(1)
    first, second = nn.Linear(6, 5, bias=False), nn.Linear(5, 1, bias=False)
    norm = nn.LayerNorm(5, elementwise_affine=False)

    class Block(nn.Module):  # has_attention needs an attention module: a dummy one off the path
        def __init__(self) -> None:
            super().__init__()
            self.first, self.norm, self.second, self.unused = first, norm, second, nn.MultiheadAttention(4, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.second(nn.functional.gelu(self.norm(self.first(x))))

    x = torch.randn(1, 6)
    expl = LRP(Block(), Composite(conv=Epsilon(0.0), linear=Epsilon(0.0))).attribute(x, 0)
    with torch.no_grad():
        z1 = first(x)
        centred = z1 - z1.mean()
        y = centred / (centred.pow(2).mean() + norm.eps).sqrt()
        g = nn.functional.gelu(y)
        r_g = g * second.weight[0] * (second(g)[0, 0] / second(g)[0, 0])  # LRP-0: g_i w_i (R / z), R = z
        r_y = r_g  # identity rule through GELU
        # LayerNorm with the std held: y = C z1 / s (C centres), LRP-0 through the linear map C / s
        s = (centred.pow(2).mean() + norm.eps).sqrt()
        jac = (torch.eye(5) - 1 / 5) / s
        r_z1 = z1 * ((r_y / y) @ jac)
        r_x = x * ((r_z1 / z1) @ first.weight)
    torch.testing.assert_close(expl.relevance, r_x, rtol=1e-4, atol=1e-6)


class _SquaredReLU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x) ** 2


class _PassRelevance(Propagator):
    def __init__(self, module: nn.Module):
        self.module = module

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        return self.module(x), None

    def backward(self, saved: None, relevance: torch.Tensor) -> torch.Tensor:
        return relevance


@pytest.fixture
def module_rules() -> Iterator[None]:
    """Undo what a test registers."""
    saved = dict(modules.MODULE_RULES)
    yield
    modules.MODULE_RULES.clear()
    modules.MODULE_RULES.update(saved)


def test_a_registered_module_rule_reaches_a_transformer(module_rules: None) -> None:
    """Without its rule, gradient x input through x^2 doubles the relevance; with it, the sum is the logit."""
    model = _without_leaks(_tiny_vit())
    for block in model.encoder.layers:
        block.mlp[1] = _SquaredReLU()
    x = torch.randn(2, 3, 32, 32)
    epsilon = Composite(conv=Epsilon(0.0), linear=Epsilon(0.0))

    def error() -> float:
        expl = LRP(model, epsilon).attribute(x)
        logit = expl.logits.gather(1, expl.targets[:, None]).flatten()
        return float(((expl.relevance.sum((1, 2, 3)) - logit).abs() / logit.abs()).max())

    assert error() > 1e-2
    register_module_rule(_SquaredReLU)(_PassRelevance)
    assert error() < 1e-4
