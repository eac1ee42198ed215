"""Parameter randomisation and Spearman correlation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from klugerhans.audit.sanity import parameter_layers, randomized_models, sanity_check, spearman_rows
from klugerhans.models.vgg import create_model


def test_spearman_matches_scipy() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4, 30))
    b = a + rng.normal(scale=0.5, size=(4, 30))
    b[3] = np.round(b[3])  # ties
    for absolute in (False, True):
        got = spearman_rows(a, b, absolute)
        fa, fb = (np.abs(a), np.abs(b)) if absolute else (a, b)
        want = [spearmanr(fa[i], fb[i]).statistic for i in range(4)]
        np.testing.assert_allclose(got, want, rtol=1e-10)
    assert spearman_rows(np.ones((1, 5)), a[:1, :5])[0] == 0.0


@pytest.mark.parametrize("mode", ["cascading", "independent"])
def test_randomisation_leaves_model_alone(mode: str) -> None:
    torch.manual_seed(0)
    model = create_model(width=0.125, num_classes=5).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    names = [n for n, _ in parameter_layers(model)]
    steps = list(
        (name, {k: v.clone() for k, v in m.state_dict().items()}) for name, m in randomized_models(model, mode)
    )
    assert [s[0] for s in steps] == names[::-1]
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    last = steps[-1][1]
    changed = [n for n in names if not torch.equal(last[f"{n}.weight"], before[f"{n}.weight"])]
    assert changed == (names if mode == "cascading" else names[:1])


def test_sanity_check_shapes_and_random_baseline() -> None:
    torch.manual_seed(0)
    model = create_model(width=0.125, num_classes=5).eval()
    x = torch.randn(3, 3, 32, 32)
    t = torch.tensor([0, 1, 2])
    out = sanity_check(model, ["lrp:epsilon_plus_flat", "gradient", "random"], x, t, seed=0)
    n_layers = len(parameter_layers(model))
    for entry in out.values():
        assert len(entry["spearman"]) == len(entry["layers"]) == n_layers
        assert all(-1.0 <= v <= 1.0 for v in entry["spearman"])
    assert abs(np.mean(out["random"]["spearman"])) < 0.1
