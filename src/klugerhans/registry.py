"""Registries: named plug-in points (datasets, models, composites, attribution and fix methods).

Every extension point of klugerhans is a :class:`Registry`, a ``dict`` from name to factory with a
decorator that fills it and a lookup that fails with one line naming the closest known names, in the
manner of timm's model registry and zennit's ``@register_composite``.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from klugerhans.errors import KlugerhansError

T = TypeVar("T")

REGISTRIES: dict[str, Registry[object]] = {}
"""Every registry by its ``kind``, for tests and ``--help`` texts that list all plug-ins."""


class Registry(dict[str, T], Generic[T]):
    """Names to factories of one ``kind`` ("dataset", "composite", ...).

    A ``dict`` so that ``name in REG``, ``REG[name]`` and ``sorted(REG)`` work as before; use
    :meth:`register` to add and :meth:`get_or_raise` for user-facing lookups.
    """

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        REGISTRIES[kind] = self  # type: ignore[assignment]

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: store the decorated factory under ``name`` (a second registration of a name is an error)."""

        def wrap(fn: T) -> T:
            if name in self and self[name] is not fn:
                raise KlugerhansError(f"{self.kind} {name!r} is registered twice; choose another name")
            self[name] = fn
            return fn

        return wrap

    def get_or_raise(self, name: str) -> T:
        """The factory registered as ``name``, or a one-line error that names the closest known names."""
        if name in self:
            return self[name]
        raise KlugerhansError(f"unknown {self.kind} {name!r}: {suggest(name, self)}")


def suggest(name: str, choices: Iterable[str]) -> str:
    """``"did you mean a, b? choose one of ..."`` for an unknown ``name`` among ``choices``."""
    names = sorted(choices)
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    listing = ", ".join(names) if len(names) <= 24 else ", ".join(names[:24]) + f", ... ({len(names)} in all)"
    hint = f"did you mean {', '.join(close)}? " if close else ""
    return f"{hint}choose one of {listing}"
