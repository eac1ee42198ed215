"""The LRP engine: equal to zennit, conservative where theory says so, batched, and harmless to the model."""

import copy

import numpy as np
import pytest
import torch
import torchvision
from lrp_reference import COMPOSITE_NAMES, randomize, zennit_relevance
from torch import nn

from klugerhans.errors import KlugerhansError
from klugerhans.explain import LRP, LRP0, Composite, Epsilon, box_bounds, compute_heatmaps
from klugerhans.heatmaps import explain_dataset
from klugerhans.models.preprocess import Normalization, to_tensor

GTSRB = Normalization()


def _zennit_options(name):
    if name != "epsilon_gamma_box":
        return {}
    low, high = box_bounds(GTSRB)
    return {"low": low.float().view(1, 3, 1, 1), "high": high.float().view(1, 3, 1, 1)}


def _relative_error(ours, theirs):
    return float((ours - theirs).abs().max() / theirs.abs().max())


@pytest.mark.parametrize("name", COMPOSITE_NAMES)
@pytest.mark.parametrize("model_name", ["vgg_bn", "vgg_plain"])
def test_equals_zennit(name, model_name, request):
    model = request.getfixturevalue(model_name)
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    expl = LRP(model, name, norm=GTSRB).attribute(x)
    theirs = zennit_relevance(model, x, name, expl.targets, **_zennit_options(name))
    assert _relative_error(expl.relevance, theirs) <= 1e-4


def _torchvision_vgg11_bn(hidden: int | None) -> nn.Module:
    torch.manual_seed(0)
    model = torchvision.models.vgg11_bn(weights=None)
    if hidden is not None:
        # same class, forward, features and classifier layout; only the 4096-wide dense layers are narrowed, since
        # their 120M weights make the full model take a minute here
        model.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, hidden),
            nn.ReLU(True),
            nn.Dropout(),
            nn.Linear(hidden, hidden),
            nn.ReLU(True),
            nn.Dropout(),
            nn.Linear(hidden, 1000),
        )
    return randomize(model, 3)


def _check_torchvision(model, size, names):
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(6))
    explainer = LRP(model)
    for name in names:
        expl = explainer.with_composite(name, norm=GTSRB).attribute(x)
        theirs = zennit_relevance(model, x, name, expl.targets, **_zennit_options(name))
        assert _relative_error(expl.relevance, theirs) <= 1e-4, name


def test_equals_zennit_on_torchvision_vgg11_bn_layout():
    # 32 px: the features give 1x1 maps that the adaptive pooling spreads to 7x7 (a non-identity Norm rule).
    # Every composite's rules are checked on our VGGs above; here the torchvision structure, with two of them.
    _check_torchvision(_torchvision_vgg11_bn(hidden=64), 32, ("epsilon_plus_flat", "epsilon_gamma_box"))


@pytest.mark.slow
def test_equals_zennit_on_torchvision_vgg11_bn():
    _check_torchvision(_torchvision_vgg11_bn(hidden=None), 64, COMPOSITE_NAMES)


def test_logits_and_default_targets_are_the_models(vgg_bn):
    x = torch.randn(4, 3, 32, 32)
    expl = compute_heatmaps(vgg_bn, x)
    with torch.no_grad():
        logits = vgg_bn(x)
    torch.testing.assert_close(expl.logits, logits, rtol=1e-5, atol=1e-5)
    assert torch.equal(expl.targets, logits.argmax(1))
    assert expl.relevance.shape == x.shape and expl.relevance.dtype == torch.float32


def _bias_free(model):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                m.bias.zero_()
    return model


@pytest.mark.parametrize("name", COMPOSITE_NAMES)
def test_conservation_without_biases(vgg_plain, name):
    """Without biases every composite's rules conserve relevance: sum R_i = target logit (up to epsilon)."""
    model = _bias_free(vgg_plain)
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(7))
    expl = compute_heatmaps(model, x, composite=name, norm=GTSRB)
    logit = expl.logits.gather(1, expl.targets[:, None])[:, 0]
    torch.testing.assert_close(expl.relevance.sum((1, 2, 3)), logit, rtol=1e-3, atol=0)


