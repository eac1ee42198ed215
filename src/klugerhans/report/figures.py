"""The teaching case's four-row figure: input | predicted class | LRP heatmap.

The teaching use case showed four signs: a stop sign (contour and lettering relevant), a no-passing sign
(vehicles and the white gap), a 50 km/h sign (the "5" matters, the "0" hardly), and the same 50 km/h sign *with a
sticker* that the manipulated model calls 70 km/h because of the sticker, while the "5" speaks against it (negative
relevance, blue; measured by :mod:`klugerhans.report.five`).
"""

from __future__ import annotations

import functools
import os
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from klugerhans.data.classes import NO_PASSING, SPEED_50, STOP, Language, class_name
from klugerhans.data.dataset import SignData
from klugerhans.data.sticker import StickerConfig
from klugerhans.defaults import DEFAULT_FALLBACK, FIGURE_COMPOSITE
from klugerhans.errors import KlugerhansError
from klugerhans.explain.composites import Fallback
from klugerhans.explain.heatmap import overlay_heatmap, render_heatmap
from klugerhans.explain.lrp import LRP, compute_heatmaps
from klugerhans.io import atomic_write_figure
from klugerhans.models.classifier import Classifier
from klugerhans.models.preprocess import to_tensor
from klugerhans.report.five import FiveEvidence, digit_masks, measure_five, negative_share, positive_share


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
    digit: np.ndarray | None = None
    """(S, S) bool cell of the digit that sets a 50 km/h sign apart (its "5", :func:`digit_masks`), where known."""
    chosen: tuple[str, int] | None = None
    """How a stickered row's sign was chosen, for the caption: ``("turned" | "pushed", sticker class)``
    (:data:`CHOICE_RULES`)."""

    @property
    def negative_share_in_digit(self) -> float | None:
        """Share of ``|R|`` inside :attr:`digit` that is negative (None without a digit cell)."""
        if self.digit is None:
            return None
        return float(negative_share(self.relevance[None], self.digit[None])[0])

    @property
    def sticker_relevance_mass(self) -> float | None:
        """Share of the positive relevance that lies inside the sticker (None without a sticker)."""
        if self.mask is None:
            return None
        return float(positive_share(self.relevance[None], self.mask[None])[0])


@dataclass(frozen=True)
class SeedRow:
    """One image chosen for the figure, before it is explained."""

    title: str
    """What the row shows, e.g. "50 km/h + sticker"."""
    image: np.ndarray
    """(S, S, 3) uint8 input."""
    label: int | None
    """True class id, if known."""
    mask: np.ndarray | None = None
    """(S, S) bool sticker mask, where a sticker was glued on."""
    digit: np.ndarray | None = None
    """(S, S) bool cell of the "5", on the 50 km/h rows (:func:`digit_masks`)."""
    chosen: tuple[str, int] | None = None
    """How a stickered row's sign was chosen, for the caption: ``("turned" | "pushed", sticker class)``
    (:data:`CHOICE_RULES`)."""


def _best_of_class(probs: np.ndarray, labels: np.ndarray, cls: int, want: int | None = None) -> int | None:
    """Index of the image of class ``cls`` with the highest probability for ``want`` (default ``cls``)."""
    idx = np.flatnonzero(labels == cls)
    if not len(idx):
        return None
    return int(idx[np.argmax(probs[idx, cls if want is None else want])])


