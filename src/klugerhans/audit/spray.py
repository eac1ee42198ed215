"""SpRAy: Spectral Relevance Analysis (Lapuschkin et al. 2019, "Unmasking Clever Hans predictors and assessing what
machines really learn").

For one class: take the heatmaps of its correctly classified images (explaining that class), downsample them,
connect every heatmap to its nearest neighbours, and look at the spectrum of the graph's normalised Laplacian. A few
near-zero eigenvalues followed by a large gap (the eigengap) mean the model uses a few clearly distinct strategies
for the class, e.g. "look at the sign" for most images and "look at the watermark" for others. Spectral clustering
splits the heatmaps into that many groups; the mean heatmap of each group (its prototype) and its most typical
images show what each strategy looks at. A 2-D spectral embedding and a t-SNE view (van der Maaten & Hinton 2008)
draw the groups. The graph, embedding, clustering and t-SNE come from scikit-learn.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from klugerhans.errors import KlugerhansError

__all__ = ["SprayConfig", "SprayResult", "downsample_maps", "spray_class", "spray_features", "tsne_view"]


@dataclass(frozen=True)
class SprayConfig:
    """Settings of the spectral relevance analysis."""

    grid: int = 8
    """Heatmaps are sum-pooled to ``grid x grid`` cells before the analysis (SpRAy works on coarse maps)."""
    n_neighbors: int = 10
    """Neighbours per heatmap in the affinity graph."""
    max_clusters: int = 8
    """Largest number of clusters the eigengap may choose."""
    min_images: int = 12
    """Classes with fewer correctly classified images are not analysed."""
    n_examples: int = 4
    """Example images kept per cluster (those closest to the cluster mean)."""
    seed: int = 0
    """Seed of the clustering and embeddings."""

    def __post_init__(self) -> None:
        if self.grid < 1:
            raise KlugerhansError(f"SpRAy grid must be at least 1, got {self.grid}")
        if self.n_neighbors < 1 or self.max_clusters < 2:
            raise KlugerhansError("SpRAy needs at least 1 neighbour and at least 2 candidate clusters")
        if self.min_images < 3 or self.n_examples < 1:
            raise KlugerhansError("SpRAy needs at least 3 images per class and 1 example per cluster")


@dataclass(frozen=True)
class SprayResult:
    """SpRAy of one class."""

    class_id: int
    eigenvalues: np.ndarray
    """(m,) smallest eigenvalues of the normalised graph Laplacian, ascending."""
    eigengap: float
    """Largest gap between consecutive eigenvalues among the first ``max_clusters + 1``."""
    n_clusters: int
    """Number of clusters the eigengap suggests (1 = one strategy)."""
    labels: np.ndarray
    """(n,) cluster of each analysed heatmap."""
    embedding: np.ndarray
    """(n, 2) spectral embedding."""
    prototypes: np.ndarray
    """(n_clusters, g, g) mean downsampled heatmap of each cluster."""
    examples: tuple[np.ndarray, ...]
    """Per cluster, the row indices (into the class's heatmaps) of its most typical members."""

    @property
    def cluster_sizes(self) -> list[int]:
        return np.bincount(self.labels, minlength=self.n_clusters).tolist()

    def summary(self) -> dict[str, object]:
        """JSON-ready numbers (no per-image arrays)."""
        return {
            "n": len(self.labels),
            "eigenvalues": [float(v) for v in self.eigenvalues],
            "eigengap": float(self.eigengap),
            "n_clusters": int(self.n_clusters),
            "cluster_sizes": self.cluster_sizes,
        }


def downsample_maps(relevance: torch.Tensor | np.ndarray, grid: int) -> np.ndarray:
    """(N, H, W) relevance -> (N, grid, grid) float32 relevance summed over equal blocks (adaptive pooling)."""
    r = torch.as_tensor(relevance).float()
    if r.ndim != 3:
        raise KlugerhansError(f"relevance must be (N, H, W), got {tuple(r.shape)}")
    pooled = torch.nn.functional.adaptive_avg_pool2d(r[:, None], grid)[:, 0]
    return (pooled * (r.shape[1] * r.shape[2] / grid**2)).numpy()


def spray_features(maps: np.ndarray) -> np.ndarray:
    """(n, g, g) downsampled heatmaps -> (n, g*g) features, each scaled to unit L1 norm.

    Scaling removes the logit's magnitude, so images group by *where* relevance lies, not by how confident the
    model is.
    """
    x = np.asarray(maps, dtype=np.float64).reshape(len(maps), -1)
    norm = np.abs(x).sum(axis=1, keepdims=True)
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)


