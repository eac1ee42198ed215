"""Clean templates of all 43 GTSRB sign classes, as palette-index maps (see :mod:`.pictograms`).

Each class id maps to a drawer in :data:`SIGN_DRAWERS` that paints the German StVO sign GTSRB was recorded
from: red-ringed prohibition circles with digits or vehicles, red-bordered warning triangles (point up) with
black pictograms (drawn in :mod:`.triangles`), blue mandatory circles with white arrows, the yield triangle,
the STOP octagon, the priority diamond and the grey-striped end-of signs. :func:`sign_template` caches the
result per class, resolution and design variant, so rendering a dataset draws each template once."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np

from klugerhans.data.classes import check_class_id
from klugerhans.data.synthetic.pictograms import (
    BLACK,
    BLUE,
    GREY,
    RED,
    STYLES,
    WHITE,
    YELLOW,
    Drawer,
    Pen,
    Point,
    car_rear,
    regular_polygon,
    truck_rear,
    truck_side,
)
from klugerhans.data.synthetic.scenes import support_function
from klugerhans.data.synthetic.triangles import PICTO_CY, TRIANGLE_CY, TRIANGLE_RADIUS, WARNING_DRAWERS
from klugerhans.errors import KlugerhansError

__all__ = [
    "PICTO_CY",
    "SIGN_DRAWERS",
    "SPEED_LIMITS",
    "TRIANGLE_CY",
    "TRIANGLE_RADIUS",
    "Drawer",
    "sign_support",
    "sign_template",
]

SIGN_DRAWERS: dict[int, tuple[Drawer, bool]] = dict(WARNING_DRAWERS)
"""Registry: class id -> (drawer, mirrored); a mirrored class is its drawer's output flipped left-right."""


def _register(*class_ids: int, mirrored: bool = False) -> Callable[[Drawer], Drawer]:
    def wrap(fn: Drawer) -> Drawer:
        for cid in class_ids:
            SIGN_DRAWERS[cid] = (fn, mirrored)
        return fn

    return wrap


@functools.lru_cache(maxsize=4096)
def sign_template(class_id: int, resolution: int, variant: int = 0) -> np.ndarray:
    """Draw one sign class as a read-only (R, R) uint8 palette-index map filling the square.

    Args:
        class_id: GTSRB class 0..42.
        resolution: side R in pixels.
        variant: design variant, an index into :data:`klugerhans.data.synthetic.pictograms.STYLES`.
    """
    check_class_id(class_id)
    if not 0 <= variant < len(STYLES):
        raise KlugerhansError(f"unknown sign variant {variant}: use 0..{len(STYLES) - 1}")
    if resolution < 8:
        raise KlugerhansError(f"template resolution {resolution} is too small: use at least 8 pixels")
    drawer, mirrored = SIGN_DRAWERS[int(class_id)]
    pen = Pen(resolution, STYLES[variant])
    drawer(pen)
    out = pen.to_array()
    out = np.ascontiguousarray(out[:, ::-1]) if mirrored else out.copy()
    out.flags.writeable = False
    return out


# --- sign bodies -----------------------------------------------------------------------------------------------


def _prohibition(pen: Pen) -> float:
    """White disc in a red ring; returns the radius of the white inside."""
    pen.disc(0.5, 0.5, 0.5, WHITE)
    pen.disc(0.5, 0.5, 0.485, RED)
    inner = 0.485 - 0.11 * pen.style.ring
    pen.disc(0.5, 0.5, inner, WHITE)
    return inner


def _end_of(pen: Pen) -> float:
    """White disc with a thin grey edge (end-of signs); returns the inner radius."""
    pen.disc(0.5, 0.5, 0.5, GREY)
    pen.disc(0.5, 0.5, 0.48, WHITE)
    return 0.48


def _end_stripes(pen: Pen, inner: float) -> None:
    pen.stripes(0.5, 0.5, inner, [-0.1, -0.05, 0.0, 0.05, 0.1], 0.022, BLACK)


