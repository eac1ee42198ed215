"""The warning triangles (GTSRB classes 11 and 18-31): the red-bordered body and the pictogram of each class.

German warning signs (StVO Zeichen 101-151, and Zeichen 301 for right of way at the next junction) share one
body, a white-rimmed red triangle pointing up; what tells them apart is a black pictogram in its lower two thirds.
At 32 px that pictogram is a few pixels of ink, so its placement, mass and stroke follow real GTSRB crops (the
figures are in :mod:`klugerhans.data.synthetic.figures`). :data:`WARNING_DRAWERS` is read by
:mod:`klugerhans.data.synthetic.signs`, which registers every class.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from klugerhans.data.synthetic.figures import (
    children,
    cyclist,
    deer,
    person,
    skidding_car,
    snowflake,
    traffic_light,
    worker,
)
from klugerhans.data.synthetic.pictograms import BLACK, RED, WHITE, Drawer, Pen, regular_polygon

TRIANGLE_RADIUS = 1 / math.sqrt(3)
"""Circumradius of a triangle whose side is the template width."""
TRIANGLE_CY = 0.5 + TRIANGLE_RADIUS / 4
"""Centre of a point-up triangle centred vertically in the template (its height is 1.5 radii)."""
PICTO_CY = 0.63
"""Vertical centre of warning pictograms, about which their size varies."""
PICTO_SHIFT = 0.02
"""How far every warning pictogram is moved down from where it is drawn: real pictograms sit low in the triangle, and
a model trained on real signs reads rendered ones better so (80.7% of the rendered triangles against 77.6% unmoved,
``tools/real_reads_rendered.py``)."""


def warning_body(pen: Pen) -> None:
    """White-rimmed red triangle, point up, with a white inside; what follows is zoomed to the pictogram size."""
    r = TRIANGLE_RADIUS
    pen.rounded_polygon(0.5, TRIANGLE_CY, r, 3, 0, 0.06, WHITE)
    pen.rounded_polygon(0.5, TRIANGLE_CY, r * 0.95, 3, 0, 0.05, RED)
    border = 0.08 * pen.style.ring  # perpendicular width; the circumradius shrinks by twice that
    pen.polygon(regular_polygon(0.5, TRIANGLE_CY, r * 0.95 - 2 * border, 3, 0), WHITE)
    pen.zoom_about(0.5, PICTO_CY, 0.84 * pen.style.pictogram, PICTO_SHIFT)


def _right_of_way(pen: Pen) -> None:
    warning_body(pen)
    s = pen.style.stroke
    # Zeichen 301: an upright bar pointed at the top (the priority road), broadest where a thinner bar crosses it,
    # narrower at its foot; at 32 px real crops show a compact dark cross with a heavy middle. The old drawing (a
    # post widening to its foot, a long crossbar high up) was read as pedestrians by a model trained on real signs.
    pen.polygon([(0.5, 0.36), (0.5 + 0.1 * s, 0.56), (0.5 + 0.06 * s, 0.84), (0.5 - 0.06 * s, 0.84),
                 (0.5 - 0.1 * s, 0.56)], BLACK)  # fmt: skip
    y, half, thick = 0.58, 0.19, 0.045 * s
    pen.polygon([(0.5 - half, y - 0.4 * thick), (0.5, y - thick), (0.5 + half, y - 0.4 * thick),
                 (0.5 + half, y + 0.4 * thick), (0.5, y + thick), (0.5 - half, y + 0.4 * thick)], BLACK)  # fmt: skip


def _general_caution(pen: Pen) -> None:
    warning_body(pen)
    s = pen.style.stroke
    pen.polygon([(0.5 - 0.055 * s, 0.37), (0.5 + 0.055 * s, 0.37), (0.5 + 0.03 * s, 0.71), (0.5 - 0.03 * s, 0.71)],
                BLACK)  # fmt: skip
    pen.disc(0.5, 0.79, 0.045 * s, BLACK)


def _curve_left(pen: Pen) -> None:
    warning_body(pen)
    # Zeichen 103: one thick arrow, a short stem up from the foot, a broad bend, then a big head pointing left
    # and a little down; real crops show its mass in the middle of the triangle, not a tall thin "L".
    arc = [(0.44 + 0.14 * math.cos(a), 0.62 + 0.14 * math.sin(a)) for a in np.radians(np.linspace(0, -100, 12))]
    pen.arrow([(0.58, 0.81), *arc, (0.31, 0.5)], 0.115, 0.17, BLACK, 1.4)


def _double_curve(pen: Pen) -> None:
    warning_body(pen)
    # Zeichen 105: first left, then right: a thick stem up the right, bent over to the left almost flat, up again
    # to a broad head; both bends are sharp, as on real crops.
    pen.arrow([(0.58, 0.86), (0.58, 0.71), (0.42, 0.63), (0.42, 0.52), (0.42, 0.36)], 0.115, 0.16, BLACK, 1.4)


def _bumpy_road(pen: Pen) -> None:
    warning_body(pen)
    for x in (0.39, 0.61):
        pen.polygon([(x + 0.105 * math.cos(a), 0.8 - 0.1 * math.sin(a)) for a in np.radians(np.linspace(0, 180, 16))],
                    BLACK)  # fmt: skip
    pen.rect(0.26, 0.79, 0.74, 0.83, BLACK)


def _road_narrows_right(pen: Pen) -> None:
    warning_body(pen)
    pen.line([(0.4, 0.4), (0.4, 0.85)], 0.065, BLACK, caps=False)
    pen.line([(0.55, 0.4), (0.55, 0.56), (0.62, 0.68), (0.62, 0.85)], 0.065, BLACK, caps=False)


def _with_figure(figure: Callable[..., None], cx: float, cy: float, s: float, **kwargs: float) -> Drawer:
    """A drawer of the warning body with ``figure`` (from :mod:`.figures`) at (cx, cy), size s, in black."""

    def draw(pen: Pen) -> None:
        warning_body(pen)
        figure(pen, cx, cy, s, BLACK, **kwargs)

    return draw


WARNING_DRAWERS: dict[int, tuple[Drawer, bool]] = {
    11: (_right_of_way, False),
    18: (_general_caution, False),
    19: (_curve_left, False),
    20: (_curve_left, True),
    21: (_double_curve, False),
    22: (_bumpy_road, False),
    23: (_with_figure(skidding_car, 0.5, 0.59, 0.34), False),
    24: (_road_narrows_right, False),
    25: (_with_figure(worker, 0.46, 0.6, 0.5), False),
    26: (_with_figure(traffic_light, 0.5, 0.63, 0.44), False),
    # The pedestrian strides wide: upright with a short stride, or bolder, a model trained on real signs reads it as
    # general caution or right of way.
    27: (_with_figure(person, 0.5, 0.6, 0.5, stride=1.6), False),
    28: (_with_figure(children, 0.5, 0.6, 0.46), False),
    29: (_with_figure(cyclist, 0.5, 0.65, 0.52), False),
    30: (_with_figure(snowflake, 0.5, 0.64, 0.4), False),
    31: (_with_figure(deer, 0.5, 0.62, 0.5), False),
}
"""Class id -> (drawer, mirrored) of every warning triangle; a mirrored class is its drawer's output flipped."""
