"""SpRAy finds planted strategies."""

from __future__ import annotations

import numpy as np
import pytest

from klugerhans.audit.spray import SprayConfig, downsample_maps, spray_class, spray_features, tsne_view
from klugerhans.errors import KlugerhansError


def _planted(n_a: int = 30, n_b: int = 18, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Heatmaps with relevance either top-left (strategy A) or bottom-right (strategy B), plus noise."""
    rng = np.random.default_rng(seed)
    maps = rng.normal(0, 0.05, size=(n_a + n_b, 8, 8))
    truth = np.r_[np.zeros(n_a, int), np.ones(n_b, int)]
    for i, t in enumerate(truth):
        y, x = (1, 1) if t == 0 else (5, 5)
        maps[i, y : y + 2, x : x + 2] += rng.uniform(1.0, 1.5)  # confidence varies a little
    return maps.astype(np.float32), truth


def test_two_planted_clusters_are_found() -> None:
    maps, truth = _planted()
    result = spray_class(maps, class_id=4, config=SprayConfig(seed=0))
    assert result.n_clusters == 2
    agree = max((result.labels == truth).mean(), (result.labels != truth).mean())
    assert agree == 1.0
    assert result.cluster_sizes == [30, 18]  # relabelled largest first
    assert result.prototypes.shape == (2, 8, 8)
    assert result.prototypes[1][5:, 5:].sum() > result.prototypes[1][:3, :3].sum()
    assert all(len(e) == 4 for e in result.examples)
    assert result.embedding.shape == (48, 2)
    assert result.summary()["eigengap"] == pytest.approx(result.eigengap)


def test_one_strategy_gives_one_cluster() -> None:
    rng = np.random.default_rng(1)
    maps = rng.normal(0, 0.05, size=(40, 8, 8)).astype(np.float32)
    maps[:, 3:5, 3:5] += 1.0
    assert spray_class(maps, 0).n_clusters == 1


def test_features_and_downsampling() -> None:
    r = np.arange(2 * 16 * 16, dtype=np.float32).reshape(2, 16, 16)
    small = downsample_maps(r, 4)
    assert small.shape == (2, 4, 4)
    np.testing.assert_allclose(small.sum(axis=(1, 2)), r.sum(axis=(1, 2)), rtol=1e-6)
    f = spray_features(np.stack([small[0], 3 * small[0]]))
    np.testing.assert_allclose(f[0], f[1])
    assert tsne_view(_planted(8, 8)[0]).shape == (16, 2)


def test_too_few_images() -> None:
    with pytest.raises(KlugerhansError, match="at least"):
        spray_class(np.zeros((3, 8, 8), np.float32), 1)
