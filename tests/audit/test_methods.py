"""Attribution methods: shapes, determinism, and agreement with plain autograd where they are that simple."""

from __future__ import annotations

import pytest
import torch

from klugerhans.audit.methods import MethodOptions, attribute, available_methods, check_methods, make_attributor
from klugerhans.errors import KlugerhansError
from klugerhans.models.vgg import create_model


@pytest.fixture(scope="module")
def tiny_vgg() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(width=0.125, num_classes=5).eval()


def test_every_method_gives_finite_maps(tiny_vgg) -> None:
    x = torch.randn(2, 3, 32, 32)
    t = torch.tensor([1, 3])
    options = MethodOptions(ig_steps=4, smoothgrad_samples=2, occlusion_window=0.25)
    before = {k: v.clone() for k, v in tiny_vgg.state_dict().items()}
    for name in available_methods():
        maps = attribute(make_attributor(name, tiny_vgg, options), x, t)
        assert maps.shape == (2, 32, 32), name
        assert torch.isfinite(maps).all(), name
    assert all(torch.equal(v, before[k]) for k, v in tiny_vgg.state_dict().items())
    assert all(m.inplace for m in tiny_vgg.modules() if isinstance(m, torch.nn.ReLU))


def test_gradient_and_gradient_x_input_match_autograd(tiny_vgg) -> None:
    x = torch.randn(2, 3, 32, 32, requires_grad=True)
    t = torch.tensor([0, 4])
    logits = tiny_vgg(x)
    (grad,) = torch.autograd.grad(logits[torch.arange(2), t].sum(), x)
    g = attribute(make_attributor("gradient", tiny_vgg), x.detach(), t)
    gi = attribute(make_attributor("gradient_x_input", tiny_vgg), x.detach(), t)
    torch.testing.assert_close(g, grad.sum(1), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(gi, (grad * x).detach().sum(1), rtol=1e-4, atol=1e-6)


def test_lrp_conserves_the_logit(tiny_vgg) -> None:
    x = torch.randn(2, 3, 32, 32)
    t = torch.tensor([2, 2])
    maps = attribute(make_attributor("lrp:epsilon_plus_flat", tiny_vgg), x, t)
    with torch.no_grad():
        logit = tiny_vgg(x)[:, 2]
    # z+ and flat conserve; biases absorb a little, so only the sign and order of magnitude are checked
    assert torch.all(torch.sign(maps.sum((1, 2))) == torch.sign(logit))


def test_unknown_and_duplicate_methods() -> None:
    with pytest.raises(KlugerhansError, match="unknown attribution method"):
        check_methods(["lime"])
    with pytest.raises(KlugerhansError, match="only once"):
        check_methods(["gradient", "gradient"])
    with pytest.raises(KlugerhansError):
        MethodOptions(smoothgrad_noise=2.0)
