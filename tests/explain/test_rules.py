"""Each rule against a naive re-derivation of its formula and against zennit's hook on one tiny layer.

The naive versions write a layer as a dense matrix ``M`` (J outputs x I inputs; for a convolution the matrix of
all its receptive fields) and evaluate the papers' sums over contributions ``z_ij`` with einsum, with no
convolution transpose and no shortcut for non-negative inputs.
"""

import pytest
import torch
import torch.nn.functional as F
import zennit.rules as zr

from klugerhans.errors import KlugerhansError
from klugerhans.explain.layers import Affine, AvgPool
from klugerhans.explain.rules import LRP0, AlphaBeta, Epsilon, Flat, Gamma, Norm, WSquare, ZBox, ZPlus, stabilize

LOW = torch.tensor([-1.5, -2.0], dtype=torch.float64)
HIGH = torch.tensor([2.0, 1.5], dtype=torch.float64)


@pytest.fixture(autouse=True)
def _float64():
    """Compare in float64 so the naive sums and ours differ by rounding only far below the tolerances."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def _stab(z, eps=1e-6):
    sign = torch.where(z == 0, torch.ones_like(z), z.sign())
    return z + eps * sign


def _dense(layer: Affine, in_shape, weight=None):
    """(J, I) matrix of ``x -> F(x, weight)`` for one sample of shape ``in_shape``."""
    eye = torch.eye(int(torch.tensor(in_shape).prod())).view(-1, *in_shape)
    cols = layer.apply(eye, layer.weight if weight is None else weight)  # (I, *out_shape)
    return cols.reshape(cols.shape[0], -1).T


def _dense_bias(layer: Affine, in_shape, bias):
    zero = torch.zeros(1, *in_shape)
    return layer.apply(zero, torch.zeros_like(layer.weight), bias).flatten()


def _naive(rule, layer: Affine, x, r):
    """Relevance of the inputs of ``layer`` from the rule's textbook formula."""
    shape = x.shape[1:]
    m = _dense(layer, shape)
    b = _dense_bias(layer, shape, layer.bias)
    xf, rf = x.flatten(1), r.flatten(1)
    xp, xn = xf.clamp(min=0), xf.clamp(max=0)
    mp, mn = m.clamp(min=0), m.clamp(max=0)

    def redistribute(contrib, denom_bias, rel, eps):  # contrib: (N, J, I) z_ij
        return torch.einsum("nji,nj->ni", contrib, rel / _stab(contrib.sum(2) + denom_bias, eps))

    if isinstance(rule, Epsilon | LRP0):
        eps = rule.epsilon if isinstance(rule, Epsilon) else 0.0
        out = redistribute(torch.einsum("ni,ji->nji", xf, m), b, rf, eps)
    elif isinstance(rule, ZPlus):
        contrib = torch.einsum("ni,ji->nji", xp, mp) + torch.einsum("ni,ji->nji", xn, mn)
        out = redistribute(contrib, b.clamp(min=0), rf, rule.stabilizer)
    elif isinstance(rule, AlphaBeta):
        pos = torch.einsum("ni,ji->nji", xp, mp) + torch.einsum("ni,ji->nji", xn, mn)
        neg = torch.einsum("ni,ji->nji", xp, mn) + torch.einsum("ni,ji->nji", xn, mp)
        out = rule.alpha * redistribute(pos, b.clamp(min=0), rf, rule.stabilizer) - rule.beta * redistribute(
            neg, b.clamp(max=0), rf, rule.stabilizer
        )
    elif isinstance(rule, Gamma):
        g = rule.gamma
        up, down = m + g * mp, m + g * mn
        y = xf @ m.T + b
        pos = torch.einsum("ni,ji->nji", xp, up) + torch.einsum("ni,ji->nji", xn, down)
        neg = torch.einsum("ni,ji->nji", xp, down) + torch.einsum("ni,ji->nji", xn, up)
        out = redistribute(pos, b + g * b.clamp(min=0), rf * (y > 0), rule.stabilizer)
        out = out + redistribute(neg, b + g * b.clamp(max=0), rf * (y < 0), rule.stabilizer)
    elif isinstance(rule, ZBox):
        channels = x.shape[1]
        lo = LOW[:channels].view(-1, *[1] * (x.ndim - 2)).expand(shape).flatten()
        hi = HIGH[:channels].view(-1, *[1] * (x.ndim - 2)).expand(shape).flatten()
        contrib = torch.einsum("ni,ji->nji", xf, m) - lo * mp - hi * mn
        out = redistribute(contrib, b - b.clamp(min=0) - b.clamp(max=0), rf, rule.stabilizer)
    elif isinstance(rule, WSquare):
        contrib = (m**2).expand(len(x), *m.shape)
        out = redistribute(contrib, b**2, rf, rule.stabilizer)
    elif isinstance(rule, Flat):
        connected = _dense(layer, shape, torch.ones_like(layer.weight))  # 1 where input i feeds output j
        out = redistribute(connected.expand(len(x), *m.shape), torch.zeros_like(b), rf, rule.stabilizer)
    else:
        raise AssertionError(rule)
    return out.view_as(x)