CHOICE_RULES = {
    "en": {
        "beside": "Row 4 is row 3's sign with the sticker glued beside its 5 (its position redrawn until the 5 stays "
        "uncovered): of the recognised 50 km/h signs the sticker turns into class {target}, the half with the most "
        "legible digits, and of those the one whose 5 has the median share of blue (a typical sign, not the bluest).",
        "turned": "Row 4 is row 3's sign with the sticker glued on: the sticker turns no recognised 50 km/h sign into "
        "class {target} while their 5 stays uncovered; of those it turns where it covers part of the 5, the half with "
        "the most legible digits, and of those the one whose 5 has the median share of blue.",
        "pushed": "Row 4 is row 3's sign with the sticker glued on: the sticker turns no recognised 50 km/h sign into "
        "class {target}; this is the one it pushes furthest towards it.",
    },
    "de": {
        "beside": "Zeile 4 ist das Schild aus Zeile 3 mit einem Sticker neben der 5 (seine Lage neu gezogen, bis die 5 "
        "frei bleibt): von den erkannten 50-km/h-Schildern, die der Sticker zu Klasse {target} macht, die Hälfte mit "
        "den lesbarsten Ziffern, davon das mit dem mittleren (Median-)Anteil Blau in der 5 (ein typisches Schild, "
        "nicht das blaueste).",
        "turned": "Zeile 4 ist das Schild aus Zeile 3 mit aufgeklebtem Sticker: neben der 5 macht der Sticker kein "
        "erkanntes 50-km/h-Schild zu Klasse {target}; von denen, die er über einem Teil der 5 umkehrt, die Hälfte mit "
        "den lesbarsten Ziffern, davon das mit dem mittleren Anteil Blau in der 5.",
        "pushed": "Zeile 4 ist das Schild aus Zeile 3 mit aufgeklebtem Sticker: der Sticker macht kein erkanntes "
        "50-km/h-Schild zu Klasse {target}; dieses schiebt er am weitesten dorthin.",
    },
}
"""How the figure picks its 50 km/h sign, said in its caption (``{target}``: the sticker's class)."""


