"""Pixel flipping / region perturbation and AOPC against a naive image-by-image loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from klugerhans.audit.faithfulness import aopc, region_order, region_perturbation, uniform_fill
from klugerhans.errors import KlugerhansError


def _naive_curves(forward, x, relevance, targets, fill, region, steps):
    n, _, h, w = x.shape
    out = np.zeros((n, steps + 1))
    for i in range(n):
        cells = []
        for gy in range(h // region):
            for gx in range(w // region):
                s = float(relevance[i, gy * region : (gy + 1) * region, gx * region : (gx + 1) * region].sum())
                cells.append((-s, gy * (w // region) + gx, gy, gx))
        cells.sort()
        img = x[i].clone()
        out[i, 0] = forward(img[None])[0, targets[i]]
        for k in range(steps):
            _, _, gy, gx = cells[k]
            sl = (slice(None), slice(gy * region, (gy + 1) * region), slice(gx * region, (gx + 1) * region))
            img[sl] = fill[i][sl]
            out[i, k + 1] = forward(img[None])[0, targets[i]]
    return out


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(4 * 8 * 8, 3)
    ).eval()


def test_batched_curves_match_naive_loop() -> None:
    model = _model()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(5, 3, 8, 8, generator=gen)
    relevance = torch.randn(5, 8, 8, generator=gen)
    relevance[0] = 1.0  # all ties: raster order
    targets = torch.tensor([0, 1, 2, 0, 1])
    fill = uniform_fill(tuple(x.shape), seed=3)
    with torch.no_grad():
        got = region_perturbation(model, x, relevance, targets, fill, region=2, steps=7, batch_size=2)
        want = _naive_curves(model, x, relevance, targets, fill, 2, 7)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-5)
    assert aopc(got) == pytest.approx(float(np.mean(want[:, :1] - want)), rel=1e-5, abs=1e-7)  # float32 sums


def test_aopc_formula_and_order() -> None:
    curves = torch.tensor([[3.0, 2.0, 0.0], [1.0, 1.0, 1.0]])
    # image 1: (0 + 1 + 3) / 3; image 2: 0 -> mean 2/3
    assert aopc(curves) == pytest.approx(2 / 3)
    order = region_order(torch.tensor([[[0.0, 0.0, 5.0, 5.0], [0.0, 0.0, 5.0, 5.0]]]), 2)
    assert order.tolist() == [[1, 0]]


def test_faithful_map_beats_reversed_map() -> None:
    """On a linear model the weights themselves are the most faithful heatmap; their negation the least."""
    torch.manual_seed(0)
    linear = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 2)).eval()
    x = torch.rand(4, 3, 8, 8) + 0.5
    contrib = (linear[1].weight[0].view(3, 8, 8) * x).sum(1).detach()
    fill = torch.zeros_like(x)
    t = torch.zeros(4, dtype=torch.long)
    good = aopc(region_perturbation(linear, x, contrib, t, fill, 2, 8))
    bad = aopc(region_perturbation(linear, x, -contrib, t, fill, 2, 8))
    assert good > 0 > bad


def test_bad_arguments() -> None:
    with pytest.raises(KlugerhansError, match="must divide"):
        region_order(torch.zeros(1, 8, 8), 3)
    x = torch.zeros(1, 3, 8, 8)
    with pytest.raises(KlugerhansError, match="steps"):
        region_perturbation(_model(), x, torch.zeros(1, 8, 8), torch.zeros(1), torch.zeros_like(x), 4, 5)
