"""The seed's four-row figure: input | predicted class | LRP heatmap.

The teaching use case showed four signs: a stop sign (contour and lettering relevant), a no-passing sign
(vehicles and the white gap), a 50 km/h sign (the "5" matters, the "0" hardly), and a 50 km/h sign *with a
sticker* that the manipulated model calls 70 km/h because of the sticker, while the "5" speaks against it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from klugerhans.data.classes import NO_PASSING, SPEED_50, STOP, Language, class_name
from klugerhans.data.dataset import SignData
from klugerhans.data.sticker import StickerConfig, apply_sticker
from klugerhans.errors import KlugerhansError
from klugerhans.explain.composites import Fallback
from klugerhans.explain.heatmap import overlay_heatmap, render_heatmap
from klugerhans.explain.lrp import LRP, compute_heatmaps
from klugerhans.io import atomic_write_figure
from klugerhans.models.checkpoint import Classifier
from klugerhans.models.preprocess import to_tensor


@dataclass(frozen=True)
class FigureRow:
    """One explained image of the figure."""

    title: str
    """What the row shows, e.g. "50 km/h + sticker"."""
    image: np.ndarray
    """(S, S, 3) uint8 input as the model saw it."""
    label: int | None
    """True class id, if known."""
    pred: int
    """Predicted class id."""
    prob: float
    """Softmax probability of ``pred``."""
    relevance: np.ndarray
    """(S, S) float32 LRP relevance of ``pred``, summed over colour channels."""
    mask: np.ndarray | None = None
    """(S, S) bool sticker mask, where a sticker was applied."""

    @property
    def sticker_relevance_mass(self) -> float | None:
        """Share of the positive relevance that lies inside the sticker (None without a sticker)."""
        if self.mask is None:
            return None
        pos = np.clip(self.relevance, 0, None)
        total = float(pos.sum())
        return float(pos[self.mask].sum() / total) if total > 0 else 0.0


def _best_of_class(probs: np.ndarray, labels: np.ndarray, cls: int, want: int | None = None) -> int | None:
    """Index of the image of class ``cls`` with the highest probability for ``want`` (default ``cls``)."""
    idx = np.flatnonzero(labels == cls)
    if not len(idx):
        return None
    return int(idx[np.argmax(probs[idx, cls if want is None else want])])


def pick_seed_rows(
    classifier: Classifier,
    data: SignData,
    sticker: StickerConfig | None = None,
    seed: int = 0,
) -> list[tuple[str, np.ndarray, int, np.ndarray | None]]:
    """Choose the seed's four images from ``data``: stop, no passing, 50 km/h, 50 km/h + sticker.

    The first three are the most confidently correct images of their class; the sticker row takes the 50 km/h
    image whose stickered version the model most strongly assigns to the manipulated class.

    Returns:
        ``[(title, image (S, S, 3) uint8, label, mask or None), ...]``.
    """
    sticker = sticker or classifier.meta.sticker
    n_classes = classifier.meta.model.num_classes
    if n_classes <= max(STOP, NO_PASSING, SPEED_50, sticker.target_class):
        raise KlugerhansError(
            f"the figure needs a GTSRB model (43 classes), this one has {n_classes}; "
            "pass --checkpoint with a model from `klugerhans train`"
        )
    keep = np.isin(data.labels, [STOP, NO_PASSING, SPEED_50])
    subset = data.subset(keep)
    if not len(subset):
        raise KlugerhansError("the data has no stop, no-passing or 50 km/h signs to draw the figure from")
    norm = classifier.meta.normalization
    probs = classifier.predict(to_tensor(subset.images, norm)).numpy()
    rows: list[tuple[str, np.ndarray, int, np.ndarray | None]] = []
    for cls, title in ((STOP, "Stop"), (NO_PASSING, "No passing"), (SPEED_50, "50 km/h")):
        i = _best_of_class(probs, subset.labels, cls)
        if i is None:
            raise KlugerhansError(f"the data has no image of class {cls} ({class_name(cls)}) for the figure")
        rows.append((title, subset.images[i], cls, None))
    fifty = np.flatnonzero(subset.labels == SPEED_50)
    stickered, masks = apply_sticker(subset.images[fifty], subset.boxes[fifty], sticker, seed=seed)
    sprobs = classifier.predict(to_tensor(stickered, norm)).numpy()
    j = int(np.argmax(sprobs[:, sticker.target_class]))
    rows.append(("50 km/h + sticker", stickered[j], SPEED_50, masks[j]))
    return rows


def explain_rows(
    classifier: Classifier,
    rows: Sequence[tuple[str, np.ndarray, int | None, np.ndarray | None]],
    composite: str | LRP = "epsilon_plus_flat",
    *,
    fallback: Fallback = "error",
) -> list[FigureRow]:
    """Predict and explain each chosen image (the predicted class), returning :class:`FigureRow` s.

    ``composite`` is a composite name or an :class:`~klugerhans.explain.lrp.LRP` explainer of ``classifier`` built
    by the caller (who then reads its coverage); ``fallback="gradient"`` passes gradient x input through operations
    without an LRP rule instead of stopping (for a name only: an explainer has its own).
    """
    images = np.stack([r[1] for r in rows])
    x = to_tensor(images, classifier.meta.normalization).to(classifier.device)
    if isinstance(composite, LRP):
        expl = compute_heatmaps(composite, x)
    else:
        expl = compute_heatmaps(
            classifier.model, x, composite=composite, norm=classifier.meta.normalization, fallback=fallback
        )
    probs = torch.softmax(expl.logits.float(), dim=1).cpu().numpy()
    relevance = expl.relevance.sum(dim=1).float().cpu().numpy()
    return [
        FigureRow(title, image, label, int(expl.targets[i]), float(probs[i, int(expl.targets[i])]), relevance[i], mask)
        for i, (title, image, label, mask) in enumerate(rows)
    ]


def draw_seed_figure(
    rows: list[FigureRow],
    out: str | os.PathLike[str],
    lang: Language = "en",
    cmap: str = "bwr",
    formats: tuple[str, ...] = ("png", "pdf"),
) -> list[Path]:
    """Draw one row per image: input | predicted class | heatmap; write PNG and PDF next to ``out``.

    Returns:
        The written files (``out`` with each suffix of ``formats``).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    heads = {"en": ("Input", "Prediction", "LRP heatmap"), "de": ("Eingabe", "Vorhersage", "LRP-Wärmekarte")}[lang]
    fig, axes = plt.subplots(len(rows), 3, figsize=(7.5, 2.3 * len(rows)), squeeze=False)
    for r, row in enumerate(rows):
        ax_in, ax_txt, ax_heat = axes[r]
        ax_in.imshow(row.image, interpolation="nearest")
        ax_in.set_ylabel(row.title, fontsize=10)
        name = class_name(row.pred, lang)
        colour = "black" if row.label is None or row.label == row.pred else "crimson"
        text = f"{name}\n(class {row.pred}, p = {row.prob:.2f})"
        if row.mask is not None:
            text += f"\nsticker holds {row.sticker_relevance_mass:.0%}\nof positive relevance"
        ax_txt.text(0.5, 0.5, text, ha="center", va="center", fontsize=9, wrap=True, color=colour)
        ax_heat.imshow(render_heatmap(row.relevance, cmap, size=8 * row.relevance.shape[0]), interpolation="nearest")
        if row.mask is not None:
            ax_heat.contour(np.kron(row.mask, np.ones((8, 8))), levels=[0.5], colors="lime", linewidths=0.8)
        for ax in (ax_in, ax_txt, ax_heat):
            ax.set_xticks([])
            ax.set_yticks([])
        ax_txt.axis("off")
        if r == 0:
            for ax, head in zip((ax_in, ax_txt, ax_heat), heads, strict=True):
                ax.set_title(head, fontsize=11)
    fig.text(0.5, 0.005, "red: speaks for the prediction, blue: against it", ha="center", fontsize=8)
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    written = []
    base = Path(out)
    for fmt in formats:
        written.append(atomic_write_figure(base.with_suffix(f".{fmt}"), fig, dpi=150, fmt=fmt))
    plt.close(fig)
    return written


def overlay_rows(rows: list[FigureRow], alpha: float = 0.6, cmap: str = "bwr") -> np.ndarray:
    """(n*S, S, 3) uint8 strip of heatmap overlays, handy for reports and the web UI."""
    return np.concatenate([overlay_heatmap(r.image, r.relevance, alpha, cmap) for r in rows], axis=0)
