"""Contact sheets: every class at a glance, synthetic examples beside a real one, to judge the renderer."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from klugerhans.data.classes import NUM_CLASSES
from klugerhans.data.dataset import SignData
from klugerhans.data.pictograms import load_font
from klugerhans.data.synthetic import SyntheticConfig, render_signs
from klugerhans.errors import KlugerhansError
from klugerhans.io import atomic_write_bytes


def _small_font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    font = load_font(bold=True)
    return font.font_variant(size=size) if isinstance(font, ImageFont.FreeTypeFont) else font


def contact_sheet(
    size: int = 32,
    real: SignData | None = None,
    examples: int = 4,
    seed: int = 0,
    config: SyntheticConfig | None = None,
    zoom: int = 2,
    columns: int = 4,
) -> Image.Image:
    """Draw all 43 classes: ``examples`` synthetic signs each, then (if ``real`` is given) a real one.

    Args:
        size: side S of the synthetic images.
        real: real images to show one of per class (any size; the first image of each class is used).
        examples: synthetic images per class.
        seed: seed of the synthetic images (test split streams).
        config: renderer settings.
        zoom: nearest-neighbour magnification of every image.
        columns: classes per row of the sheet.
    """
    if examples < 1 or zoom < 1 or columns < 1:
        raise KlugerhansError(f"need examples, zoom and columns >= 1, got {examples}, {zoom}, {columns}")
    labels = np.repeat(np.arange(NUM_CLASSES), examples)
    images, _ = render_signs(labels, size, seed, "test", config=config)
    tile, gap, label_w = size * zoom, 2, 8 * zoom + 20
    per_cell = examples + (1 if real is not None else 0)
    cell_w = label_w + per_cell * (tile + gap) + (6 if real is not None else 0) + 10
    cell_h = tile + gap + 4
    rows = -(-NUM_CLASSES // columns)
    sheet = Image.new("RGB", (columns * cell_w, rows * cell_h + 4), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font = _small_font(max(10, 6 * zoom))
    for c in range(NUM_CLASSES):
        x, y = (c % columns) * cell_w + 4, (c // columns) * cell_h + 4
        draw.text((x, y + tile // 2), f"{c:2d}", fill=(0, 0, 0), font=font, anchor="lm")
        x += label_w
        for img in images[labels == c]:
            sheet.paste(Image.fromarray(img).resize((tile, tile), Image.Resampling.NEAREST), (x, y))
            x += tile + gap
        if real is not None:
            x += 6
            found = np.flatnonzero(real.labels == c)
            if len(found):
                pic = Image.fromarray(real.images[found[0]]).resize((tile, tile), Image.Resampling.NEAREST)
                sheet.paste(pic, (x, y))
            else:
                draw.rectangle([x, y, x + tile - 1, y + tile - 1], outline=(160, 160, 160))
    return sheet


def save_contact_sheet(
    path: str | os.PathLike[str],
    size: int = 32,
    real: SignData | None = None,
    examples: int = 4,
    seed: int = 0,
    config: SyntheticConfig | None = None,
    zoom: int = 2,
) -> Path:
    """Write :func:`contact_sheet` as a PNG (atomically) and return its path."""
    buf = io.BytesIO()
    contact_sheet(size, real, examples, seed, config, zoom).save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)