def test_lrp0_conserves_exactly_for_any_class(vgg_plain):
    model = _bias_free(vgg_plain)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(8))
    lrp0 = Composite(conv=LRP0(), linear=LRP0())
    for target in (0, 5, 42):
        expl = compute_heatmaps(model, x, target=target, composite=lrp0)
        assert torch.equal(expl.targets, torch.full((2,), target))
        torch.testing.assert_close(expl.relevance.sum((1, 2, 3)), expl.logits[:, target], rtol=1e-5, atol=1e-7)


def test_biases_absorb_relevance(vgg_bn):
    """With biases (merged BatchNorm) relevance is not conserved: the check above can fail."""
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(9))
    expl = compute_heatmaps(vgg_bn, x, composite=Composite(conv=Epsilon(), linear=Epsilon()))
    logit = expl.logits.gather(1, expl.targets[:, None])[:, 0]
    assert not torch.allclose(expl.relevance.sum((1, 2, 3)), logit, rtol=1e-3)


def test_init_one_is_relevance_per_unit_logit(vgg_bn):
    x = torch.randn(3, 3, 32, 32)
    target = torch.tensor([1, 2, 3])
    by_logit = compute_heatmaps(vgg_bn, x, target)
    by_one = compute_heatmaps(vgg_bn, x, target, init="one")
    scale = by_logit.logits.gather(1, target[:, None])[:, :, None, None]
    torch.testing.assert_close(by_logit.relevance, by_one.relevance * scale, rtol=1e-5, atol=1e-8)


def test_batches_do_not_change_results(vgg_bn):
    x = torch.randn(5, 3, 32, 32)
    target = torch.tensor([0, 1, 2, 3, 4])
    whole = compute_heatmaps(vgg_bn, x, target, batch_size=64)
    pieces = compute_heatmaps(vgg_bn, x, target, batch_size=2)
    torch.testing.assert_close(pieces.relevance, whole.relevance, rtol=1e-5, atol=1e-8)
    assert torch.equal(pieces.targets, target)


def _snapshot(model):
    return {
        "state": {k: v.clone() for k, v in model.state_dict(keep_vars=True).items()},
        "ids": {k: id(v) for k, v in model.state_dict(keep_vars=True).items()},
        "training": [m.training for m in model.modules()],
        "grad": [p.requires_grad for p in model.parameters()],
        "hooks": [
            (dict(m._forward_hooks), dict(m._forward_pre_hooks), dict(m._backward_hooks)) for m in model.modules()
        ],
    }


def _assert_same(model, before):
    after = _snapshot(model)
    assert after["ids"] == before["ids"]
    for key, value in before["state"].items():
        assert torch.equal(after["state"][key], value), key
    for key in ("training", "grad", "hooks"):
        assert after[key] == before[key], key


@pytest.fixture
def used_model(vgg_bn):
    """A model in train mode with a hook and a frozen layer: everything LRP must leave alone."""
    vgg_bn.train()
    vgg_bn.features[0].weight.requires_grad_(False)
    vgg_bn.features[3].register_forward_hook(lambda *args: None)
    return vgg_bn


def test_model_is_left_exactly_as_it_was(used_model):
    before = _snapshot(used_model)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        eval_logits = copy.deepcopy(used_model).eval()(x)
    x_before = x.clone()
    expl = compute_heatmaps(used_model, x, composite="epsilon_gamma_box", norm=GTSRB)
    _assert_same(used_model, before)
    assert torch.equal(x, x_before)
    # explained in eval mode whatever the model's mode
    torch.testing.assert_close(expl.logits, eval_logits, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "call",
    [
        lambda m: compute_heatmaps(m, torch.randn(2, 3, 32, 32), target=43),
        lambda m: compute_heatmaps(m, torch.randn(2, 3, 32, 32), target=torch.tensor([1.5, 2.0])),
        lambda m: compute_heatmaps(m, torch.randn(2, 3, 32, 32), target=[1, 2, 3]),
        lambda m: compute_heatmaps(m, torch.randn(2, 4, 32, 32)),
        lambda m: compute_heatmaps(m, torch.randn(2, 3, 16, 16)),
        lambda m: compute_heatmaps(m, torch.randn(2, 3, 32, 32), composite="nope"),
        lambda m: compute_heatmaps(m, torch.randn(2, 3, 32, 32), composite="epsilon_plus", gamma=3),
        lambda m: compute_heatmaps(m, torch.zeros(2, 3, 32, 32, dtype=torch.long)),
        lambda m: compute_heatmaps(m, torch.randn(2, 3, 32, 32), batch_size=0),
    ],
)
def test_bad_input_raises_and_leaves_model(used_model, call):
    before = _snapshot(used_model)
    with pytest.raises(KlugerhansError):
        call(used_model)
    _assert_same(used_model, before)