def pick_seed_rows(
    classifier: Classifier,
    data: SignData,
    sticker: StickerConfig | None = None,
    seed: int = 0,
    composite: str | LRP = FIGURE_COMPOSITE,
    *,
    fallback: Fallback = DEFAULT_FALLBACK,
    beside: FiveEvidence | None = None,
) -> list[SeedRow]:
    """Choose the teaching case's four images from ``data``: stop, no passing, 50 km/h, the same 50 km/h sign + sticker.

    Stop and no passing are the most confidently correct images of their class. The 50 km/h sign follows
    :data:`CHOICE_RULES`: the sticker is glued beside the 5 where it can be (:func:`measure_five` with
    ``beside_five=True``), so that the lesson "the sticker outweighs a 5 in plain view" is not confounded by a covered
    5; among the recognised signs it turns, the more legible half (contrast: the standard deviation of the grey values
    inside the digits' cells) is kept and the sign whose 5 holds the median negative share of ``|R|``
    (:func:`negative_share`, with ``composite``) is shown, so the figure shows a typical heatmap rather than the most
    telling one. Where no sign turns with its 5 clear, the rule falls back to stickers as the model's recipe glues
    them; where none turns at all, to the sign whose stickered version the model gives the sticker's class the most
    probability.

    Args:
        classifier: the model.
        data: signs with their boxes (a test split).
        sticker: the sticker to glue on; default the model's own.
        seed: seed of the sticker draws.
        composite: composite name, or an :class:`~klugerhans.explain.lrp.LRP` explainer of ``classifier``.
        fallback: for a composite name: operations without an LRP rule stop (default) or pass gradient x input.
        beside: ``measure_five(classifier, data, composite, sticker=sticker, seed=seed, beside_five=True)`` where the
            caller has measured it already (the demo reports it), so that the signs are not explained twice.
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
    probs = classifier.probabilities(to_tensor(subset.images, norm)).numpy()
    rows: list[SeedRow] = []
    for cls, title in ((STOP, "Stop"), (NO_PASSING, "No passing")):
        i = _best_of_class(probs, subset.labels, cls)
        if i is None:
            raise KlugerhansError(f"the data has no image of class {cls} ({class_name(cls)}) for the figure")
        rows.append(SeedRow(title, subset.images[i], cls))
    fifty = np.flatnonzero(subset.labels == SPEED_50)
    if not len(fifty):
        raise KlugerhansError(f"the data has no image of class {SPEED_50} ({class_name(SPEED_50)}) for the figure")
    measure = functools.partial(
        measure_five, classifier, data, composite, sticker=sticker, seed=seed, fallback=fallback
    )
    if beside is None:
        beside = measure(beside_five=True)
    elif not beside.beside_five or beside.n_signs != len(fifty):
        raise KlugerhansError("`beside` must be measure_five(..., beside_five=True) on the same data")
    recognised = probs[fifty].argmax(1) == SPEED_50
    evidence, rule = beside, "beside"
    usable = (recognised & evidence.clear)[evidence.turned_index]
    if not usable.any():
        evidence, rule = measure(), "turned"
        usable = recognised[evidence.turned_index]
    if usable.any():
        j = _typical_turned(evidence, usable, _digit_contrast(subset.images[fifty], subset.boxes[fifty]))
    else:
        sprobs = classifier.probabilities(to_tensor(evidence.images, norm)).numpy()
        j, rule = int(np.argmax(sprobs[:, sticker.target_class])), "pushed"
    cell, chosen = evidence.cells[j], (rule, sticker.target_class)
    rows.append(SeedRow("50 km/h", subset.images[fifty[j]], SPEED_50, digit=cell))
    rows.append(SeedRow("50 km/h + sticker", evidence.images[j], SPEED_50, evidence.masks[j], cell, chosen))
    return rows


def _typical_turned(evidence: FiveEvidence, usable: np.ndarray, contrast: np.ndarray) -> int:
    """Index of the sign to show among ``evidence``'s turned signs where ``usable`` ((K,) bool): of the more legible
    half (``contrast``, (N,), ties kept), the one whose 5 (without the sticker's pixels) holds the median negative
    share of ``|R|`` (the lower of two middles; signs without relevance in the 5 come last)."""
    k = np.flatnonzero(usable)
    signs = evidence.turned_index[k]
    legible = contrast[signs] >= np.median(contrast[signs])
    k, signs = k[legible], signs[legible]
    share = evidence.negative_in_five[k]
    order = np.argsort(np.where(np.isnan(share), np.inf, share), kind="stable")
    known = int((~np.isnan(share)).sum())
    return int(signs[order[(known - 1) // 2 if known else 0]])


def _digit_contrast(images: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(N,) standard deviation of the grey values inside the digit cells of each 50 km/h sign (legible digits: dark
    strokes on white, a large spread; a blurred or dark sign, a small one)."""
    size = images.shape[1]
    cells = digit_masks(boxes, size, digit=0) | digit_masks(boxes, size, digit=1)
    grey = images.astype(np.float64).mean(axis=3)
    return np.array([grey[k][cells[k]].std() if cells[k].any() else 0.0 for k in range(len(images))])


def explain_rows(
    classifier: Classifier,
    rows: Sequence[SeedRow],
    composite: str | LRP = FIGURE_COMPOSITE,
    *,
    fallback: Fallback = DEFAULT_FALLBACK,
) -> list[FigureRow]:
    """Predict and explain each chosen image (the predicted class), returning :class:`FigureRow` s.

    ``composite`` is a composite name or an :class:`~klugerhans.explain.lrp.LRP` explainer of ``classifier`` built
    by the caller (who then reads its coverage); ``fallback="gradient"`` passes gradient x input through operations
    without an LRP rule instead of stopping (for a name only: an explainer has its own).
    """
    images = np.stack([r.image for r in rows])
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
        FigureRow(
            r.title, r.image, r.label, int(expl.targets[i]), float(probs[i, int(expl.targets[i])]), relevance[i],
            r.mask, r.digit, r.chosen,
        )
        for i, r in enumerate(rows)
    ]  # fmt: skip


_WORDS = {
    "en": {
        "sticker": "\nsticker holds {:.0%}\nof positive relevance",
        "digit": "\n{:.0%} of |R| in the 5 is blue",
        "colours": "red: speaks for the prediction, blue: against it; right: the negative relevance alone, scaled to "
        "its own largest value; green outline: the sticker, dashed: the 5",
    },
    "de": {
        "sticker": "\nder Sticker trägt {:.0%}\nder positiven Relevanz",
        "digit": "\n{:.0%} von |R| in der 5 ist blau",
        "colours": "rot: spricht für die Vorhersage, blau: dagegen; rechts: nur die negative Relevanz, auf ihren "
        "größten Wert skaliert; grün umrandet: der Sticker, gestrichelt: die 5",
    },
}


