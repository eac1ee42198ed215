"""Flags made from a config dataclass: each default comes from its field, each help text from the field's docstring.

The configs document every field once, in the class (litgpt's attribute docstrings: a string literal under the
field). A command names the fields it exposes (:class:`ConfigFlags`) and gets one flag per field whose default is the
field's and whose help is the docstring's first sentence, and builds the config back from the parsed flags, so no
default is written twice. :class:`Flag` says where a flag differs from its field: its name, its type, its wording.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import re
import textwrap
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ConfigFlags", "Flag", "attribute_docs", "field_defaults"]

_ROLE = re.compile(r":[a-z]+:`(?:~[\w.]*\.)?([^`]+)`")
_LITERAL = re.compile(r"``([^`]*)``")
_SENTENCE_END = re.compile(r"(?<!e\.g)(?<!i\.e)\.(?:\s|$)")


@dataclass(frozen=True)
class Flag:
    """Where a flag differs from its field; each None: as the field says."""

    name: str | None = None
    """The option, e.g. "--class"; None: ``--``, the group's prefix and the field's name, dashed."""
    type: Callable[[str], Any] | None = None
    """Reads (and checks) the option's text; None: the field's type (int, float, str; a Literal gives choices)."""
    help: str | None = None
    """What the flag does, where the docstring says what the field is (a ``--no-`` flag, a flag for the CLI only)."""
    shown: Callable[[Any], str] | None = None
    """How the default reads in the help; None: its value (a tuple joined by commas)."""
    metavar: str | None = None
    """The value's name in the help; None: argparse's."""


@dataclass(frozen=True)
class ConfigFlags:
    """The flags of chosen fields of one config dataclass, and the way back from parsed flags to the config."""

    config: type
    """The frozen dataclass whose fields become flags."""
    fields: tuple[str, ...]
    """The fields exposed, in the order the help lists them."""
    flags: Mapping[str, Flag] = field(default_factory=dict)
    """Per field, where its flag differs from it."""
    prefix: str = ""
    """Put before each field's name in its option: "sticker" makes field ``size`` the flag ``--sticker-size``."""

    def add(self, parser: argparse.ArgumentParser, *only: str) -> None:
        """Add one option per field to ``parser`` (``only``: these fields, where other flags go between)."""
        defaults = field_defaults(self.config)
        docs = attribute_docs(self.config)
        hints = _type_hints(self.config)
        for name in only or self.fields:
            flag = self.flags.get(name, Flag())
            default = defaults.get(name, dataclasses.MISSING)
            text = (flag.help or _first_sentence(docs.get(name, ""))).replace("%", "%%")
            kwargs: dict[str, Any] = {"dest": self._dest(name)}
            if isinstance(default, bool):
                # a flag turns the default over: --no-augment for True, --virelay for False
                parser.add_argument(self._option(name, flag), action="store_true", help=text, **kwargs)
                continue
            if default is dataclasses.MISSING:
                kwargs["required"] = True
            else:
                kwargs["default"] = default
                shown = _shown(default, flag.shown)
                text += f" (default {shown})" if shown else ""
            hint = hints.get(name)
            choices = _choices(hint)
            if flag.type is not None:
                kwargs["type"] = flag.type
            elif choices:
                kwargs["choices"] = choices
            elif (kind := _scalar(hint, default)) is not str:
                kwargs["type"] = kind
            if flag.metavar is not None:
                kwargs["metavar"] = flag.metavar
            parser.add_argument(self._option(name, flag), help=text, **kwargs)

    def values(self, args: argparse.Namespace) -> dict[str, Any]:
        """The fields' values from parsed ``args`` (a flag that turns a bool over, turned back)."""
        defaults = field_defaults(self.config)
        out = {}
        for name in self.fields:
            value = getattr(args, self._dest(name))
            out[name] = value != defaults[name] if isinstance(defaults.get(name), bool) else value
        return out

    def build(self, args: argparse.Namespace, **given: Any) -> Any:
        """The config from parsed ``args``: its own flags, the shared groups' flags (:data:`SHARED_FLAGS`) of the
        fields it has, and ``given`` (what no flag sets, or a flag of another name), which wins."""
        return self.config(**(shared_values(args, self.config) | self.values(args) | given))

    def _option(self, name: str, flag: Flag) -> str:
        if flag.name is not None:
            return flag.name
        default = field_defaults(self.config).get(name)
        stem = "-".join(p for p in (self.prefix, name.replace("_", "-")) if p)
        return f"--no-{stem}" if default is True else f"--{stem}"

    def _dest(self, name: str) -> str:
        return self._option(name, self.flags.get(name, Flag())).removeprefix("--").replace("-", "_")