def _mandatory(pen: Pen) -> None:
    pen.disc(0.5, 0.5, 0.5, WHITE)
    pen.disc(0.5, 0.5, 0.485, BLUE)
    pen.zoom_about(0.5, 0.5, pen.style.pictogram)


def _with_pictogram(body: Callable[[Pen], float]) -> Callable[[Pen], float]:
    """Draw ``body``, then let the pictogram that follows take the style's pictogram size."""

    def draw(pen: Pen) -> float:
        inner = body(pen)
        pen.zoom_about(0.5, 0.5, pen.style.pictogram)
        return inner

    return draw


def _speed(pen: Pen, value: str, role: int = BLACK) -> float:
    inner = _prohibition(pen) if role == BLACK else _end_of(pen)
    k = inner / 0.375
    # Three digits are narrower each and a little lower than two. Two digits are 15% larger than they looked right by
    # eye beside sharp real crops: after the capture chain's blur a model trained on real signs reads them best so
    # (tools/real_reads_rendered.py: 20 km/h 51% -> 90%, 60 km/h 50% -> 87%); larger three-digit signs mix 100 and 120.
    if len(value) == 3:
        pen.text(value, 0.5, 0.5, 0.6 * k, 0.4 * k, role)
    else:
        pen.text(value, 0.5, 0.5, 0.48 * k * 1.15, 0.45 * k * 1.15, role)
    return inner


# --- the classes ---------------------------------------------------------------------------------------------

SPEED_LIMITS = {0: "20", 1: "30", 2: "50", 3: "60", 4: "70", 5: "80", 7: "100", 8: "120"}  # class id -> its digits


def _speed_limit(value: str) -> Drawer:
    def draw(pen: Pen) -> None:
        _speed(pen, value)

    return draw


for _cid, _value in SPEED_LIMITS.items():
    _register(_cid)(_speed_limit(_value))


@_register(6)
def _end_80(pen: Pen) -> None:
    _end_stripes(pen, _speed(pen, "80", GREY))


@_register(9)
def _no_passing(pen: Pen) -> None:
    _with_pictogram(_prohibition)(pen)
    car_rear(pen, 0.34, 0.5, 0.22, RED)
    car_rear(pen, 0.66, 0.5, 0.22, BLACK)


@_register(10)
def _no_passing_trucks(pen: Pen) -> None:
    _with_pictogram(_prohibition)(pen)
    truck_rear(pen, 0.33, 0.54, 0.24, RED)
    car_rear(pen, 0.66, 0.5, 0.22, BLACK)


@_register(12)
def _priority_road(pen: Pen) -> None:
    pen.rounded_polygon(0.5, 0.5, 0.5, 4, 0, 0.02, GREY)
    pen.rounded_polygon(0.5, 0.5, 0.485, 4, 0, 0.02, WHITE)
    pen.polygon(regular_polygon(0.5, 0.5, 0.33, 4), BLACK)
    pen.polygon(regular_polygon(0.5, 0.5, 0.315, 4), YELLOW)


@_register(13)
def _yield(pen: Pen) -> None:
    cy, r = 1 - TRIANGLE_CY, TRIANGLE_RADIUS
    pen.rounded_polygon(0.5, cy, r, 3, 180, 0.06, WHITE)
    pen.rounded_polygon(0.5, cy, r * 0.95, 3, 180, 0.05, RED)
    pen.polygon(regular_polygon(0.5, cy, r * 0.95 - 2 * 0.1 * pen.style.ring, 3, 180), WHITE)


@_register(14)
def _stop(pen: Pen) -> None:
    radius = 0.5 / math.cos(math.pi / 8)
    pen.rounded_polygon(0.5, 0.5, radius, 8, 22.5, 0.02, WHITE)
    pen.rounded_polygon(0.5, 0.5, radius * 0.95, 8, 22.5, 0.02, RED)
    pen.text("STOP", 0.5, 0.5, 0.7, 0.26, WHITE)


