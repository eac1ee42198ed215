"""Colours as RGB triples: the one parser behind the CLI's flags, the web page's picker and the sticker recipe."""

from __future__ import annotations

import re

import numpy as np

from klugerhans.errors import KlugerhansError

__all__ = ["NAMED_COLORS", "parse_color"]

NAMED_COLORS: dict[str, tuple[int, int, int]] = {
    "black": (0, 0, 0),
    "white": (255, 255, 255),
    "yellow": (255, 220, 0),
    "green": (0, 160, 60),
}
"""The colour names every colour input takes."""

_HEX = re.compile(r"#?([0-9a-f]{6})|#([0-9a-f]{3})")
_NUMBER = r"\s*(\d+(?:\.\d*)?)\s*"
_FUNC = re.compile(rf"rgba?\({_NUMBER},{_NUMBER},{_NUMBER}(?:,\s*[\d.]+\s*)?\)")


def parse_color(value: object, what: str = "colour") -> tuple[int, int, int]:
    """A colour as an RGB triple of ints 0..255.

    Args:
        value: a name (:data:`NAMED_COLORS`), ``#rrggbb`` (the ``#`` optional), ``#rgb``, ``rgb(r, g, b)`` or
            ``rgba(r, g, b, a)`` (a colour picker's value), or three whole numbers 0..255 (JSON gives a list).
        what: what the colour is for, named in the error ("sticker colour").

    Raises:
        KlugerhansError: anything else, in one line.
    """
    if isinstance(value, str):
        return _parse_text(value, what)
    if not isinstance(value, tuple | list) or len(value) != 3 or not all(_is_byte(v) for v in value):
        raise KlugerhansError(f"{what} must be three values 0..255, got {value!r}")
    r, g, b = (int(v) for v in value)
    return r, g, b


def _parse_text(value: str, what: str) -> tuple[int, int, int]:
    text = value.strip().lower()
    if text in NAMED_COLORS:
        return NAMED_COLORS[text]
    if hex_match := _HEX.fullmatch(text):
        digits = hex_match.group(1) or "".join(2 * c for c in hex_match.group(2))
        r, g, b = (int(digits[i : i + 2], 16) for i in (0, 2, 4))
        return r, g, b
    if func_match := _FUNC.fullmatch(text):
        rgb = tuple(round(float(v)) for v in func_match.groups())
        if not all(0 <= v <= 255 for v in rgb):
            raise KlugerhansError(f"{what} must be three values 0..255, got {value.strip()!r}")
        return rgb[0], rgb[1], rgb[2]
    raise KlugerhansError(
        f"cannot read the {what} {value[:40]!r}: give a name ({', '.join(NAMED_COLORS)}), #rrggbb, #rgb or rgb(r, g, b)"
    )


def _is_byte(v: object) -> bool:
    """A whole number 0..255 (an int, or a float such as 255.0); a bool is no colour value."""
    if isinstance(v, bool | np.bool_) or not isinstance(v, int | float | np.integer | np.floating):
        return False
    return float(v).is_integer() and 0 <= float(v) <= 255