SHARED_FLAGS = ("data", "data_dir", "split", "max_images", "seed", "device", "composite", "fallback", "lang")
"""Flags the shared argument groups of :mod:`klugerhans.cli.args` add under a config field's own name."""


def shared_values(args: argparse.Namespace, config: type) -> dict[str, Any]:
    """The shared groups' values that ``config`` has fields for; ``progress`` is the opposite of ``--no-progress``."""
    names = {f.name for f in dataclasses.fields(config)}
    out = {name: getattr(args, name) for name in SHARED_FLAGS if name in names and hasattr(args, name)}
    if "progress" in names and hasattr(args, "no_progress"):
        out["progress"] = not args.no_progress
    return out


def field_defaults(config: type) -> dict[str, Any]:
    """Each field of dataclass ``config`` that has a default, with it (a ``default_factory`` called)."""
    out = {}
    for f in dataclasses.fields(config):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


@functools.cache
def attribute_docs(config: type) -> dict[str, str]:
    """The attribute docstrings of a class and its bases: the string literal under each annotated field."""
    docs: dict[str, str] = {}
    for cls in reversed(config.__mro__[:-1]):
        try:
            source = textwrap.dedent(inspect.getsource(cls))
        except (OSError, TypeError):  # a class made at run time has no source
            continue
        body = ast.parse(source).body[0]
        if not isinstance(body, ast.ClassDef):
            continue
        for node, after in zip(body.body, body.body[1:], strict=False):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                docs[node.target.id] = inspect.cleandoc(after.value.value)
    return docs


def _first_sentence(doc: str) -> str:
    """A docstring's first sentence as help text: roles and literals plain, one line, no final full stop, what
    None means said of the default."""
    text = " ".join(_LITERAL.sub(r"\1", _ROLE.sub(r"\1", doc)).split())
    end = _SENTENCE_END.search(text)
    text = (text[: end.start()] if end else text.rstrip(".")).replace("None: ", "default: ")  # no None on a CLI
    # "Number of passes" -> "number of passes", as argparse's own help reads; "L2 penalty", "RGB colour" stay
    return text[0].lower() + text[1:] if len(text) > 1 and text[1].islower() else text


def _shown(default: Any, show: Callable[[Any], str] | None) -> str:
    """How ``default`` reads in the help; "" says nothing (None, an empty tuple: the help text says what they mean)."""
    if show is not None:
        return show(default)
    if default is None or default == ():
        return ""
    if isinstance(default, tuple):
        return ",".join(map(str, default))
    return f"{default:g}" if isinstance(default, float) else str(default)


def _type_hints(config: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(config)
    except (NameError, TypeError):  # a hint only importable for type checkers: types come from the defaults
        return {}


def _choices(hint: Any) -> tuple[Any, ...] | None:
    """A Literal's values (also behind ``| None`` and a type alias)."""
    if typing.get_origin(hint) is typing.Literal:
        return typing.get_args(hint)
    return None


def _scalar(hint: Any, default: Any) -> type:
    """int, float or str: what the option's text becomes (a hint ``int | None`` gives int)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next((a for a in typing.get_args(hint) if a is not type(None)), str)
    if hint in (int, float, str):
        return hint
    return type(default) if isinstance(default, int | float) and not isinstance(default, bool) else str