def test_unsupported_models_are_refused():
    class Custom(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 2)

        def forward(self, x):
            return self.fc(x) * self.fc(x)  # a product of two signals: no LRP rule

    for model in (Custom(), nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))):
        with pytest.raises(KlugerhansError):
            LRP(model)


def test_sequential_model_equals_zennit():
    torch.manual_seed(0)
    model = randomize(
        nn.Sequential(
            nn.Conv2d(3, 6, 3, padding=1),
            nn.BatchNorm2d(6),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 8, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.AvgPool2d(2),
            nn.Flatten(),
            nn.Linear(8 * 2 * 2, 5),
        ),
        4,
    )
    x = torch.randn(3, 3, 16, 16)
    for name in ("epsilon_plus_flat", "epsilon_alpha2_beta1"):
        expl = compute_heatmaps(model, x, composite=name, norm=GTSRB)
        theirs = zennit_relevance(model, x, name, expl.targets)
        assert _relative_error(expl.relevance, theirs) <= 1e-4


def test_explain_dataset_streams_uint8_images(vgg_bn):
    images = np.random.default_rng(0).integers(0, 256, size=(5, 32, 32, 3), dtype=np.uint8)
    labels = np.array([0, 1, 2, 3, 4])
    full = compute_heatmaps(vgg_bn, to_tensor(images), labels)
    summed = explain_dataset(vgg_bn, images, labels, batch_size=2)
    assert summed.relevance.shape == (5, 32, 32)
    torch.testing.assert_close(summed.relevance, full.relevance.sum(1), rtol=1e-5, atol=1e-8)
    pooled = explain_dataset(LRP(vgg_bn), images, labels, batch_size=3, pool=4)
    assert pooled.relevance.shape == (5, 8, 8)
    torch.testing.assert_close(pooled.relevance.sum((1, 2)), full.relevance.sum((1, 2, 3)), rtol=1e-4, atol=1e-7)
    kept = explain_dataset(vgg_bn, to_tensor(images), channels="keep")
    assert kept.relevance.shape == (5, 3, 32, 32)
    assert torch.equal(kept.targets, full.logits.argmax(1))


@pytest.mark.parametrize(
    "kwargs",
    [{"pool": 5}, {"pool": 0}, {"channels": "mean"}, {"batch_size": 0}, {"targets": [1, 2]}, {"composite": "x"}],
)
def test_explain_dataset_bad_options(vgg_bn, kwargs):
    images = np.zeros((3, 32, 32, 3), dtype=np.uint8)
    with pytest.raises(KlugerhansError):
        explain_dataset(vgg_bn, images, **kwargs)


def test_explain_dataset_refuses_float_images_in_uint8_layout(vgg_bn):
    with pytest.raises(KlugerhansError):
        explain_dataset(vgg_bn, np.zeros((2, 32, 32, 3), dtype=np.float32))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_equals_cpu(vgg_bn):
    x = torch.randn(3, 3, 32, 32)
    cpu = compute_heatmaps(vgg_bn, x, composite="epsilon_gamma_box", norm=GTSRB)
    gpu = compute_heatmaps(copy.deepcopy(vgg_bn).cuda(), x.cuda(), composite="epsilon_gamma_box", norm=GTSRB)
    assert gpu.relevance.is_cuda
    assert _relative_error(gpu.relevance.cpu(), cpu.relevance) <= 1e-4
