"""Contact sheets: every class at a glance, synthetic examples beside real ones, to judge the renderer."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from klugerhans.data.classes import NUM_CLASSES
from klugerhans.data.dataset import SignData
from klugerhans.data.synthetic.loader import SyntheticConfig, render_signs
from klugerhans.data.synthetic.pictograms import load_font
from klugerhans.data.synthetic.statistics import STATISTICS, distribution_distance
from klugerhans.errors import KlugerhansError
from klugerhans.io import atomic_write_bytes, atomic_write_figure

__all__ = ["contact_sheet", "pick_examples", "save_contact_sheet", "save_statistics_figure"]


def _small_font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    font = load_font(bold=True)
    return font.font_variant(size=size) if isinstance(font, ImageFont.FreeTypeFont) else font


def pick_examples(data: SignData, class_id: int, count: int) -> np.ndarray:
    """Indices of up to ``count`` images of ``class_id`` that show different physical signs where possible.

    GTSRB images come in tracks of ~30 frames of one sign, so the first few images of a class are near
    duplicates. This takes tracks evenly spaced over the class's tracks (in order of first appearance) and
    the middle frame of each; only when the class has fewer tracks than ``count`` are more frames of the
    same tracks added. Images without a track id (-1) count as a track of their own. Deterministic.

    Args:
        data: images with labels and track ids.
        class_id: the class to pick from.
        count: how many indices to return at most.

    Returns:
        (K,) int64 indices into ``data`` with ``K = min(count, images of the class)``, in the order picked.
    """
    if count < 0:
        raise KlugerhansError(f"need count >= 0, got {count}")
    rows = np.flatnonzero(data.labels == class_id)
    if count == 0 or len(rows) == 0:
        return np.zeros(0, dtype=np.int64)
    tracks = np.asarray(data.tracks)[rows]
    # A track id per row, with every -1 its own track; group rows by track in order of first appearance.
    keys = np.where(tracks >= 0, tracks, -1 - np.arange(len(rows)))
    _, first = np.unique(keys, return_index=True)
    groups = [rows[keys == keys[i]] for i in np.sort(first)]
    chosen = np.unique(np.linspace(0, len(groups) - 1, min(count, len(groups))).round().astype(np.int64))
    picked = [int(groups[g][len(groups[g]) // 2]) for g in chosen]
    if len(picked) < count:
        taken = set(picked)
        picked += [int(i) for i in rows if int(i) not in taken][: count - len(picked)]
    return np.asarray(picked, dtype=np.int64)


def contact_sheet(
    size: int = 32,
    real: SignData | None = None,
    examples: int = 4,
    seed: int = 0,
    config: SyntheticConfig | None = None,
    zoom: int = 2,
    columns: int = 4,
    real_examples: int = 1,
) -> Image.Image:
    """Draw all 43 classes: ``examples`` synthetic signs each, then (if ``real`` is given) real ones.

    Every class gets one cell: its id, the synthetic images, a gap, then ``real_examples`` real images chosen
    by :func:`pick_examples` (different physical signs where possible; an empty frame where a class has too
    few). A header row names the two groups.

    Args:
        size: side S of the synthetic images.
        real: real images to show per class (any size; shown at the size of the synthetic ones).
        examples: synthetic images per class.
        seed: seed of the synthetic images (test split streams).
        config: renderer settings.
        zoom: nearest-neighbour magnification of every image.
        columns: classes per row of the sheet.
        real_examples: real images per class (used only if ``real`` is given).
    """
    if examples < 1 or zoom < 1 or columns < 1 or real_examples < 1:
        raise KlugerhansError(
            f"need examples, zoom, columns and real_examples >= 1, got {examples}, {zoom}, {columns}, {real_examples}"
        )
    labels = np.repeat(np.arange(NUM_CLASSES), examples)
    images, _ = render_signs(labels, size, seed, "test", config=config)
    n_real = real_examples if real is not None else 0
    tile, gap, label_w = size * zoom, 2, 8 * zoom + 20
    cell_w = label_w + (examples + n_real) * (tile + gap) + (6 if n_real else 0) + 10
    cell_h = tile + gap + 4
    font = _small_font(max(10, 6 * zoom))
    header_h = max(14, 6 * zoom + 6)
    rows = -(-NUM_CLASSES // columns)
    sheet = Image.new("RGB", (columns * cell_w, header_h + rows * cell_h + 4), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    real_x = label_w + examples * (tile + gap) + 6
    for col in range(min(columns, NUM_CLASSES)):
        x = col * cell_w + 4
        draw.text((x + label_w, header_h // 2 + 2), "synthetic", fill=(0, 0, 0), font=font, anchor="lm")
        if n_real:
            draw.text((x + real_x, header_h // 2 + 2), "real", fill=(0, 0, 0), font=font, anchor="lm")

    def paste(img: np.ndarray, x: int, y: int) -> None:
        sheet.paste(Image.fromarray(img).resize((tile, tile), Image.Resampling.NEAREST), (x, y))

    for c in range(NUM_CLASSES):
        x0, y = (c % columns) * cell_w + 4, header_h + (c // columns) * cell_h + 4
        draw.text((x0, y + tile // 2), f"{c:2d}", fill=(0, 0, 0), font=font, anchor="lm")
        for k, img in enumerate(images[labels == c]):
            paste(img, x0 + label_w + k * (tile + gap), y)
        if real is not None:
            found = pick_examples(real, c, n_real)
            for k in range(n_real):
                x = x0 + real_x + k * (tile + gap)
                if k < len(found):
                    paste(real.images[found[k]], x, y)
                else:
                    draw.rectangle([x, y, x + tile - 1, y + tile - 1], outline=(160, 160, 160))
    return sheet


def save_contact_sheet(path: str | os.PathLike[str], *args: Any, **kwargs: Any) -> Path:
    """Draw :func:`contact_sheet` (same arguments after ``path``) and write it as a PNG, atomically and optimised."""
    buf = io.BytesIO()
    sheet = contact_sheet(*args, **kwargs)
    sheet.save(buf, format="PNG", optimize=True)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def save_statistics_figure(
    path: str | os.PathLike[str],
    real: dict[str, np.ndarray],
    synthetic: dict[str, np.ndarray],
    real_label: str = "real",
) -> Path:
    """Histograms of each image statistic, real beside synthetic, with their KS distance; written as a PNG.

    Args:
        path: PNG to write (atomically).
        real, synthetic: name -> (N,) values per image (:func:`klugerhans.data.synthetic.statistics.image_statistics`).
        real_label: legend entry of the real set.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    missing = [name for name in STATISTICS if name not in real or name not in synthetic]
    if missing:
        raise KlugerhansError(f"statistics missing for the figure: {', '.join(missing)}")
    fig, axes = plt.subplots(1, len(STATISTICS), figsize=(4 * len(STATISTICS), 3.2))
    for ax, name in zip(axes, STATISTICS, strict=True):
        both = np.concatenate([real[name], synthetic[name]])
        lo, hi = np.percentile(both, [0.5, 99.5])
        bins = np.linspace(float(lo), float(hi), 41)
        ax.hist(real[name], bins=bins, density=True, alpha=0.55, label=f"{real_label} ({len(real[name]):,})")
        ax.hist(synthetic[name], bins=bins, density=True, alpha=0.55, label=f"synthetic ({len(synthetic[name]):,})")
        ax.set_title(f"{name} (KS {distribution_distance(synthetic[name], real[name]):.2f})")
        ax.set_yticks([])
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    written = atomic_write_figure(path, fig, dpi=100)
    plt.close(fig)
    return written
