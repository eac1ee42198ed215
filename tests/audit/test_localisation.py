"""Localisation metrics against naive per-pixel reference implementations."""

from __future__ import annotations

import numpy as np
import pytest

from klugerhans.audit.localisation import (
    localisation_scores,
    pointing_game,
    relevance_mass_accuracy,
    relevance_rank_accuracy,
)
from klugerhans.errors import KlugerhansError


def _naive_mass(r: np.ndarray, m: np.ndarray) -> float:
    inside = total = 0.0
    for y in range(r.shape[0]):
        for x in range(r.shape[1]):
            if r[y, x] > 0:
                total += r[y, x]
                if m[y, x]:
                    inside += r[y, x]
    return inside / total if total > 0 else 0.0


def _naive_rank(r: np.ndarray, m: np.ndarray) -> float:
    k = int(m.sum())
    if k == 0:
        return 0.0
    pixels = sorted(
        ((r[y, x], y * r.shape[1] + x) for y in range(r.shape[0]) for x in range(r.shape[1])),
        key=lambda t: (-t[0], t[1]),
    )
    top = [p for _, p in pixels[:k]]
    return sum(bool(m.flat[p]) for p in top) / k


def _naive_pointing(r: np.ndarray, m: np.ndarray, tol: int) -> bool:
    best = max(range(r.size), key=lambda p: (r.flat[p], -p))
    y, x = divmod(best, r.shape[1])
    for dy in range(-tol, tol + 1):
        for dx in range(-tol, tol + 1):
            yy, xx = y + dy, x + dx
            if 0 <= yy < m.shape[0] and 0 <= xx < m.shape[1] and m[yy, xx]:
                return True
    return False


@pytest.mark.parametrize("seed", range(4))
def test_metrics_match_naive_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    r = rng.normal(size=(6, 7, 9))
    r[0] = np.round(r[0])  # ties
    r[1] = -np.abs(r[1])  # no positive relevance
    m = rng.random((6, 7, 9)) < 0.25
    m[2] = False  # empty mask
    mass = relevance_mass_accuracy(r, m)
    rank = relevance_rank_accuracy(r, m)
    for tol in (0, 1):
        hits = pointing_game(r, m, tol)
        assert hits.tolist() == [_naive_pointing(r[i], m[i], tol) for i in range(6)]
    np.testing.assert_allclose(mass, [_naive_mass(r[i], m[i]) for i in range(6)])
    np.testing.assert_allclose(rank, [_naive_rank(r[i], m[i]) for i in range(6)])
    assert mass[1] == 0.0 and rank[2] == 0.0


def test_perfect_and_zero_localisation() -> None:
    m = np.zeros((1, 8, 8), dtype=bool)
    m[0, 2:4, 2:4] = True
    inside = np.where(m, 1.0, -0.5)
    outside = np.where(m, 0.0, 1.0)
    assert relevance_mass_accuracy(inside, m)[0] == 1.0
    assert relevance_rank_accuracy(inside, m)[0] == 1.0
    assert pointing_game(inside, m)[0]
    assert relevance_mass_accuracy(outside, m)[0] == 0.0
    assert not pointing_game(outside, m)[0]
    scores = localisation_scores(inside, m)
    assert scores["n"] == 1 and scores["mask_share"] == pytest.approx(4 / 64)


def test_shape_mismatch_is_a_one_line_error() -> None:
    with pytest.raises(KlugerhansError, match="must both be"):
        relevance_mass_accuracy(np.zeros((2, 4, 4)), np.zeros((2, 4, 5), bool))
    assert localisation_scores(np.zeros((0, 4, 4)), np.zeros((0, 4, 4), bool))["mass_accuracy"] is None


def test_mass_with_tolerance_counts_the_halo() -> None:
    m = np.zeros((1, 8, 8), dtype=bool)
    m[0, 3:5, 3:5] = True
    r = np.zeros((1, 8, 8))
    r[0, 2:6, 2:6] = 1.0  # a 1-px halo around the 2x2 mask: 4 of 16 units inside
    assert relevance_mass_accuracy(r, m)[0] == pytest.approx(0.25)
    assert relevance_mass_accuracy(r, m, tolerance=1)[0] == pytest.approx(1.0)
    assert localisation_scores(r, m)["mass_accuracy_1px"] == pytest.approx(1.0)
