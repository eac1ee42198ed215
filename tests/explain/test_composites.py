"""Composite registry and which rule each layer gets (zennit's assignments)."""

import pytest
import torch
from lrp_reference import COMPOSITE_NAMES
from torch import nn

from klugerhans.errors import KlugerhansError
from klugerhans.explain import (
    COMPOSITES,
    LRP,
    AlphaBeta,
    Composite,
    Epsilon,
    Flat,
    Gamma,
    Norm,
    ZBox,
    ZPlus,
    box_bounds,
    canonize,
    get_composite,
    register_composite,
)
from klugerhans.models.preprocess import Normalization

GTSRB = Normalization()


def test_registry_has_zennits_names():
    assert set(COMPOSITE_NAMES) <= set(COMPOSITES)
    for name in COMPOSITE_NAMES:
        assert get_composite(name, norm=GTSRB).name == name


def _assigned(name, model, **options):
    # the model's normalisation goes to every composite; only those that need bounds take it
    return get_composite(name, **{"norm": GTSRB, **options}).assign(canonize(model))


def _affine_rules(rules):
    return [r for r in rules if r is not None and not isinstance(r, Norm)]


@pytest.mark.parametrize(
    ("name", "first", "conv", "linear"),
    [
        ("epsilon_plus_flat", Flat, ZPlus, Epsilon),
        ("epsilon_gamma_box", ZBox, Gamma, Epsilon),
        ("epsilon_plus", ZPlus, ZPlus, Epsilon),
        ("epsilon_alpha2_beta1", AlphaBeta, AlphaBeta, Epsilon),
        ("epsilon_alpha2_beta1_flat", Flat, AlphaBeta, Epsilon),
    ],
)
def test_rules_per_layer_on_vgg(vgg_bn, name, first, conv, linear):
    rules = _assigned(name, vgg_bn)
    affine = _affine_rules(rules)
    assert len(affine) == 8 + 2  # 8 convs, 2 dense layers
    assert type(affine[0]) is first
    assert all(type(r) is conv for r in affine[1:8])
    assert all(type(r) is linear for r in affine[8:])
    assert sum(isinstance(r, Norm) for r in rules) == 1  # the adaptive average pooling


def test_zennit_default_parameters(vgg_bn):
    rules = _affine_rules(_assigned("epsilon_gamma_box", vgg_bn))
    assert rules[1] == Gamma(0.25, 1e-6) and rules[-1] == Epsilon(1e-6)
    rules = _affine_rules(_assigned("epsilon_alpha2_beta1", vgg_bn))
    assert rules[0] == AlphaBeta(2.0, 1.0, 1e-6)
    assert _affine_rules(_assigned("epsilon_plus_flat", vgg_bn))[0] == Flat(1e-6)


def test_first_layer_rule_only_for_its_layer_type():
    dense_first = nn.Sequential(nn.Flatten(), nn.Linear(12, 4), nn.ReLU(), nn.Linear(4, 2))
    assert type(_affine_rules(_assigned("epsilon_plus_flat", dense_first))[0]) is Flat
    # zennit's EpsilonGammaBox gives ZBox to the first *convolution* only
    assert [type(r) for r in _affine_rules(_assigned("epsilon_gamma_box", dense_first))] == [Epsilon, Epsilon]


def test_options_reach_the_rules(vgg_bn):
    rules = _affine_rules(_assigned("epsilon_gamma_box", vgg_bn, gamma=0.5, epsilon=0.1))
    assert rules[1].gamma == 0.5 and rules[-1].epsilon == 0.1
    norm = Normalization(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    box = _affine_rules(_assigned("epsilon_gamma_box", vgg_bn, norm=norm))[0]
    assert torch.allclose(torch.as_tensor(box.low), torch.full((3,), -1.0, dtype=torch.float64))
    assert torch.allclose(torch.as_tensor(box.high), torch.full((3,), 1.0, dtype=torch.float64))


def test_box_bounds_are_normalised_pixel_range():
    low, high = box_bounds(Normalization(mean=(0.2, 0.4, 0.6), std=(0.5, 0.5, 0.25)))
    torch.testing.assert_close(low, torch.tensor([-0.4, -0.8, -2.4], dtype=torch.float64))
    torch.testing.assert_close(high, torch.tensor([1.6, 1.2, 1.6], dtype=torch.float64))


def test_register_custom_composite(vgg_bn):
    @register_composite("test_all_epsilon")
    def _all_epsilon(epsilon: float = 0.01) -> Composite:
        return Composite(conv=Epsilon(epsilon), linear=Epsilon(epsilon), name="test_all_epsilon")

    try:
        explainer = LRP(vgg_bn, "test_all_epsilon", epsilon=0.5)
        assert explainer.composite.conv == Epsilon(0.5)
        assert explainer.attribute(torch.randn(1, 3, 32, 32)).relevance.shape == (1, 3, 32, 32)
    finally:
        del COMPOSITES["test_all_epsilon"]


@pytest.mark.parametrize(
    ("name", "options"),
    [("unknown", {}), ("epsilon_plus", {"gamma": 1.0}), ("epsilon_gamma_box", {"low": 0.0})],
)
def test_bad_composite_requests(name, options):
    with pytest.raises(KlugerhansError):
        get_composite(name, **options)


def test_the_box_composite_needs_bounds_from_the_caller():
    with pytest.raises(KlugerhansError, match="needs the input's bounds"):
        get_composite("epsilon_gamma_box")
    by_pair = get_composite("epsilon_gamma_box", norm=(GTSRB.mean, GTSRB.std)).first
    by_norm = get_composite("epsilon_gamma_box", norm=GTSRB).first
    assert isinstance(by_pair, ZBox) and isinstance(by_norm, ZBox)
    assert torch.equal(by_pair.low, by_norm.low) and torch.equal(by_pair.high, by_norm.high)
    assert get_composite("epsilon_plus_flat", norm=GTSRB).name == "epsilon_plus_flat"  # ignored: needs no bounds


def test_composite_object_takes_no_options():
    with pytest.raises(KlugerhansError):
        get_composite(get_composite("epsilon_plus"), epsilon=1.0)
