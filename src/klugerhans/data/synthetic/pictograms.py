"""Drawing sign pictograms: a pen on palette-index maps, lettering from a bundled font, and vehicles.

Signs are drawn as *palette-index maps*: every pixel holds a colour role (:data:`WHITE`, :data:`RED`, ...)
instead of a colour, so one cached template serves every sign of its class and the renderer only swaps in
faded, jittered colours. Drawing is hard-edged (anti-aliasing would blend indices); the renderer supersamples.
All coordinates are in units of the template side (0..1, y down).

Digits are stroked in the style of DIN 1451 (:mod:`klugerhans.data.synthetic.digits`); words ("STOP") use
matplotlib's bundled DejaVu Sans (no font files shipped here), squeezed towards DIN 1451's narrow proportions;
Pillow's built-in font is the fallback. The figures of warning triangles are in
:mod:`klugerhans.data.synthetic.figures`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from klugerhans.data.synthetic.digits import digits_mask

TRANSPARENT, WHITE, RED, BLUE, YELLOW, BLACK, GREY, GREEN = range(8)
"""Palette indices (colour roles) of a template; 0 is outside the sign."""
NUM_ROLES = 8
"""Number of palette indices, including :data:`TRANSPARENT`."""

Point = tuple[float, float]
Drawer = Callable[["Pen"], None]
"""Draws one sign class with a pen (see :mod:`klugerhans.data.synthetic.signs`)."""


@dataclass(frozen=True)
class Style:
    """Per-template design variation (real signs differ by manufacturer, age and standard revision)."""

    ring: float = 1.0
    """Width of red rings and borders relative to the standard."""
    digit_width: float = 1.0
    """Width of digits and lettering relative to the standard."""
    digit_height: float = 1.0
    """Height of digits and lettering relative to the standard."""
    bold: bool = True
    """Heavier digit strokes and DejaVu Sans Bold lettering (True), or the standard stroke and Regular (False)."""
    stroke: float = 1.0
    """Line width of pictograms and arrows relative to the standard."""
    pictogram: float = 1.0
    """Size of pictograms and arrows relative to the standard (scaled about the pictogram's centre)."""


def _styles(n: int) -> tuple[Style, ...]:
    """The standard design plus ``n - 1`` variants drawn from a fixed seed (the same in every process)."""
    rng = np.random.default_rng(20120101)
    out = [Style()]
    for _ in range(n - 1):
        ring, width, height, bold, stroke, picto = rng.random(6)
        out.append(
            Style(
                ring=0.85 + 0.3 * ring,
                digit_width=0.82 + 0.28 * width,
                digit_height=0.9 + 0.14 * height,
                bold=bool(bold < 0.75),
                stroke=0.75 + 0.45 * stroke,
                pictogram=0.85 + 0.23 * picto,
            )
        )
    return tuple(out)


DIGIT_WEIGHT = 0.8
"""Stroke of the digits relative to DIN 1451 Mittelschrift's (bold variants 15% heavier, the others 5% lighter):
at 32 px real signs' digits read thinner than the standard's, and a model trained on real signs reads rendered ones
better at 0.8 than at 1 or 0.65 (``tools/real_reads_rendered.py``)."""

STYLES: tuple[Style, ...] = _styles(12)
"""The design variants templates are drawn in; a renderer picks one per physical sign."""


@functools.cache
def load_font(bold: bool = True) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans (Bold) from matplotlib's data at a large size; Pillow's built-in font if that fails."""
    try:
        from matplotlib import font_manager

        prop = font_manager.FontProperties(family="DejaVu Sans", weight="bold" if bold else "normal")
        return ImageFont.truetype(font_manager.findfont(prop, fallback_to_default=True), 160)
    except (ImportError, OSError, ValueError):
        return ImageFont.load_default(160)


@functools.lru_cache(maxsize=512)
def text_mask(text: str, width: int, height: int, bold: bool = True) -> np.ndarray:
    """(height, width) bool mask of ``text`` whose ink exactly fills the box (so digits share one height)."""
    font = load_font(bold)
    left, top, right, bottom = font.getbbox(text)
    img = Image.new("L", (int(right - left) + 8, int(bottom - top) + 8), 0)
    ImageDraw.Draw(img).text((4 - left, 4 - top), text, fill=255, font=font)
    ink = img.getbbox() or (0, 0, img.width, img.height)
    img = img.crop(ink).resize((max(width, 1), max(height, 1)), Image.Resampling.BILINEAR)
    mask = np.asarray(img) >= 128
    mask.flags.writeable = False
    return mask


def _arc_points(cx: float, cy: float, r: float, start: float, end: float, n: int = 24) -> list[Point]:
    """Points on a circle from angle ``start`` to ``end`` (degrees, clockwise from +x since y points down)."""
    angles = np.radians(np.linspace(start, end, n))
    return [(cx + r * math.cos(a), cy + r * math.sin(a)) for a in angles]


def regular_polygon(cx: float, cy: float, radius: float, n: int, rotation: float = 0.0) -> list[Point]:
    """Vertices of a regular n-gon with circumradius ``radius``; ``rotation`` in degrees (0: a vertex at top)."""
    angles = np.radians(rotation - 90 + np.arange(n) * 360 / n)
    return [(cx + radius * math.cos(a), cy + radius * math.sin(a)) for a in angles]


class Pen:
    """Draws colour roles onto a square palette-index map in unit coordinates.

    Args:
        resolution: side R of the (R, R) map in pixels.
        style: design variant (line widths, lettering).
    """

    def __init__(self, resolution: int, style: Style | None = None) -> None:
        self.res = resolution
        self.style = style or Style()
        self.img = Image.new("L", (resolution, resolution), TRANSPARENT)
        self.draw = ImageDraw.Draw(self.img)
        self.origin: Point = (0.5, 0.5)
        self.zoom = 1.0
        self.shift = 0.0

    def zoom_about(self, cx: float, cy: float, zoom: float, shift: float = 0.0) -> None:
        """Scale everything drawn from now on by ``zoom`` about (cx, cy) (used for pictogram size variants), then move
        it ``shift`` down."""
        self.origin, self.zoom, self.shift = (cx, cy), zoom, shift

    def to_array(self) -> np.ndarray:
        """(R, R) uint8 palette indices."""
        return np.asarray(self.img, dtype=np.uint8)

    def _xy(self, points: Sequence[Point]) -> list[Point]:
        (ox, oy), k, s = self.origin, self.zoom, self.res
        return [((ox + k * (x - ox)) * s, (oy + self.shift + k * (y - oy)) * s) for x, y in points]

    def _px(self, length: float) -> float:
        """A length in unit coordinates, in pixels after zooming."""
        return length * self.zoom * self.res

    def disc(self, cx: float, cy: float, r: float, role: int) -> None:
        ((x, y),) = self._xy([(cx, cy)])
        rr = self._px(r)
        # Pillow's box is inclusive; keep it non-empty for discs under a pixel.
        self.draw.ellipse([x - rr, y - rr, max(x - rr, x + rr - 1), max(y - rr, y + rr - 1)], fill=role)

    def polygon(self, points: Sequence[Point], role: int) -> None:
        self.draw.polygon(self._xy(points), fill=role)

    def rect(self, x0: float, y0: float, x1: float, y1: float, role: int) -> None:
        self.polygon([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], role)

    def line(self, points: Sequence[Point], width: float, role: int, caps: bool = True) -> None:
        """Polyline ``width`` wide (scaled by the style's stroke) with round joints and, optionally, round caps."""
        w = width * self.style.stroke
        self.draw.line(self._xy(points), fill=role, width=max(1, round(self._px(w))), joint="curve")
        if caps:
            for x, y in (points[0], points[-1]):
                self.disc(x, y, w / 2, role)

    def arc(self, cx: float, cy: float, r: float, start: float, end: float, width: float, role: int) -> None:
        """Circular arc (see :func:`_arc_points` for the angle convention) as a thick polyline."""
        self.line(_arc_points(cx, cy, r, start, end), width, role, caps=False)

    def arrow(self, points: Sequence[Point], width: float, head: float, role: int, spread: float = 1.1) -> None:
        """Polyline ending in a triangular head ``head`` long and ``spread * head`` wide, along the last segment."""
        (x0, y0), (x1, y1) = points[-2], points[-1]
        d = math.hypot(x1 - x0, y1 - y0) or 1.0
        ux, uy = (x1 - x0) / d, (y1 - y0) / d
        half = 0.5 * head * spread * max(self.style.stroke, 0.9)
        bx, by = x1 - ux * head, y1 - uy * head
        # Overlap the shaft and the head a little so no gap opens after rounding.
        self.line([*points[:-1], (bx + ux * 0.02, by + uy * 0.02)], width, role, caps=False)
        self.polygon([(x1, y1), (bx - uy * half, by + ux * half), (bx + uy * half, by - ux * half)], role)

    def text(self, text: str, cx: float, cy: float, width: float, height: float, role: int) -> None:
        """Lettering centred on (cx, cy), ``height`` tall and ``width`` (times the style's digit width) wide.

        Digits are stroked in the style of the signs' DIN 1451 (:mod:`klugerhans.data.synthetic.digits`; bold
        variants with a heavier stroke), words are set in DejaVu Sans.
        """
        w = round(self._px(width * self.style.digit_width))
        h = round(self._px(height * self.style.digit_height))
        ((x, y),) = self._xy([(cx, cy)])
        if text.isdigit():
            mask = digits_mask(text, w, h, DIGIT_WEIGHT * (1.15 if self.style.bold else 0.95))
        else:
            mask = text_mask(text, w, h, self.style.bold)
        self.paint(mask, round(x - w / 2), round(y - h / 2), role)

    def paint(self, mask: np.ndarray, x0: int, y0: int, role: int) -> None:
        """Set ``role`` where the bool pixel ``mask`` is True, its top-left corner at pixel (x0, y0)."""
        arr = np.array(self.img)
        h, w = mask.shape
        ys = slice(max(y0, 0), min(y0 + h, self.res))
        xs = slice(max(x0, 0), min(x0 + w, self.res))
        region = arr[ys, xs]
        region[mask[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0]] = role
        self.img = Image.fromarray(arr)
        self.draw = ImageDraw.Draw(self.img)

    def stripes(self, cx: float, cy: float, r: float, offsets: Sequence[float], width: float, role: int) -> None:
        """Parallel diagonal lines (bottom-left to top-right) ``offsets`` off the centre, clipped to a disc."""
        layer = Pen(self.res, Style(stroke=self.style.stroke))
        for off in offsets:
            # Shift along the normal (1, 1)/sqrt(2) of the stripe direction (1, -1).
            o = off / math.sqrt(2)
            layer.line([(cx - 0.7 + o, cy + 0.7 + o), (cx + 0.7 + o, cy - 0.7 + o)], width, role, caps=False)
        yy, xx = (np.mgrid[0 : self.res, 0 : self.res] + 0.5) / self.res
        inside = (xx - cx) ** 2 + (yy - cy) ** 2 <= r**2
        self.paint((layer.to_array() == role) & inside, 0, 0, role)

    def rounded_polygon(self, cx: float, cy: float, radius: float, n: int, rotation: float, corner: float, role: int):
        """Regular n-gon with corners rounded by ``corner`` (a smaller n-gon grown by a disc), same outer extent."""
        apothem = radius * math.cos(math.pi / n)
        inner = regular_polygon(cx, cy, radius * (apothem - corner) / apothem, n, rotation)
        self.polygon(inner, role)
        w = round(self._px(2 * corner))
        self.draw.line(self._xy([*inner, inner[0]]), fill=role, width=max(1, w))
        for x, y in inner:
            self.disc(x, y, corner, role)


# --- symbols, each placed by a centre (cx, cy) and a size s in template units ----------------------------------


def car_rear(pen: Pen, cx: float, cy: float, s: float, role: int) -> None:
    """A car seen from behind, ``s`` wide."""
    pen.polygon([(cx - 0.36 * s, cy - 0.02 * s), (cx - 0.25 * s, cy - 0.38 * s),
                 (cx + 0.25 * s, cy - 0.38 * s), (cx + 0.36 * s, cy - 0.02 * s)], role)  # fmt: skip
    pen.rect(cx - 0.5 * s, cy - 0.06 * s, cx + 0.5 * s, cy + 0.28 * s, role)
    pen.rect(cx - 0.45 * s, cy + 0.2 * s, cx - 0.2 * s, cy + 0.45 * s, role)
    pen.rect(cx + 0.2 * s, cy + 0.2 * s, cx + 0.45 * s, cy + 0.45 * s, role)


def truck_rear(pen: Pen, cx: float, cy: float, s: float, role: int) -> None:
    """A lorry seen from behind: a box on wheels, ``s`` wide and taller than a car."""
    pen.rect(cx - 0.5 * s, cy - 0.8 * s, cx + 0.5 * s, cy + 0.28 * s, role)
    pen.rect(cx - 0.45 * s, cy + 0.2 * s, cx - 0.18 * s, cy + 0.45 * s, role)
    pen.rect(cx + 0.18 * s, cy + 0.2 * s, cx + 0.45 * s, cy + 0.45 * s, role)


def truck_side(pen: Pen, cx: float, cy: float, s: float, role: int) -> None:
    """A lorry in profile facing left, ``s`` long."""
    pen.rect(cx - 0.2 * s, cy - 0.28 * s, cx + 0.5 * s, cy + 0.1 * s, role)  # cargo box
    pen.polygon([(cx - 0.5 * s, cy + 0.1 * s), (cx - 0.5 * s, cy - 0.06 * s), (cx - 0.42 * s, cy - 0.2 * s),
                 (cx - 0.24 * s, cy - 0.2 * s), (cx - 0.24 * s, cy + 0.1 * s)], role)  # fmt: skip
    for wx in (-0.36, 0.18, 0.36):
        pen.disc(cx + wx * s, cy + 0.13 * s, 0.085 * s, role)
