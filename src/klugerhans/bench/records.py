"""The bench's results as frozen records that become JSON only at the boundary (``result.json``, ``bench.json``).

A record is a frozen dataclass that inherits :class:`Record`: its field names are its JSON keys, in field order, so
each key is defined once, by the field, and the writer (:meth:`Record.to_json`) and the reader
(:meth:`Record.from_json`) are the same code for every record. The field's type says how its value is read back:
floats come back from ``null`` as NaN (and NaN or an infinity goes out as ``null``), dicts keyed by ``int`` from
string keys, tuples from lists, records from their own JSON. A key that files written by older versions lack is an
optional field (``field(default=None, metadata=OPTIONAL)``): None there means "not recorded" and leaves the key out,
so every file reads back as it was.
"""

from __future__ import annotations

import math
import types
from collections.abc import Mapping
from dataclasses import MISSING, Field, fields
from typing import Any, ClassVar, Self, Union, get_args, get_origin, get_type_hints

from klugerhans.errors import KlugerhansError

__all__ = ["OPTIONAL", "Record"]

_ABSENT = "absent_when_none"
OPTIONAL = types.MappingProxyType({_ABSENT: True})
"""Metadata of a field whose key older files lack (``field(default=None, metadata=OPTIONAL)``): None leaves the key
out of the JSON."""
_HINTS: dict[type, dict[str, Any]] = {}
"""Each record class's resolved field types, read once."""


class Record:
    """Mixin of a frozen dataclass whose JSON is its fields (see the module's docstring)."""

    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]

    def to_json(self) -> dict[str, Any]:
        """Plain JSON values: the fields in order, NaN as ``null``, optional fields that are None left out."""
        return {
            f.name: _encode(value)
            for f in fields(self)
            if not ((value := getattr(self, f.name)) is None and f.metadata.get(_ABSENT))
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        """Inverse of :meth:`to_json`; keys it does not know (from a newer klugerhans) are ignored.

        Raises:
            KlugerhansError: ``data`` is not an object or lacks a key that is not optional.
        """
        if not isinstance(data, Mapping):
            raise KlugerhansError(f"a {cls.__name__} is a JSON object, got {type(data).__name__}")
        hints = _HINTS.get(cls) or _HINTS.setdefault(cls, get_type_hints(cls))
        names = [f.name for f in fields(cls)]
        values = {name: _decode(hints[name], data[name]) for name in names if name in data}
        try:
            return cls(**values)
        except TypeError as err:
            required = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
            missing = [name for name in required if name not in data]
            raise KlugerhansError(f"a {cls.__name__} needs the keys {missing} ({err})") from None


def _encode(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_json()
    if isinstance(value, Mapping):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    if callable(getattr(value, "tolist", None)):  # NumPy scalars and arrays
        return _encode(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _decode(kind: Any, value: Any) -> Any:
    """``value`` (plain JSON) as the type ``kind`` of a record's field."""
    origin, args = get_origin(kind), get_args(kind)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (kind,) = [a for a in args if a is not type(None)]
        return _decode(kind, value)
    if kind is float:
        return math.nan if value is None else float(value)
    if isinstance(kind, type) and issubclass(kind, Record):
        return kind.from_json(value)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(args[0], v) for v in value)
        return tuple(_decode(a, v) for a, v in zip(args, value, strict=True))
    if origin in (dict, Mapping):
        key, item = args
        return {_decode(key, k): _decode(item, v) for k, v in value.items()}
    if kind in (int, str, bool):
        return kind(value)
    return value  # Any: kept as it was read