def _affinity(features: np.ndarray, n_neighbors: int) -> object:
    from sklearn.neighbors import kneighbors_graph

    graph = kneighbors_graph(features, n_neighbors=n_neighbors, mode="connectivity", include_self=False)
    return 0.5 * (graph + graph.T)  # symmetric, as scikit-learn's SpectralEmbedding builds it


def _laplacian_spectrum(affinity: object, count: int) -> np.ndarray:
    from scipy.sparse import csgraph

    lap = csgraph.laplacian(affinity, normed=True)
    dense = lap.toarray() if hasattr(lap, "toarray") else np.asarray(lap)
    return np.clip(np.linalg.eigvalsh(dense)[:count], 0.0, None)


def spray_class(maps: np.ndarray, class_id: int, config: SprayConfig | None = None) -> SprayResult:
    """Run SpRAy on the (n, g, g) downsampled heatmaps of one class.

    Raises:
        KlugerhansError: fewer than ``config.min_images`` heatmaps.
    """
    from sklearn.cluster import SpectralClustering
    from sklearn.manifold import SpectralEmbedding

    config = config or SprayConfig()
    maps = np.asarray(maps, dtype=np.float32)
    n = len(maps)
    if n < config.min_images:
        raise KlugerhansError(f"SpRAy needs at least {config.min_images} heatmaps of class {class_id}, got {n}")
    features = spray_features(maps)
    neighbors = min(config.n_neighbors, n - 1)
    affinity = _affinity(features, neighbors)
    m = min(config.max_clusters + 1, n)
    eigenvalues = _laplacian_spectrum(affinity, m)
    gaps = np.diff(eigenvalues)
    k = int(np.argmax(gaps)) + 1 if len(gaps) else 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "graph is not fully connected": expected for well-separated strategies
        if k >= 2:
            labels = SpectralClustering(
                n_clusters=k, affinity="precomputed", random_state=config.seed, n_init=10
            ).fit_predict(affinity)
        else:
            labels = np.zeros(n, dtype=np.int64)
        embedding = SpectralEmbedding(n_components=2, affinity="precomputed", random_state=config.seed).fit_transform(
            affinity
        )
    labels = _relabel_by_size(np.asarray(labels, dtype=np.int64))
    k = int(labels.max()) + 1
    prototypes = np.stack([maps[labels == j].mean(axis=0) for j in range(k)])
    examples = []
    for j in range(k):
        members = np.flatnonzero(labels == j)
        centre = features[members].mean(axis=0)
        dist = np.linalg.norm(features[members] - centre, axis=1)
        examples.append(members[np.argsort(dist, kind="stable")[: config.n_examples]])
    return SprayResult(
        class_id=int(class_id),
        eigenvalues=eigenvalues,
        eigengap=float(gaps.max()) if len(gaps) else 0.0,
        n_clusters=k,
        labels=labels,
        embedding=np.asarray(embedding, dtype=np.float32),
        prototypes=prototypes,
        examples=tuple(examples),
    )


def _relabel_by_size(labels: np.ndarray) -> np.ndarray:
    """Renumber clusters so cluster 0 is the largest (stable, deterministic reports)."""
    ids, counts = np.unique(labels, return_counts=True)
    order = ids[np.argsort(-counts, kind="stable")]
    mapping = np.empty(int(ids.max()) + 1, dtype=np.int64)
    mapping[order] = np.arange(len(order))
    return mapping[labels]


EXACT_TSNE_LIMIT = 1000
"""Up to this many points t-SNE runs exactly: faster than Barnes-Hut at these sizes (10x at 100-300 points on a
2-core CPU, where Barnes-Hut's threads also fight PyTorch's) and without its approximation."""


def tsne_view(maps: np.ndarray, seed: int = 0) -> np.ndarray:
    """(n, g, g) downsampled heatmaps -> (n, 2) t-SNE coordinates (scikit-learn, PCA initialisation)."""
    from sklearn.manifold import TSNE

    features = spray_features(maps)
    n = len(features)
    if n < 4:
        raise KlugerhansError(f"t-SNE needs at least 4 heatmaps, got {n}")
    perplexity = float(min(30.0, max(2.0, (n - 1) / 3)))
    return np.asarray(
        TSNE(
            n_components=2,
            perplexity=perplexity,
            init="pca",
            random_state=seed,
            method="exact" if n <= EXACT_TSNE_LIMIT else "barnes_hut",
        ).fit_transform(features),
        dtype=np.float32,
    )