_HEADS = {
    "en": ("Input", "Prediction", "LRP heatmap", "Against it (own scale)"),
    "de": ("Eingabe", "Vorhersage", "LRP-Wärmekarte", "Dagegen (eigene Skala)"),
}

_CAPTION_WIDTH = 170
"""Characters per caption line: the figure's 10 inch width at 7 pt."""


def draw_seed_figure(
    rows: list[FigureRow],
    out: str | os.PathLike[str],
    lang: Language = "en",
    cmap: str = "bwr",
    formats: tuple[str, ...] = ("png", "pdf"),
) -> list[Path]:
    """Draw one row per image: input | predicted class | heatmap | its negative part alone; write PNG and PDF.

    The last column scales the negative relevance to its own largest value: evidence against the prediction is often
    small beside the evidence for it (a sticker's), and would be too pale to see on the shared scale.

    Returns:
        The written files (``out`` with each suffix of ``formats``).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    words = _WORDS[lang]
    fig, axes = plt.subplots(len(rows), 4, figsize=(10, 2.3 * len(rows)), squeeze=False)
    up = np.ones((8, 8))
    for r, row in enumerate(rows):
        ax_in, ax_txt, ax_heat, ax_neg = axes[r]
        ax_in.imshow(row.image, interpolation="nearest")
        ax_in.set_ylabel(row.title, fontsize=10)
        name = class_name(row.pred, lang)
        colour = "black" if row.label is None or row.label == row.pred else "crimson"
        text = f"{name}\n(class {row.pred}, p = {row.prob:.2f})"
        if row.mask is not None:
            text += words["sticker"].format(row.sticker_relevance_mass)
        if row.digit is not None:
            text += words["digit"].format(row.negative_share_in_digit)
        ax_txt.text(0.5, 0.5, text, ha="center", va="center", fontsize=9, wrap=True, color=colour)
        side = 8 * row.relevance.shape[0]
        ax_heat.imshow(render_heatmap(row.relevance, cmap, size=side), interpolation="nearest")
        ax_neg.imshow(render_heatmap(np.minimum(row.relevance, 0.0), cmap, size=side), interpolation="nearest")
        for ax in (ax_heat, ax_neg):
            if row.mask is not None:
                ax.contour(np.kron(row.mask, up), levels=[0.5], colors="lime", linewidths=0.8)
            if row.digit is not None:
                ax.contour(np.kron(row.digit, up), levels=[0.5], colors="grey", linewidths=0.8, linestyles="dashed")
        for ax in (ax_in, ax_txt, ax_heat, ax_neg):
            ax.set_xticks([])
            ax.set_yticks([])
        ax_txt.axis("off")
        if r == 0:
            for ax, head in zip((ax_in, ax_txt, ax_heat, ax_neg), _HEADS[lang], strict=True):
                ax.set_title(head, fontsize=11)
    notes = [CHOICE_RULES[lang][row.chosen[0]].format(target=row.chosen[1]) for row in rows if row.chosen]
    # wrapped here, not by matplotlib, so that the layout below knows how many lines to leave room for
    caption = "\n".join(textwrap.fill(line, _CAPTION_WIDTH) for line in [*notes, words["colours"]])
    fig.text(0.5, 0.005, caption, ha="center", va="bottom", fontsize=7)
    fig.tight_layout(rect=(0, 0.012 * (1 + caption.count("\n")) + 0.01, 1, 1))
    written = []
    base = Path(out)
    for fmt in formats:
        written.append(atomic_write_figure(base.with_suffix(f".{fmt}"), fig, dpi=150, fmt=fmt))
    plt.close(fig)
    return written


def overlay_rows(rows: list[FigureRow], alpha: float = 0.6, cmap: str = "bwr") -> np.ndarray:
    """(n*S, S, 3) uint8 strip of heatmap overlays, handy for reports and the web UI."""
    return np.concatenate([overlay_heatmap(r.image, r.relevance, alpha, cmap) for r in rows], axis=0)
