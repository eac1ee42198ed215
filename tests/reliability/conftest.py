"""Fixtures for the reliability tests: the tiny training dataset and the bad-input catalogue tool."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from klugerhans.data.dataset import DATASETS, DatasetSpec

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent
sys.path.insert(0, str(TESTS / "models"))

from tiny_signs import tiny_loader  # noqa: E402  (found through the path set just above)


@pytest.fixture
def tiny_data(monkeypatch: pytest.MonkeyPatch) -> str:
    """Register the tiny patterned dataset (100 training images, 5 classes) as "tiny"; returns its name."""
    monkeypatch.setitem(DATASETS, "tiny", DatasetSpec(tiny_loader))
    return "tiny"


@pytest.fixture(scope="session")
def bad_inputs() -> ModuleType:
    """``tools/bad_inputs.py`` imported as a module."""
    spec = importlib.util.spec_from_file_location("bad_inputs", REPO / "tools" / "bad_inputs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bad_inputs"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module
