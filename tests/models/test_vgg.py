import pytest
import torch
import torchvision

from klugerhans.errors import KlugerhansError
from klugerhans.models.vgg import ModelConfig, create_model


def test_features_have_torchvision_vgg11_bn_layout():
    ours = create_model(width=1.0).features
    theirs = torchvision.models.vgg11_bn(weights=None).features
    assert [type(m) for m in ours] == [type(m) for m in theirs]
    for a, b in zip(ours, theirs, strict=True):
        if isinstance(a, torch.nn.Conv2d):
            assert a.weight.shape == b.weight.shape


@pytest.mark.parametrize("size", [32, 48, 64])
def test_input_sizes(size):
    model = create_model(width=0.125, input_size=size).eval()
    assert model(torch.randn(2, 3, size, size)).shape == (2, 43)


def test_width_scales_parameters():
    small = sum(p.numel() for p in create_model(width=0.5).parameters())
    full = sum(p.numel() for p in create_model(width=1.0).parameters())
    assert 0.2 < small / full < 0.3


@pytest.mark.parametrize("kwargs", [{"width": 0}, {"input_size": 40}, {"arch": "resnet"}, {"num_classes": 1}])
def test_bad_config(kwargs):
    with pytest.raises(KlugerhansError):
        ModelConfig(**kwargs)
