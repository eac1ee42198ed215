"""GTSRB CSV annotations: one row per image with its class, size and sign box (ROI).

The INI release separates fields with ``;`` and names the image in ``Filename``; the Kaggle copy uses ``,``
and ``Path``. Both are read by :func:`read_csv`, which sniffs the separator and matches headers
case-insensitively.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass

from klugerhans.data.classes import check_class_id
from klugerhans.errors import DataError, KlugerhansError

ROI_COLUMNS = ("Width", "Height", "Roi.X1", "Roi.Y1", "Roi.X2", "Roi.Y2", "ClassId")
"""Columns every GTSRB CSV has besides the file name (``Filename`` or ``Path``)."""


@dataclass(frozen=True)
class Annotation:
    """One image row of a GTSRB CSV."""

    member: str
    """Path of the image inside its split's container, ``/``-separated."""
    source: str
    """Where the image came from, for reports (``archive.zip:member`` or a path relative to the root)."""
    label: int
    """Class id 0..42."""
    track: int
    """Physical-sign track id from the file name; -1 for test images."""
    width: int
    """Image width the CSV states (the original size; may differ from the file, see ``gtsrb.sign_geometry``)."""
    height: int
    """Image height the CSV states."""
    roi: tuple[int, int, int, int]
    """Sign box ``(x0, y0, x1, y1)`` in CSV pixels; x1/y1 exclusive (the INI border is >= 5 px on all sides
    only when read that way)."""


class Row:
    """One CSV record: values by column name (any case), and ``where`` (file and line) for messages."""

    __slots__ = ("_values", "where")

    def __init__(self, values: dict[str, str], where: str) -> None:
        self._values = values
        self.where = where

    def __getitem__(self, column: str) -> str:
        return self._values[column.lower()]

    def integer(self, column: str) -> int:
        """The value of ``column`` as an int; DataError if it is not a whole number."""
        text = self._values[column.lower()]
        try:
            return int(text)
        except ValueError:
            raise DataError(f"{self.where}: column {column} holds {text!r}, not a whole number; fix the CSV") from None


def read_csv(data: bytes, where: str, required: tuple[str, ...]) -> list[Row]:
    """Parse GTSRB CSV bytes: ``;`` (INI) or ``,`` (Kaggle) separated, sniffed from the header; headers
    matched case-insensitively.

    Raises:
        DataError: not text, no header, a required column missing, or a row shorter than the header.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(f"{where}: not a text CSV file; expected the GTSRB annotations") from None
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise DataError(f"{where}: empty CSV; expected a header with {', '.join(required)}")
    delimiter = ";" if lines[0].count(";") >= lines[0].count(",") else ","
    records = csv.reader(lines, delimiter=delimiter)
    header = [h.strip().lower() for h in next(records)]
    missing = [c for c in required if c.lower() not in header]
    if missing:
        raise DataError(
            f"{where}: CSV lacks column(s) {', '.join(missing)}; expected {', '.join(required)} "
            f"(found {', '.join(header)})"
        )
    index = {c.lower(): header.index(c.lower()) for c in required}
    rows = []
    for lineno, record in enumerate(records, start=2):
        if not any(field.strip() for field in record):
            continue
        if len(record) < len(header):
            raise DataError(f"{where} line {lineno}: {len(record)} fields, the header has {len(header)}; fix the CSV")
        rows.append(Row({c: record[i].strip() for c, i in index.items()}, f"{where} line {lineno}"))
    return rows


def to_annotation(row: Row, member: str, source: str, track: int) -> Annotation:
    """Build an :class:`Annotation` from a row with the ROI columns; DataError on bad class ids or ROIs."""
    width, height = row.integer("Width"), row.integer("Height")
    roi = (row.integer("Roi.X1"), row.integer("Roi.Y1"), row.integer("Roi.X2"), row.integer("Roi.Y2"))
    try:
        label = check_class_id(row.integer("ClassId"), what="ClassId")
    except KlugerhansError as err:
        raise DataError(f"{row.where}: {err}; fix the CSV") from None
    if width < 1 or height < 1 or not (0 <= roi[0] < roi[2] <= width and 0 <= roi[1] < roi[3] <= height):
        raise DataError(
            f"{row.where}: ROI {roi} does not fit a {width}x{height} image; expected 0 <= X1 < X2 <= Width, "
            "0 <= Y1 < Y2 <= Height"
        )
    return Annotation(member, source, label, track, width, height, roi)


def check_unique(rows: list[Row], key: str, where: str) -> list[Row]:
    """Return ``rows``; DataError if two of them name the same file in column ``key``."""
    seen: set[str] = set()
    for row in rows:
        if row[key] in seen:
            raise DataError(f"{where}: lists {row[key]} twice (duplicate files); remove the duplicate row")
        seen.add(row[key])
    return rows


def parse_track(filename: str, pattern: re.Pattern[str], group: int) -> int:
    """The track id in ``filename`` (regex ``group`` of ``pattern``); -1 if the name does not match."""
    m = pattern.match(filename)
    return int(m.group(group)) if m is not None else -1
