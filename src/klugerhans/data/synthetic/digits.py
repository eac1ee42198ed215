"""Digits in the style of DIN 1451 Mittelschrift, the lettering of German road signs, drawn from strokes.

GTSRB's speed limits are told apart by their digits alone, and at 32 px their shapes decide it: DIN 1451 digits
are narrow, of one stroke width, with a flat-topped "3", a "1" without a foot and stadium-shaped "0"s. A
general-purpose font (DejaVu Sans Bold, which the renderer used before) differs in exactly those places: a
model trained on it read real "30" signs as "20" and "120" as "20" (measured: 38% and 7% of them right on the
shared test images, docs/SYNTHETIC.md). Each digit is a centre line on a 3 x 6 grid (y pointing down), stroked with
round caps and joins; no font file is needed, so every machine draws the same pixels.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["DIGIT_STROKES", "digits_mask"]

_Point = tuple[float, float]


def _arc(cx: float, cy: float, rx: float, ry: float, start: float, end: float, n: int = 20) -> list[_Point]:
    """Points on an elliptical arc from ``start`` to ``end`` degrees (counter-clockwise on screen, 0 = right)."""
    angles = np.radians(np.linspace(start, end, n))
    return [(cx + rx * math.cos(a), cy - ry * math.sin(a)) for a in angles]


def _curve(p0: _Point, control: _Point, p1: _Point, n: int = 16) -> list[_Point]:
    """A quadratic Bezier curve."""
    t = np.linspace(0.0, 1.0, n)[:, None]
    pts = (1 - t) ** 2 * np.array(p0) + 2 * (1 - t) * t * np.array(control) + t**2 * np.array(p1)
    return [(float(x), float(y)) for x, y in pts]


_BOWL = (1.5, 4.2, 1.5, 1.8)  # centre and radii of the lower bowl of 3, 5, 6 (and, turned, 9)

DIGIT_STROKES: dict[str, tuple[tuple[_Point, ...], ...]] = {
    "0": (tuple(_arc(1.5, 1.5, 1.5, 1.5, 180, 0) + _arc(1.5, 4.5, 1.5, 1.5, 0, -180) + [(0.0, 1.5)]),),
    "1": (((2.1, 6.0), (2.1, 0.0), (0.5, 1.5)),),
    "2": (tuple([*_arc(1.5, 1.5, 1.5, 1.5, 180, -35), (0.0, 6.0), (3.0, 6.0)]),),
    "3": (((0.2, 0.0), (2.9, 0.0), (1.2, 2.45)), tuple(_arc(*_BOWL, 97, -150))),
    "4": (((2.2, 6.0), (2.2, 0.0), (0.0, 4.3), (3.0, 4.3)),),
    "5": (((2.9, 0.0), (0.3, 0.0), (0.2, 2.9)), tuple(_arc(*_BOWL, 148, -150))),
    "6": (tuple(_arc(*_BOWL, 0, 360, 32)), tuple(_curve((0.0, 4.1), (0.1, 0.4), (2.7, 0.05)))),
    "7": (((0.0, 0.0), (3.0, 0.0), (1.0, 6.0)),),
    "8": (tuple(_arc(1.5, 1.4, 1.3, 1.4, 0, 360, 32)), tuple(_arc(1.5, 4.3, 1.5, 1.7, 0, 360, 32))),
    "9": (
        tuple((3.0 - x, 6.0 - y) for x, y in _arc(*_BOWL, 0, 360, 32)),
        tuple((3.0 - x, 6.0 - y) for x, y in _curve((0.0, 4.1), (0.1, 0.4), (2.7, 0.05))),
    ),
}
"""Centre lines of each digit: polylines in a box 3 wide and 6 high (y down)."""
_GAP = 0.55
"""Space between two digits' centre-line boxes, in grid units (wider than the stroke, as on the signs)."""


@functools.lru_cache(maxsize=512)
def digits_mask(text: str, width: int, height: int, weight: float = 1.0) -> np.ndarray:
    """(height, width) bool mask of the digits ``text``, whose grid (centre lines plus half a stroke) fills the box.

    Args:
        text: one or more of 0-9.
        width, height: box in pixels.
        weight: stroke width relative to DIN 1451 Mittelschrift (1/7 of the digit height).
    """
    if not text or any(ch not in DIGIT_STROKES for ch in text):
        raise ValueError(f"digits_mask draws only digits, got {text!r}")
    stroke = weight * 7.0 / 6.0  # grid units: the ink is 6 + stroke high, the stroke 1/7 of that
    scale = 24.0  # pixels per grid unit while drawing; the mask is resized to the box afterwards
    pad = stroke
    advance = 3.0 + _GAP + stroke
    w = round(((len(text) - 1) * advance + 3.0 + 2 * pad) * scale) + 1
    h = round((6.0 + 2 * pad) * scale) + 1
    img = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(img)
    line_width = max(1, round(stroke * scale))
    for k, ch in enumerate(text):
        x0 = pad + k * advance
        for line in DIGIT_STROKES[ch]:
            pts = [((x0 + x) * scale, (pad + y) * scale) for x, y in line]
            draw.line(pts, fill=255, width=line_width, joint="curve")
            for x, y in (pts[0], pts[-1]):  # round caps
                r = line_width / 2
                draw.ellipse([x - r, y - r, x + r, y + r], fill=255)
    # Fit the nominal grid box (centre lines plus half a stroke), not the ink: a digit's place in the string must
    # not depend on its neighbours' shapes ("50" and "70" share their "0" pixel for pixel).
    half = stroke / 2
    grid = ((pad - half) * scale, (pad - half) * scale, (pad + len(text) * advance - advance + 3 + half) * scale,
            (pad + 6 + half) * scale)  # fmt: skip
    img = img.resize((max(width, 1), max(height, 1)), Image.Resampling.BILINEAR, box=grid)
    mask = np.asarray(img) >= 128
    mask.flags.writeable = False
    return mask
