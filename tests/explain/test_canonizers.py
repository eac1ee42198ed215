"""Canonization: a graph with BatchNorm merged that computes the model's eval-mode output."""

import pytest
import torch
from lrp_reference import randomize, run_graph
from torch import nn

from klugerhans.errors import KlugerhansError
from klugerhans.explain import LRP
from klugerhans.explain.canonizers import canonize
from klugerhans.explain.layers import Affine, AvgPool


def test_graph_computes_the_model_and_is_a_chain_for_vgg(vgg_bn, vgg_plain):
    x = torch.randn(3, 3, 32, 32)
    for model in (vgg_bn, vgg_plain):
        nodes = canonize(model)
        assert all(node.inputs == (i - 1,) for i, node in enumerate(nodes))  # VGG: a chain, input first
        with torch.no_grad():
            torch.testing.assert_close(run_graph(nodes, x), model(x), rtol=1e-5, atol=1e-5)


def test_batch_norm_is_merged_into_the_conv(vgg_bn):
    layers = [node.layer for node in canonize(vgg_bn)]
    kinds = [type(layer).__name__ for layer in layers]
    assert "batchnorm" not in [getattr(layer, "kind", "") for layer in layers]
    assert kinds.count("Affine") == 10 and kinds.count("MaxPool") == 5 and kinds.count("AvgPool") == 1
    assert "Flatten" in kinds  # VGG.forward flattens between avgpool and classifier
    assert "Dropout" not in str(layers) and "identity" not in [getattr(layer, "kind", "") for layer in layers]


def test_batch_norm_before_a_dense_layer_is_merged_into_it():
    bn = nn.BatchNorm1d(4).eval()
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.bias.uniform_(-1, 1)
    model = nn.Sequential(bn, nn.Linear(4, 3), nn.BatchNorm1d(3).eval())
    nodes = canonize(model)
    assert len(nodes) == 1 and isinstance(nodes[0].layer, Affine)  # both BatchNorms merged into the Linear
    x = torch.randn(5, 4)
    with torch.no_grad():
        torch.testing.assert_close(run_graph(nodes, x), model(x))


def test_batch_norm_between_relus_stays_a_pass_through_layer():
    model = randomize(
        nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 3, padding=1)), 0
    )
    nodes = canonize(model)
    assert [getattr(node.layer, "kind", type(node.layer).__name__) for node in nodes] == [
        "Affine",
        "relu",
        "batchnorm",
        "relu",
        "Affine",
    ]
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(run_graph(nodes, x), model(x), rtol=1e-5, atol=1e-6)


def test_conv_without_bias_gets_zero_bias():
    (node,) = canonize(nn.Sequential(nn.Conv2d(3, 4, 3, bias=False)))
    assert isinstance(node.layer, Affine) and torch.equal(node.layer.bias, torch.zeros(4))


def test_graph_owns_its_tensors(vgg_plain):
    first = canonize(vgg_plain)[0].layer
    assert isinstance(first, Affine)
    assert first.weight.data_ptr() != vgg_plain.features[0].weight.data_ptr()
    assert not first.weight.requires_grad


@pytest.mark.parametrize(
    "model",
    [
        nn.Sequential(nn.Conv2d(3, 4, 3, padding="same")),
        nn.Sequential(nn.Linear(3, 3), nn.Sigmoid()),
        nn.Sequential(nn.ReLU()),
        nn.Sequential(nn.Sequential(nn.Linear(3, 3)), nn.ModuleList([nn.Linear(3, 3)])),
        nn.Sequential(nn.AdaptiveAvgPool2d((None, 2)), nn.Flatten(), nn.Linear(6, 2)),
    ],
)
def test_unsupported_layers_raise(model):
    with pytest.raises(KlugerhansError):
        LRP(model)


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