@_register(15)
def _no_vehicles(pen: Pen) -> None:
    _prohibition(pen)


@_register(16)
def _no_trucks(pen: Pen) -> None:
    _with_pictogram(_prohibition)(pen)
    truck_side(pen, 0.5, 0.52, 0.5, BLACK)


@_register(17)
def _no_entry(pen: Pen) -> None:
    pen.disc(0.5, 0.5, 0.5, WHITE)
    pen.disc(0.5, 0.5, 0.485, RED)
    pen.rect(0.2, 0.43, 0.8, 0.57, WHITE)


@_register(32)
def _end_all_limits(pen: Pen) -> None:
    _end_stripes(pen, _end_of(pen))


# Mandatory signs: broad white arrows with wide heads, filling most of the blue disc.
_ARROW = 0.14
_HEAD = 0.24
_SPREAD = 1.45


@_register(33)
@_register(34, mirrored=True)
def _turn_right(pen: Pen) -> None:
    _mandatory(pen)
    arc = [(0.62 + 0.21 * math.cos(a), 0.57 + 0.21 * math.sin(a)) for a in np.radians(np.linspace(180, 270, 10))]
    pen.arrow([(0.41, 0.86), *arc, (0.86, 0.36)], _ARROW, _HEAD, WHITE, _SPREAD)


@_register(35)
def _ahead_only(pen: Pen) -> None:
    _mandatory(pen)
    pen.arrow([(0.5, 0.88), (0.5, 0.12)], _ARROW, _HEAD + 0.02, WHITE, _SPREAD)


@_register(36)
@_register(37, mirrored=True)
def _straight_or_right(pen: Pen) -> None:
    _mandatory(pen)
    pen.arrow([(0.42, 0.88), (0.42, 0.12)], 0.8 * _ARROW, 0.85 * _HEAD, WHITE, _SPREAD)
    arc = [(0.6 + 0.18 * math.cos(a), 0.68 + 0.18 * math.sin(a)) for a in np.radians(np.linspace(180, 270, 10))]
    pen.arrow([*arc, (0.86, 0.5)], 0.8 * _ARROW, 0.85 * _HEAD, WHITE, _SPREAD)


@_register(38)
@_register(39, mirrored=True)
def _keep_right(pen: Pen) -> None:
    _mandatory(pen)
    pen.arrow([(0.24, 0.24), (0.78, 0.78)], 1.05 * _ARROW, 1.15 * _HEAD, WHITE, _SPREAD)


@_register(40)
def _roundabout(pen: Pen) -> None:
    _mandatory(pen)
    for start in (-60.0, 60.0, 180.0):
        # Counter-clockwise on screen: angles decrease (PIL angles turn clockwise because y points down).
        a = np.radians(np.linspace(start, start - 70, 12))
        pts: list[Point] = [(0.5 + 0.31 * math.cos(t), 0.5 + 0.31 * math.sin(t)) for t in a]
        pen.arrow(pts, 0.1, 0.17, WHITE, 1.5)


@_register(41)
def _end_no_passing(pen: Pen) -> None:
    inner = _with_pictogram(_end_of)(pen)
    car_rear(pen, 0.34, 0.5, 0.22, GREY)
    car_rear(pen, 0.66, 0.5, 0.22, GREY)
    _end_stripes(pen, inner)


@_register(42)
def _end_no_passing_trucks(pen: Pen) -> None:
    inner = _with_pictogram(_end_of)(pen)
    truck_rear(pen, 0.33, 0.54, 0.24, GREY)
    car_rear(pen, 0.66, 0.5, 0.22, GREY)
    _end_stripes(pen, inner)


@functools.lru_cache(maxsize=64)
def sign_support(class_id: int, resolution: int = 128) -> np.ndarray:
    """Read-only support function of the sign's outline (see :func:`.scenes.support_function`)."""
    return support_function(sign_template(class_id, resolution) != 0)
