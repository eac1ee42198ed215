"""Command-line interface (``klugerhans COMMAND``): a thin argparse layer over the package's typed functions.

:mod:`klugerhans.cli.app` holds the command registry, the parser and :func:`main`; :mod:`klugerhans.cli.args` the
argument types and shared argument groups; :mod:`klugerhans.cli.fields` the flags made from config dataclasses' fields
(defaults and help stated once, in the config); each command module registers its commands when imported, so this
package imports them all before anything can build the parser.
"""

from klugerhans.cli import auditing, benchmarking, explaining, training  # noqa: F401  (importing registers the commands)
from klugerhans.cli.app import build_parser, main

__all__ = ["build_parser", "main"]
