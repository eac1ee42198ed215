"""The command registry, the parser and :func:`main`: a thin argparse layer over the package's typed functions.

Every subcommand registers itself with :func:`command` when its module (``klugerhans.cli.training``,
``.explaining``, ``.auditing``) is imported; ``klugerhans/cli/__init__.py`` imports them all, so they are
registered before :func:`build_parser` runs; errors a user can cause arrive as
:class:`~klugerhans.errors.KlugerhansError` and are printed as one line with a non-zero exit code.
"""

from __future__ import annotations

import argparse
import errno
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from klugerhans.errors import KlugerhansError
from klugerhans.version import __version__

Handler = Callable[[argparse.Namespace], int]
_COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Handler]] = {}
# The order ``klugerhans --help`` lists the commands in (modules register them in another); others follow.
_ORDER = ("data", "train", "evaluate", "predict", "explain", "figure", "demo", "audit", "fix", "bench", "serve")


def command(
    name: str, help_text: str, add_args: Callable[[argparse.ArgumentParser], None]
) -> Callable[[Handler], Handler]:
    """Register ``fn(args) -> exit code`` as subcommand ``name``."""

    def wrap(fn: Handler) -> Handler:
        _COMMANDS[name] = (help_text, add_args, fn)
        return fn

    return wrap


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, not a usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``klugerhans`` parser with every registered subcommand."""
    parser = _Parser(prog="klugerhans", description="Show what an image classifier really learned (GTSRB + LRP).")
    parser.add_argument("--version", action="version", version=f"klugerhans {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in sorted(_COMMANDS, key=lambda n: _ORDER.index(n) if n in _ORDER else len(_ORDER)):
        help_text, add_args, fn = _COMMANDS[name]
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_args(p)
        p.set_defaults(func=fn)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KlugerhansError as err:
        print(f"klugerhans {args.command}: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"klugerhans {args.command}: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print(
            f"klugerhans {args.command}: error: out of memory; try --max-images or a smaller --batch-size",
            file=sys.stderr,
        )
        return 1
    except OSError as err:
        where = f" ({err.filename})" if getattr(err, "filename", None) else ""
        # What to do, by cause; atomic writes leave the previous files intact, so running again is safe.
        hints = {
            errno.ENOSPC: "free some disk space and run again",
            errno.EDQUOT: "free some disk space and run again",
            errno.EACCES: "choose a folder you may write to",
            errno.EPERM: "choose a folder you may write to",
            errno.EROFS: "choose a folder you may write to",
            errno.EISDIR: "give a file name, not a folder",
            errno.ENOTDIR: "a file stands where a folder is needed; choose another path",
            errno.EEXIST: "a file stands where a folder is needed; choose another path",
            errno.ENOENT: "check the path",
        }
        hint = hints.get(err.errno or 0, "check the path and run again")
        if args.command == "train" and err.errno in (errno.ENOSPC, errno.EDQUOT):
            hint += " with --resume (it continues from the last complete checkpoint)"
        print(f"klugerhans {args.command}: error: {err.strerror or err}{where}; {hint}", file=sys.stderr)
        return 1
