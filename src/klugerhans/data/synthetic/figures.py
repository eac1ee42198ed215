"""The figures inside warning triangles: people, a road worker, a deer, a cyclist, a snowflake, a skidding car.

Each is drawn after the German StVO pictogram GTSRB was recorded from (Zeichen 101-151), with the pose, mass and
stroke weight that survive at 32 px: what a camera sees of them there is a few dark blobs and strokes, so the
silhouettes were matched side by side with real GTSRB crops (``tools/make_contact_sheet.py``), not with the
drawings of the StVO catalogue. Every figure is placed by a centre (cx, cy) and a size s in template units
(see :class:`klugerhans.data.synthetic.pictograms.Pen`); ``facing`` -1 turns it to the left, +1 to the right.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from klugerhans.data.synthetic.pictograms import BLACK, GREEN, RED, WHITE, YELLOW, Pen, Point


def _placed(points: Sequence[Point], cx: float, cy: float, s: float, facing: int = 1, turn: float = 0.0) -> list[Point]:
    """Figure-local points (units of s, +x forward when ``facing`` is +1) turned by ``turn`` degrees and placed."""
    c, n = math.cos(math.radians(turn)), math.sin(math.radians(turn))
    return [(cx + s * facing * (x * c - y * n), cy + s * (x * n + y * c)) for x, y in points]


def person(pen: Pen, cx: float, cy: float, s: float, role: int, facing: int = -1, stride: float = 1.0) -> None:
    """A walking figure ``s`` tall (head to feet) centred on (cx, cy), seen from the side.

    ``stride`` spreads the legs and swings the arms (1: walking; more: running).
    """

    def at(*points: Point) -> list[Point]:
        return _placed(points, cx, cy, s, facing)

    limb = 0.085 * s
    pen.disc(*at((0.02, -0.41))[0], 0.085 * s, role)
    neck, hip = (0.01, -0.29), (-0.01, 0.06)
    pen.line(at(neck, hip), 0.14 * s, role)
    k = 0.1 * stride
    pen.line(at(hip, (0.5 * k, 0.28), (1.9 * k, 0.5)), limb, role)  # front leg, knee forward
    pen.line(at(hip, (-0.4 * k, 0.28), (-1.5 * k, 0.49)), limb, role)
    shoulder = (0.01, -0.23)
    pen.line(at(shoulder, (0.9 * k, -0.06), (1.3 * k, 0.06)), 0.8 * limb, role)
    pen.line(at(shoulder, (-0.9 * k, -0.07), (-1.4 * k, 0.04)), 0.8 * limb, role)


def children(pen: Pen, cx: float, cy: float, s: float, role: int) -> None:
    """Zeichen 136: a tall child and a small one hand in hand, running to the left; ``s`` is the tall one's height."""
    person(pen, cx + 0.24 * s, cy, s, role, stride=1.3)
    person(pen, cx - 0.26 * s, cy + 0.12 * s, 0.76 * s, role, stride=1.2)
    pen.line([(cx + 0.06 * s, cy + 0.02 * s), (cx - 0.12 * s, cy + 0.08 * s)], 0.06 * s, role)  # the held hands


def worker(pen: Pen, cx: float, cy: float, s: float, role: int) -> None:
    """Zeichen 123: a man ``s`` tall, bent over his shovel, digging into a heap of earth on his right."""

    def at(*points: Point) -> list[Point]:
        return _placed(points, cx, cy, s)

    limb = 0.1 * s
    pen.disc(*at((0.1, -0.36))[0], 0.09 * s, role)
    hip, shoulder = (-0.12, 0.06), (0.04, -0.22)
    pen.line(at(hip, shoulder), 0.17 * s, role)
    pen.line(at(hip, (-0.02, 0.27), (0.06, 0.5)), limb, role)  # legs wide apart, braced
    pen.line(at(hip, (-0.24, 0.27), (-0.36, 0.5)), limb, role)
    pen.line(at(shoulder, (0.14, -0.06), (0.2, 0.06)), 0.8 * limb, role)
    pen.line(at(shoulder, (0.0, -0.08), (0.06, -0.1)), 0.8 * limb, role)
    pen.line(at((-0.08, -0.24), (0.34, 0.34)), 0.055 * s, role)  # shovel handle, across the body
    pen.polygon(at((0.28, 0.32), (0.4, 0.24), (0.48, 0.38), (0.36, 0.46)), role)  # its blade, in the heap
    heap = [(0.56 + 0.24 * math.cos(a), 0.5 - 0.3 * math.sin(a) ** 0.8) for a in np.radians(np.linspace(0, 180, 16))]
    pen.polygon(at(*heap), role)


