"""Fixtures of the repair tests: the audit tests' hand-built shortcut model and coloured squares."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest


def _audit_fixtures() -> ModuleType:
    # tests/ is not a package: load tests/audit/conftest.py by path under a name of its own.
    name = "_klugerhans_audit_fixtures"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).parents[1] / "audit" / "conftest.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="session")
def squares_setup():
    """``(module, data with a black patch on every class-4 image, shortcut classifier)``."""
    fx = _audit_fixtures()
    return fx, fx.colour_squares(patch_on=fx.SHORTCUT_CLASS), fx.wrap(fx.square_model(shortcut=True))
