"""The models a web server offers and what one of them makes of a scene: top-3 classes and an LRP heatmap.

Classifiers are loaded once per server (:class:`ModelStore`) through
:func:`~klugerhans.models.checkpoint.load_classifier`; their LRP explainers (Bach et al. 2015) are built once per
composite and reused, so a click costs one forward and one backward pass.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from klugerhans.audit.localisation import relevance_mass_accuracy
from klugerhans.data.classes import Language
from klugerhans.defaults import DEFAULT_FALLBACK
from klugerhans.errors import CheckpointError
from klugerhans.explain.composites import Fallback
from klugerhans.explain.heatmap import overlay_heatmap, render_heatmap
from klugerhans.explain.lrp import LRP
from klugerhans.models.checkpoint import RELEASED_WEIGHTS, load_classifier
from klugerhans.models.classifier import Classifier
from klugerhans.models.config import format_arch
from klugerhans.models.predict import display_names, top_classes
from klugerhans.web.state import Scene

__all__ = [
    "CHECKPOINT",
    "DISPLAY_SIZE",
    "Analysis",
    "ModelStore",
    "analyze",
    "describe_model",
    "display_side",
    "enlarge",
]

CHECKPOINT = "checkpoint"
"""Key of the checkpoint the server was started with (``--checkpoint``)."""
DISPLAY_SIZE = 384
"""Smallest side in pixels of shown images (a whole multiple of our VGG's input sizes 32, 48 and 64)."""
_EXPLAINERS = 8
"""Explainers kept (one per model and composite); the oldest is dropped first."""


@dataclass(frozen=True)
class Analysis:
    """One model's view of one scene."""

    pred: int
    """Predicted class id."""
    top3: tuple[tuple[str, float], ...]
    """The three most likely class names with their probabilities, most likely first."""
    image: np.ndarray
    """(D, D, 3) uint8: the input the model saw, enlarged to :func:`display_side` with square pixels."""
    heatmap: np.ndarray
    """(D, D, 3) uint8: LRP relevance of the predicted class, red for, blue against."""
    overlay: np.ndarray
    """(D, D, 3) uint8: the same relevance blended half and half over :attr:`image`."""
    sticker_share: float | None
    """Share of the positive relevance on sticker pixels (relevance mass accuracy, Arras et al. 2022); None
    without stickers."""

    @property
    def name(self) -> str:
        """Name of the predicted class."""
        return self.top3[0][0]

    @property
    def prob(self) -> float:
        """Probability of the predicted class."""
        return self.top3[0][1]


def display_side(input_size: int) -> int:
    """Side D of a shown S px input: the smallest whole multiple of S of at least :data:`DISPLAY_SIZE` pixels, so
    every input pixel becomes a square of screen pixels (384 for 32, 48 and 64 px; 448 for 224 px)."""
    return input_size * max(1, -(-DISPLAY_SIZE // input_size))


def enlarge(image: np.ndarray, size: int | None = None) -> np.ndarray:
    """(S, S, 3) uint8 -> (D, D, 3) with nearest-neighbour pixels, to show what a model sees.

    Args:
        image: the model's input.
        size: side D (default :func:`display_side` of S).
    """
    side = display_side(image.shape[0]) if size is None else size
    return np.asarray(Image.fromarray(image).resize((side, side), Image.Resampling.NEAREST))


class ModelStore:
    """Classifiers offered by a server: its ``--checkpoint`` and the released weights found in this install.

    Args:
        checkpoint: a ``.safetensors`` file or training run directory; loaded now, a bad one raises.
        device: where the models run (``cpu``, ``cuda``, ``auto``...).
        fallback: an operation without an LRP rule: "error" stops, "gradient" passes gradient x input through it.
        label: what the page calls the checkpoint (default ``checkpoint: FILE``; ``weights: FILE`` for weights
            the CLI converted into a temporary checkpoint).

    Released weights that are missing are not an error: :attr:`missing` says why, for the page.
    """

    def __init__(
        self,
        checkpoint: str | os.PathLike[str] | None = None,
        device: str = "cpu",
        *,
        fallback: Fallback = DEFAULT_FALLBACK,
        label: str | None = None,
    ) -> None:
        self.device = device
        self.fallback: Fallback = fallback
        """What LRP does at an operation without a rule ("error" or "gradient")."""
        self.models: dict[str, Classifier] = {}
        """Key (``"checkpoint"``, ``"manipulated"``, ``"control"``) -> loaded classifier."""
        self.missing: dict[str, str] = {}
        """Released-weights name -> why it could not be loaded."""
        self.paths: list[str] = []
        """Files the models came from (so messages can show their names, not where they live)."""
        self.label = label or (f"checkpoint: {Path(checkpoint).name}" if checkpoint is not None else "")
        """The page's name of the checkpoint."""
        if checkpoint is not None:
            self.models[CHECKPOINT] = load_classifier(checkpoint, device)
            self.paths += [str(checkpoint), str(Path(checkpoint).resolve())]
        for name in RELEASED_WEIGHTS:
            try:
                self.models[name] = load_classifier(name, device)
            except CheckpointError as err:
                self.missing[name] = str(err)
        self._explainers: OrderedDict[tuple[int, str], tuple[Classifier, LRP]] = OrderedDict()
        self._lock = threading.Lock()

    def explainer(self, classifier: Classifier, composite: str) -> LRP:
        """The LRP explainer of ``classifier`` with ``composite``, built once and reused."""
        key = (id(classifier), composite)
        with self._lock:
            hit = self._explainers.get(key)
            if hit is not None and hit[0] is classifier:  # id() may be reused once a model is gone
                self._explainers.move_to_end(key)
                return hit[1]
        # Only input-bounded rules (z^B) use the normalisation; the others ignore it.
        lrp = LRP(classifier.model, composite, norm=classifier.meta.normalization, fallback=self.fallback)
        with self._lock:
            self._explainers[key] = (classifier, lrp)
            while len(self._explainers) > _EXPLAINERS:
                self._explainers.popitem(last=False)
        return lrp


def describe_model(classifier: Classifier) -> str:
    """The model in one line: architecture, input size, classes and, from its recipe, what it was trained on."""
    m = classifier.meta.model
    arch = f"our {m.arch} at width {m.width:g}" if m.spec.width else format_arch(m.family, m.arch)
    recipe = classifier.meta.recipe
    training = recipe.describe() if recipe is not None else "trained elsewhere (its file holds no training recipe)"
    return f"{arch}, {classifier.input_size} px input, {m.num_classes} classes, {training}"


def analyze(classifier: Classifier, explainer: LRP, scene: Scene, lang: Language = "en") -> Analysis:
    """Classify the scene at the model's input size (and resize) and explain the predicted class with LRP.

    Args:
        classifier: the model; its own preprocessing prepares the input.
        explainer: an LRP explainer of ``classifier.model``.
        scene: the sign and its stickers.
        lang: language of the class names, "en" or "de".
    """
    display_names(classifier.class_names, lang)  # an unknown language fails before any work
    image, mask = scene.render(classifier.input_size, classifier.meta.resize)
    x = classifier.preprocess(Image.fromarray(image))[None].to(classifier.device)
    expl = explainer.attribute(x)
    probs = torch.softmax(expl.logits.float(), dim=1)[0].cpu().numpy()
    relevance = expl.relevance.sum(dim=1).float().cpu().numpy()  # (1, S, S)
    top = top_classes(probs, 3, lang, classifier.class_names)
    share = float(relevance_mass_accuracy(relevance, mask[None])[0]) if mask.any() else None
    shown = enlarge(image)
    return Analysis(
        pred=top[0]["id"],
        top3=tuple((t["name"], t["prob"]) for t in top),
        image=shown,
        heatmap=render_heatmap(relevance[0], "bwr", size=shown.shape[0]),
        overlay=overlay_heatmap(shown, relevance[0], alpha=0.5),
        sticker_share=share,
    )