def _conv(stride=1, padding=1, cin=2, cout=3, seed=0, groups=1):
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(cout, cin // groups, 3, 3, generator=gen)
    b = torch.randn(cout, generator=gen) * 0.5
    return Affine(w, b, "conv", (stride, stride), (padding, padding), (1, 1), groups)


def _linear(seed=0):
    gen = torch.Generator().manual_seed(seed)
    return Affine(torch.randn(4, 2, generator=gen), torch.randn(4, generator=gen) * 0.5, "fc")


RULES = [
    LRP0(),
    Epsilon(),
    Epsilon(0.25),
    ZPlus(),
    AlphaBeta(2.0, 1.0),
    AlphaBeta(1.0, 0.0),
    Gamma(),
    Gamma(1.0),
    ZBox(LOW, HIGH),
    WSquare(),
    Flat(),
]


def _run(rule, layer, x, r, nonnegative):
    prop = rule.bind(layer, nonnegative_input=nonnegative)
    y, saved = prop.forward(x)
    return y, prop.backward(saved, r.clone())


@pytest.mark.parametrize("rule", RULES, ids=repr)
@pytest.mark.parametrize("kind", ["linear", "conv", "conv_stride2", "conv_groups", "linear_channels_last"])
@pytest.mark.parametrize("nonnegative", [False, True])
def test_rule_matches_naive_formula(rule, kind, nonnegative):
    gen = torch.Generator().manual_seed(1)
    if kind == "linear_channels_last" and isinstance(rule, ZBox):
        pytest.skip("ZBox bounds are per channel of an image")
    if kind == "linear":
        layer, x = _linear(), torch.randn(3, 2, generator=gen)
    elif kind == "linear_channels_last":  # ConvNeXt's pointwise layers: dense on the last axis of (N, H, W, C)
        layer, x = _linear(), torch.randn(3, 2, 3, 2, generator=gen)
    elif kind == "conv_groups":  # two groups: one input channel and two outputs each
        layer, x = _conv(cin=2, cout=4, groups=2), torch.randn(3, 2, 5, 5, generator=gen)
    else:
        layer = _conv(stride=2 if kind == "conv_stride2" else 1)
        x = torch.randn(3, 2, 5, 5, generator=gen)  # odd size: the stride-2 transpose must restore it
    if nonnegative:
        x = x.clamp(min=0)
    y = layer.forward(x)
    r = torch.randn(y.shape, generator=gen)
    y_rule, ours = _run(rule, layer, x, r, nonnegative)
    torch.testing.assert_close(y_rule, y)  # the rule's forward is the layer's
    naive = _naive(rule, layer, x, r)
    torch.testing.assert_close(ours, naive, rtol=1e-9, atol=1e-9 * float(naive.abs().max()))


def _zennit_rule(rule):
    mapping = {
        Epsilon: lambda r: zr.Epsilon(epsilon=r.epsilon),
        ZPlus: lambda r: zr.ZPlus(stabilizer=r.stabilizer),
        AlphaBeta: lambda r: zr.AlphaBeta(alpha=r.alpha, beta=r.beta, stabilizer=r.stabilizer),
        Gamma: lambda r: zr.Gamma(gamma=r.gamma, stabilizer=r.stabilizer),
        ZBox: lambda r: zr.ZBox(low=LOW.view(1, 2, 1, 1), high=HIGH.view(1, 2, 1, 1), stabilizer=r.stabilizer),
        WSquare: lambda r: zr.WSquare(stabilizer=r.stabilizer),
        Flat: lambda r: zr.Flat(stabilizer=r.stabilizer),
    }
    return mapping[type(rule)](rule)


@pytest.mark.parametrize("rule", [r for r in RULES if not isinstance(r, LRP0)], ids=repr)
@pytest.mark.parametrize("stride", [1, 2])
def test_rule_matches_zennit_hook(rule, stride):
    gen = torch.Generator().manual_seed(2)
    module = torch.nn.Conv2d(2, 3, 3, stride=stride, padding=1)
    layer = Affine(module.weight.detach().clone(), module.bias.detach().clone(), "c", (stride, stride), (1, 1), (1, 1))
    x = torch.randn(2, 2, 7, 7, generator=gen)
    r = torch.randn(module(x).shape, generator=gen)
    _, ours = _run(rule, layer, x, r, False)
    handles = _zennit_rule(rule).register(module)
    try:
        xg = x.clone().requires_grad_()
        (theirs,) = torch.autograd.grad(module(xg), xg, r)
    finally:
        handles.remove()
    torch.testing.assert_close(ours, theirs, rtol=1e-7, atol=1e-9 * float(theirs.abs().max()))


def test_avgpool_norm_matches_naive_formula():
    gen = torch.Generator().manual_seed(3)
    pool = AvgPool(output_size=(3, 3))
    x = torch.rand(2, 2, 5, 5, generator=gen)
    r = torch.randn(2, 2, 3, 3, generator=gen)
    prop = Norm().bind(pool)
    y, saved = prop.forward(x)
    ours = prop.backward(saved, r.clone())
    eye = torch.eye(50).view(50, 2, 5, 5)
    p = pool.forward(eye).reshape(50, -1).T  # (J, I) pooling weights
    contrib = torch.einsum("ni,ji->nji", x.flatten(1), p)
    naive = torch.einsum("nji,nj->ni", contrib, r.flatten(1) / _stab(contrib.sum(2)))
    torch.testing.assert_close(ours, naive.view_as(x))
    torch.testing.assert_close(y, F.adaptive_avg_pool2d(x, 3))


def test_stabilizer_uses_plus_sign_at_zero():
    z = torch.tensor([-2.0, -0.0, 0.0, 3.0])
    torch.testing.assert_close(stabilize(z, 0.5), torch.tensor([-2.5, 0.5, 0.5, 3.5]))


def test_lrp0_is_exactly_conservative_without_bias():
    layer = Affine(torch.randn(4, 6), torch.zeros(4), "fc")
    x = torch.randn(5, 6)
    r = torch.randn(5, 4)
    _, ours = _run(LRP0(), layer, x, r, False)
    torch.testing.assert_close(ours.sum(1), r.sum(1))


def test_zplus_ignores_negative_evidence():
    layer = Affine(torch.tensor([[1.0, -1.0]]), torch.zeros(1), "fc")
    _, ours = _run(ZPlus(), layer, torch.tensor([[1.0, 1.0]]), torch.tensor([[2.0]]), True)
    torch.testing.assert_close(ours, torch.tensor([[2.0, 0.0]]), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "make", [lambda: AlphaBeta(3.0, 1.0), lambda: AlphaBeta(-1.0, -2.0), lambda: Epsilon(-1.0), lambda: Gamma(-0.1)]
)
def test_bad_rule_parameters(make):
    with pytest.raises(KlugerhansError):
        make()


def test_zbox_needs_ordered_bounds():
    with pytest.raises(KlugerhansError):
        ZBox([1.0, 0.0], [0.0, 1.0])
