"""Canonization: a flat chain with BatchNorm merged that computes the model's eval-mode output."""

import pytest
import torch
from torch import nn

from klugerhans.errors import KlugerhansError
from klugerhans.explain.canonizers import Affine, AvgPool, Elementwise, Flatten, MaxPool, canonize


def _run_chain(chain, x):
    for layer in chain:
        if isinstance(layer, MaxPool):
            x = layer.forward_with_indices(x)[0]
        elif isinstance(layer, Flatten):
            x = torch.flatten(x, layer.start_dim)
        else:
            x = layer.forward(x)
    return x


@pytest.mark.parametrize("model_name", ["vgg_bn", "vgg_plain"])
def test_chain_computes_the_model(model_name, request):
    model = request.getfixturevalue(model_name)
    x = torch.randn(3, 3, 32, 32)
    chain = canonize(model)
    with torch.no_grad():
        torch.testing.assert_close(_run_chain(chain, x), model(x), rtol=1e-5, atol=1e-5)


def test_batch_norm_is_merged_into_the_conv(vgg_bn):
    chain = canonize(vgg_bn)
    kinds = [type(layer).__name__ for layer in chain]
    assert "BatchNorm" not in str([getattr(layer, "kind", "") for layer in chain])
    assert kinds.count("Affine") == 10 and kinds.count("MaxPool") == 5 and kinds.count("AvgPool") == 1
    assert isinstance(chain[-5], Flatten)  # VGG.forward flattens between avgpool and classifier


def test_lone_batch_norm_stays_a_pass_through_layer():
    bn = nn.BatchNorm1d(4).eval()
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    model = nn.Sequential(bn, nn.Linear(4, 3), nn.BatchNorm1d(3).eval())
    chain = canonize(model)
    assert isinstance(chain[0], Elementwise) and chain[0].kind == "batchnorm"
    assert len(chain) == 2 and isinstance(chain[1], Affine)  # the second BatchNorm merged into the Linear
    x = torch.randn(5, 4)
    with torch.no_grad():
        torch.testing.assert_close(_run_chain(chain, x), model(x))


def test_conv_without_bias_gets_zero_bias():
    chain = canonize(nn.Sequential(nn.Conv2d(3, 4, 3, bias=False)))
    assert isinstance(chain[0], Affine) and torch.equal(chain[0].bias, torch.zeros(4))


def test_chain_owns_its_tensors(vgg_plain):
    chain = canonize(vgg_plain)
    first = chain[0]
    assert isinstance(first, Affine)
    assert first.weight.data_ptr() != vgg_plain.features[0].weight.data_ptr()
    assert not first.weight.requires_grad


@pytest.mark.parametrize(
    "model",
    [
        nn.Sequential(nn.Conv2d(4, 4, 3, groups=2)),
        nn.Sequential(nn.Conv2d(3, 4, 3, padding="same")),
        nn.Sequential(nn.Linear(3, 3), nn.Sigmoid()),
        nn.Sequential(nn.ReLU()),
        nn.Sequential(nn.Sequential(nn.Linear(3, 3)), nn.ModuleList([nn.Linear(3, 3)])),
        nn.Sequential(nn.AdaptiveAvgPool2d((None, 2)), nn.Flatten(), nn.Linear(6, 2)),
    ],
)
def test_unsupported_layers_raise(model):
    with pytest.raises(KlugerhansError):
        canonize(model)


def test_avgpool_identity_detection():
    pool = AvgPool(output_size=(2, 2))
    assert pool.is_identity(torch.zeros(1, 3, 2, 2))
    assert not pool.is_identity(torch.zeros(1, 3, 4, 4))


@pytest.mark.parametrize(
    ("pool", "size"),
    [
        (AvgPool(output_size=(7, 7)), (1, 1)),
        (AvgPool(output_size=(7, 7)), (2, 2)),
        (AvgPool(output_size=(3, 2)), (5, 7)),
        (AvgPool(None, (3, 3), (2, 2), (1, 1), ceil_mode=True, count_include_pad=False), (6, 5)),
        (AvgPool(None, (2, 3), (2, 1), (0, 1), ceil_mode=False, count_include_pad=True), (5, 5)),
    ],
)
def test_avgpool_transpose_is_its_gradient(pool, size):
    x = torch.randn(2, 3, *size, requires_grad=True)
    y = pool.forward(x)
    s = torch.randn_like(y)
    (grad,) = torch.autograd.grad(y, x, s)
    torch.testing.assert_close(pool.transpose(s, x.shape), grad)
