"""The poison detectors a user would otherwise pick, from adversarial-robustness-toolbox (ART), scored per class.

Every baseline sees what the audit sees, a trained model and its training images (poisoned ones included), and
returns per class a continuous suspicion score (higher = more suspicious) and the classes it flags itself:

* ``activation_clustering``: Chen et al. 2018, "Detecting Backdoor Attacks on Deep Neural Networks by Activation
  Clustering"; ART ``ActivationDefence``.
* ``spectral_signatures``: Tran et al. 2018, "Spectral Signatures in Backdoor Attacks"; ART
  ``SpectralSignatureDefense``.
* ``strip``: Gao et al. 2019, "STRIP: A Defence Against Trojan Attacks on Deep Neural Networks"; ART ``STRIP``.

Both data-level detectors analyse the penultimate layer, as their papers do. ART's own choice for PyTorch is the
output of the model's last top-level child, i.e. the logits of a VGG, a ResNet or an ``nn.Sequential``, so we split
the model at its last ``nn.Linear`` (checked numerically), take the features with ART's ``get_activations`` and
hand them to the defences through an identity classifier, whose last layer ART then reads. Models without a final
linear layer fall back to ART's choice (the note says so).

ART detectors considered and left out, since they do not fit "a PyTorch model and its training set":
``ProvenanceDefense`` needs provenance (data-source) features; ``RONIDefense`` needs a trusted clean set and retrains
the model once per suspect point; ``ActivationDefence(ex_re_threshold=...)`` (exclusionary reclassification)
retrains it too; ``NeuralCleanse`` (Wang et al. 2019, trigger reverse-engineering per class) exists for Keras
models only, so :mod:`klugerhans.bench.neural_cleanse` implements it and registers it here as ``neural_cleanse``;
the ``art.defences.detector.evasion`` detectors look for adversarial examples, not backdoors.

Where ART 1.20.1 forced a choice: its "relative-size" and "silhouette-scores" cluster analyses raise (an empty float
index; with numpy 2 the truth value of an empty array), so Activation Clustering applies the paper's rule to ART's
clusters itself;
Spectral Signatures keeps ART's outlier score, which projects the uncentred features (the paper centres them);
STRIP needs probabilities (the model gets a softmax) and ART sums entropies over the superimposed copies per class
(``entropy(..., axis=0)``), not over the classes per copy as the paper does; it is used as shipped.

Images are subsampled to at most ``max_per_class`` per class (seeded), so that a 43-class set of 40k images is not
passed through ART in full; classes with fewer than 12 images (or identical features) are not scored (NaN).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import time
import unittest.mock
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import torch
from scipy.stats import binom
from torch import nn

from klugerhans.errors import KlugerhansError
from klugerhans.models.preprocess import Normalization, Normalizer
from klugerhans.registry import Registry

__all__ = ["BASELINES", "BaselineInputs", "BaselineResult", "register_baseline", "run_baselines"]

MIN_IMAGES = 12
"""Fewest images of a class for a score (ART's PCA keeps 10 dimensions and needs more samples than that)."""
STRIP_POOL = 256
"""Training images STRIP superimposes onto each input and calibrates its entropy threshold on."""


@dataclass(frozen=True)
class BaselineResult:
    """What one baseline says about one model."""

    name: str
    """Registered name of the baseline."""
    scores: dict[int, float]
    """Suspicion per class (higher = more suspicious); NaN where the class could not be scored."""
    flagged: tuple[int, ...]
    """Classes the detector itself calls poisoned, with ART's documented defaults (see the note)."""
    note: str
    """What the score and the flags mean here, and where the method does not fit the case."""
    seconds: float
    """Wall-clock seconds of the baseline, its pass for the features included (the subsampling excluded)."""


class BaselineInputs:
    """What a baseline gets: the subsampled images, the ART wrappers of the model and its penultimate features."""

    def __init__(
        self,
        model: nn.Module,
        x: np.ndarray,
        y: np.ndarray,
        norm: Normalization,
        seed: int,
        batch_size: int,
        device: str,
    ) -> None:
        self.x = x
        """(n, 3, S, S) float32 on the 0..1 scale."""
        self.y = y
        """(n,) int64 training labels."""
        self.seed, self.batch_size, self.device, self.norm = seed, batch_size, device, norm
        self.model = copy.deepcopy(model).eval().to(device)  # ART moves and re-modes its model: not the user's
        self.probe = Normalizer(norm, device)(torch.from_numpy(x[:8]).to(device))
        """A few normalised images to check the model on."""
        with torch.no_grad():
            self.num_classes = int(self.model(self.probe).shape[1])
        self.layer = "the penultimate layer"
        """Where :attr:`features` come from, in words."""
        self.used_features = False
        """Whether a baseline asked for the features (since the flag was last reset)."""
        self.feature_seconds = 0.0
        """Time the feature pass took."""
        self._features: np.ndarray | None = None

    def classifier(self, module: nn.Module) -> Any:
        """ART ``PyTorchClassifier`` around ``module`` for (n, 3, S, S) inputs in [0, 1], normalised by ART."""
        from art.estimators.classification import PyTorchClassifier

        shape = (3, 1, 1)  # channels first
        gpu = self.device.startswith("cuda")
        # ART puts the model on the *current* CUDA device: make that the one asked for
        with torch.cuda.device(torch.device(self.device)) if gpu else contextlib.nullcontext():
            return PyTorchClassifier(
                model=module,
                loss=nn.CrossEntropyLoss(),
                input_shape=tuple(self.x.shape[1:]),
                nb_classes=self.num_classes,
                clip_values=(0.0, 1.0),
                preprocessing=(np.reshape(self.norm.mean, shape), np.reshape(self.norm.std, shape)),
                device_type="gpu" if gpu else "cpu",
            )

    @cached_property
    def split(self) -> tuple[nn.Module, nn.Module] | None:
        """``(body, head)`` with ``head(body(x)) == model(x)``, the head the last ``nn.Linear``; None if that fails."""
        return _split(self.model, self.probe)

    @property
    def features(self) -> np.ndarray:
        """(n, D) activations of the layer :attr:`layer` names, by ART's ``get_activations``; computed once."""
        self.used_features = True
        if self._features is None:
            start = time.perf_counter()
            if self.split is None:
                clf = self.classifier(self.model)
                acts = clf.get_activations(self.x, layer=len(clf.layer_names) - 1, batch_size=self.batch_size)
                self.layer = "the logits (ART's default layer: the model has no final linear layer to split at)"
            else:
                clf = self.classifier(nn.Sequential(*self.split))
                acts = clf.get_activations(self.x, layer=0, batch_size=self.batch_size)
            self._features = np.reshape(acts, (len(acts), -1))
            self.feature_seconds = time.perf_counter() - start
        return self._features

    def scorable(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Classes that can be scored, and the features and 0..k-1 labels of their images, for ART's defences."""
        feats = self.features
        ok = [c for c in range(self.num_classes) if _distinct(feats[self.y == c])]
        classes = np.asarray(ok, dtype=np.int64)
        keep = np.isin(self.y, classes)
        return classes, feats[keep], np.searchsorted(classes, self.y[keep])


Outcome = tuple[dict[int, float], tuple[int, ...], str]
"""``(scores, flagged, note)`` of one baseline."""
BASELINES: Registry[Callable[..., Outcome]] = Registry("baseline")
"""Baseline detectors ``fn(inputs, **settings) -> (scores, flagged, note)`` by name; see :func:`run_baselines`."""
register_baseline = BASELINES.register


def run_baselines(
    model: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    norm: Normalization,
    *,
    names: Sequence[str] | None = None,
    seed: int = 0,
    batch_size: int = 64,
    device: str = "cpu",
    max_per_class: int | None = 200,
    settings: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, BaselineResult]:
    """Run ART's poison detectors on a trained model and its training set, scoring every class.

    Args:
        model: the trained classifier, (N, 3, S, S) normalised -> (N, C) logits; it is copied, never changed.
        images: (N, S, S, 3) uint8 training images as the model was trained on them, poisoned ones included.
        labels: (N,) int64 training labels (the poisoned ones as relabelled).
        norm: the model's input normalisation.
        names: baselines to run (default: all registered).
        seed: seeds the subsample and everything random in ART (numpy's global generator, restored afterwards).
        batch_size: images per forward pass.
        device: "cpu" or "cuda[:i]".
        max_per_class: at most this many images per class (a seeded random subset); None for all.
        settings: keyword arguments per baseline name (e.g. ``{"neural_cleanse": {"steps": 20}}``); a baseline
            not named runs with its defaults.

    Returns:
        Each baseline's :class:`BaselineResult` by name, in the order asked for.

    Raises:
        KlugerhansError: an unknown baseline name, mismatched inputs, or ART not installed.
    """
    chosen = list(BASELINES) if names is None else list(names)
    runners = {name: BASELINES.get_or_raise(name) for name in chosen}
    shapes_ok = images.ndim == 4 and images.shape[3] == 3 and images.dtype == np.uint8 and labels.ndim == 1
    if not shapes_ok or len(images) != len(labels) or len(images) == 0:
        raise KlugerhansError(f"need (N, S, S, 3) uint8 images and N labels, got {images.shape} and {labels.shape}")
    if max_per_class is not None and max_per_class < MIN_IMAGES:
        raise KlugerhansError(f"max_per_class must be at least {MIN_IMAGES} or None, got {max_per_class}")
    try:
        import art  # noqa: F401
    except ImportError:
        raise KlugerhansError("the baselines need ART: pip install 'klugerhans[bench]'") from None
    pick = _subsample(np.asarray(labels, dtype=np.int64), max_per_class, seed)
    x = images[pick].transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    inputs = BaselineInputs(model, x, np.asarray(labels, dtype=np.int64)[pick], norm, seed, batch_size, device)
    if labels.min() < 0 or labels.max() >= inputs.num_classes:
        raise KlugerhansError(f"labels must be in 0..{inputs.num_classes - 1} (the model's classes)")
    results = {}
    for name, runner in runners.items():
        shared, inputs.used_features = inputs._features is not None, False
        with _quiet_art(), _seeded(seed):
            start = time.perf_counter()
            scores, flagged, note = runner(inputs, **(settings or {}).get(name, {}))
        # each baseline is charged the feature pass it needs, even when an earlier one already paid for it
        seconds = time.perf_counter() - start + (inputs.feature_seconds if shared and inputs.used_features else 0.0)
        results[name] = BaselineResult(name, scores, flagged, note, seconds)
    return results


@register_baseline("activation_clustering")
def _activation_clustering(
    inputs: BaselineInputs, size_threshold: float = 0.35, min_silhouette: float = 0.1
) -> Outcome:
    from art.defences.detector.poison import ActivationDefence
    from sklearn.metrics import silhouette_score

    classes, feats, y = inputs.scorable()
    defence = ActivationDefence(_identity_classifier(feats.shape[1], len(classes)), feats, y)
    # ART's default analysis ("smaller") calls the smaller cluster of *every* class poison, so its decision says
    # nothing about classes. The paper's criteria are ART's "relative-size" and "silhouette-scores" analyses, but
    # both raise in ART 1.20.1 (numpy 2: the truth value of an empty array; an empty float index), so they are
    # applied here to ART's own clusters and reduced activations.
    defence.detect_poison(nb_clusters=2, nb_dims=10, reduce="PCA", cluster_analysis="smaller")
    scores = _nan_scores(inputs.num_classes)
    flagged = []
    for k, c in enumerate(classes.tolist()):
        clusters = defence.clusters_by_class[k]
        if len(np.unique(clusters)) == 2:
            scores[c] = float(silhouette_score(defence.red_activations_by_class[k], clusters))
            if np.bincount(clusters).min() < size_threshold * len(clusters) and scores[c] > min_silhouette:
                flagged.append(c)
    note = (
        f"ActivationDefence on {inputs.layer}: PCA to 10 dimensions and 2-means per class; score = the "
        f"silhouette of that clustering; flagged = the smaller cluster under {size_threshold:.0%} of the class "
        f"and a silhouette over {min_silhouette} (the rule of ART's silhouette-scores analysis, which fails in "
        "ART 1.20.1; ART's default decision flags the smaller cluster of every class)"
    )
    return scores, tuple(flagged), note


@register_baseline("spectral_signatures")
def _spectral_signatures(
    inputs: BaselineInputs, expected_pp_poison: float = 0.33, eps_multiplier: float = 1.5
) -> Outcome:
    from art.defences.detector.poison import SpectralSignatureDefense

    classes, feats, y = inputs.scorable()
    scores = _nan_scores(inputs.num_classes)
    for k, c in enumerate(classes.tolist()):
        # ART's outlier score per image, |<v, r>| with v the top right-singular vector of the centred features
        outlier = SpectralSignatureDefense.spectral_signature_scores(feats[y == k])[:, 0]
        # ART's cut: the top eps_multiplier x expected_pp_poison share is removed as poison
        removed = outlier >= np.quantile(outlier, max(1.0 - eps_multiplier * expected_pp_poison, 0.0))
        # How far the removed share stands out: near 1 when the class spreads little along v, large when a
        # subpopulation lies far out along it. Scale-free, so classes and models compare.
        scores[c] = float(outlier[removed].mean() / max(np.median(outlier), 1e-12))
    note = (
        f"SpectralSignatureDefense's outlier scores on {inputs.layer} (ART projects the uncentred features onto "
        "the top singular vector); score = the mean score of the top "
        f"{eps_multiplier} x {expected_pp_poison:.0%} of the class (what ART removes as poison) over the class "
        f"median. Nothing is flagged: ART removes that share from every class alike, which never singles out a class"
    )
    return scores, (), note


@register_baseline("strip")
def _strip(inputs: BaselineInputs, num_samples: int = 20, false_acceptance_rate: float = 0.01) -> Outcome:
    from art.defences.transformer.poisoning import STRIP

    # ART's STRIP takes entropies of what predict returns: probabilities, so the model ends in a softmax here.
    mitigated = STRIP(inputs.classifier(nn.Sequential(inputs.model, nn.Softmax(dim=1))))(
        num_samples=num_samples, false_acceptance_rate=false_acceptance_rate
    )
    pool = np.random.choice(len(inputs.x), min(STRIP_POOL, len(inputs.x)), replace=False)
    mitigated.mitigate(inputs.x[pool])
    abstained = ~mitigated.predict(inputs.x).any(axis=1)  # ART abstains with an all-zero row
    scores = _nan_scores(inputs.num_classes)
    flagged = []
    for c in range(inputs.num_classes):
        mine = abstained[inputs.y == c]
        if len(mine) >= MIN_IMAGES:
            scores[c] = float(mine.mean())
            # More abstentions than the false-acceptance rate explains (binomial tail, Bonferroni over classes).
            if binom.sf(int(mine.sum()) - 1, len(mine), false_acceptance_rate) < 0.01 / inputs.num_classes:
                flagged.append(c)
    note = (
        "STRIP detects inputs carrying a trigger at test time; here it tests the training images themselves. ART "
        f"calibrates its entropy threshold on {len(pool)} random training images, which are also the images "
        "superimposed (there is no trusted clean set); score = the share of the class's images STRIP abstains on "
        "(ART exposes no per-input entropy); flagged = classes with more abstentions than the "
        f"{false_acceptance_rate:.0%} false-acceptance rate explains (binomial p < 0.01 / classes)"
    )
    return scores, tuple(flagged), note


def _split(model: nn.Module, probe: torch.Tensor) -> tuple[nn.Module, nn.Module] | None:
    """``(body, head)`` with ``head(body(x)) == model(x)``: the last ``nn.Linear`` as head, or None if that fails."""
    names = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not names:
        return None
    parent, _, child = names[-1].rpartition(".")
    body, head = copy.deepcopy(model), copy.deepcopy(model.get_submodule(names[-1]))
    setattr(body.get_submodule(parent), child, nn.Identity())
    with torch.no_grad():
        try:
            same = torch.allclose(head(body(probe)), model(probe), rtol=1e-4, atol=1e-5)
        except RuntimeError:  # the last registered linear layer is not the last operation
            same = False
    return (body, head) if same else None


def _identity_classifier(dims: int, nb_classes: int) -> Any:
    """ART classifier over precomputed (n, dims) features: its last layer's activations are the features."""
    from art.estimators.classification import PyTorchClassifier

    return PyTorchClassifier(
        nn.Sequential(nn.Identity()), nn.CrossEntropyLoss(), (dims,), nb_classes, device_type="cpu"
    )


def _subsample(labels: np.ndarray, max_per_class: int | None, seed: int) -> np.ndarray:
    """Sorted indices of at most ``max_per_class`` images per class, drawn without replacement."""
    if max_per_class is None:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    keep = [rng.permutation(np.flatnonzero(labels == c))[:max_per_class] for c in np.unique(labels)]
    return np.sort(np.concatenate(keep))


def _distinct(feats: np.ndarray) -> bool:
    # 2-means and a silhouette need at least two distinct points, PCA more samples than dimensions kept
    return len(feats) >= MIN_IMAGES and bool(np.ptp(feats, axis=0).max() > 0)


def _nan_scores(num_classes: int) -> dict[int, float]:
    return dict.fromkeys(range(num_classes), math.nan)


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed numpy's global generator (ART's KMeans, PCA and STRIP draw from it) and torch; restore both after."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            yield
    finally:
        np.random.set_state(state)


@contextlib.contextmanager
def _quiet_art() -> Iterator[None]:
    """ART's info and warning logs off, and the progress bar of STRIP's calibration."""
    from functools import partial

    from art.estimators.poison_mitigation.strip import strip as strip_module

    logger = logging.getLogger("art")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with unittest.mock.patch.object(strip_module, "tqdm", partial(strip_module.tqdm, disable=True)):
            yield
    finally:
        logger.setLevel(level)