def deer(pen: Pen, cx: float, cy: float, s: float, role: int, facing: int = -1) -> None:
    """Zeichen 142: a stag ``s`` long leaping up and forward, forelegs tucked, hind legs stretched back."""

    def at(*points: Point) -> list[Point]:
        return _placed(points, cx, cy, s, facing, turn=-30)

    w = 0.08 * s
    pen.polygon(at((-0.3, -0.01), (-0.24, 0.09), (0.12, 0.11), (0.3, 0.06), (0.34, -0.04), (0.26, -0.11),
                   (-0.12, -0.1), (-0.27, -0.1)), role)  # fmt: skip
    pen.line(at((0.24, -0.04), (0.36, -0.18), (0.42, -0.24)), 0.13 * s, role)  # neck
    pen.polygon(at((0.36, -0.3), (0.44, -0.32), (0.58, -0.22), (0.55, -0.18), (0.4, -0.18)), role)  # head
    pen.line(at((0.4, -0.3), (0.34, -0.44), (0.26, -0.5)), 0.6 * w, role)  # antlers, swept back
    pen.line(at((0.36, -0.4), (0.26, -0.38)), 0.6 * w, role)
    pen.line(at((0.24, 0.06), (0.38, 0.14), (0.32, 0.26)), w, role)  # forelegs, tucked
    pen.line(at((0.14, 0.08), (0.28, 0.2), (0.2, 0.3)), w, role)
    pen.line(at((-0.24, 0.05), (-0.4, 0.12), (-0.54, 0.14)), w, role)  # hind legs, stretched back
    pen.line(at((-0.26, 0.0), (-0.42, 0.04), (-0.56, 0.02)), w, role)
    pen.line(at((-0.28, -0.06), (-0.36, -0.13)), 0.8 * w, role)  # tail


def cyclist(pen: Pen, cx: float, cy: float, s: float, role: int, facing: int = -1) -> None:
    """Zeichen 138: a rider on a bicycle in profile, ``s`` long, the rider bent over the handlebar."""

    def at(*points: Point) -> list[Point]:
        return _placed(points, cx, cy, s, facing)

    # Thin wheels with open hubs: at 32 px real crops show two rings, which a heavier stroke fills into bumps.
    r, w = 0.22 * s, 0.055 * s
    back, front = (-0.29, 0.2), (0.29, 0.2)
    for x, y in (back, front):
        ((px, py),) = at((x, y))
        pen.arc(px, py, r, 0, 360, w, role)
    pedal, seat, bar = (-0.02, 0.22), (-0.1, -0.02), (0.18, -0.04)
    pen.line(at(back, pedal, bar, front), w, role)
    pen.line(at(back, seat, pedal), w, role)
    # The rider sits low and bent over the handlebar: on real signs the wheels carry most of the ink.
    pen.disc(*at((0.12, -0.36))[0], 0.07 * s, role)
    pen.line(at((-0.1, -0.04), (0.04, -0.23)), 0.075 * s, role)
    pen.line(at((0.03, -0.2), (0.18, -0.06)), 0.05 * s, role)  # arm to the handlebar
    pen.line(at((-0.08, -0.04), (0.08, 0.08), (0.0, 0.22)), 0.05 * s, role)  # leg on the pedal


def snowflake(pen: Pen, cx: float, cy: float, s: float, role: int) -> None:
    """Zeichen 113 (ice, snow): a six-armed snowflake ``s`` across with heavy arms and forked tips, a dense star."""
    w = 0.1 * s
    pen.disc(cx, cy, 0.1 * s, role)
    for k in range(6):
        a = math.radians(90 + 60 * k)
        ux, uy = math.cos(a), -math.sin(a)
        pen.line([(cx, cy), (cx + 0.5 * s * ux, cy + 0.5 * s * uy)], w, role)
        mid = (cx + 0.3 * s * ux, cy + 0.3 * s * uy)
        for side in (-1, 1):
            b = a + side * math.radians(50)
            pen.line([mid, (mid[0] + 0.16 * s * math.cos(b), mid[1] - 0.16 * s * math.sin(b))], 0.8 * w, role)


def skidding_car(pen: Pen, cx: float, cy: float, s: float, role: int) -> None:
    """Zeichen 114 (slippery road): a car from behind, ``s`` wide, above two wavy skid tracks."""

    def at(*points: Point) -> list[Point]:
        return _placed(points, cx, cy, s)

    # Real crops show a flat, wide car with a light window band and short tracks; a tilted car with long tracks
    # was read as a curve by a model trained on real signs.
    w = 1.1
    pen.polygon(at((-0.3 * w, -0.1), (-0.2 * w, -0.32), (0.2 * w, -0.32), (0.3 * w, -0.1)), role)  # roof
    pen.polygon(at((-0.5 * w, -0.12), (0.5 * w, -0.12), (0.5 * w, 0.1), (-0.5 * w, 0.1)), role)
    pen.polygon(at((-0.22 * w, -0.12), (-0.15 * w, -0.254), (0.15 * w, -0.254), (0.22 * w, -0.12)), WHITE)  # windows
    for x in (-0.44 * w, 0.26 * w):
        pen.polygon(at((x, 0.0), (x + 0.18, 0.0), (x + 0.18, 0.15), (x, 0.15)), role)  # wheels
    for x in (-0.32 * w, 0.34 * w):
        t = np.linspace(0, 1, 16)
        track = list(zip(x + 0.1 * np.sin(2 * math.pi * t) + 0.06 * t * np.sign(x), 0.26 + 0.6 * t, strict=True))
        pen.line(_placed(track, cx, cy, s), 0.04 * s, role)


def traffic_light(pen: Pen, cx: float, cy: float, s: float, role: int = BLACK) -> None:
    """Zeichen 131: three lamps, red over yellow over green, each thinly ringed in ``role``, ``s`` tall."""
    # Real crops show three coloured spots and hardly any black: a heavy ring made a dark column, read as "!".
    for k, lamp in enumerate((RED, YELLOW, GREEN)):
        y = cy + (k - 1) * 0.34 * s
        pen.disc(cx, y, 0.15 * s, role)
        pen.disc(cx, y, 0.13 * s, lamp)
