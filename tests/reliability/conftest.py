"""Fixtures for the reliability tests: the tiny training dataset and the bad-input catalogue tool."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from klugerhans.data.dataset import DATASETS, DatasetSpec

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS / "models"))

from tiny_signs import tiny_loader  # noqa: E402  (found through the path set just above)


@pytest.fixture
def tiny_data(monkeypatch: pytest.MonkeyPatch) -> str:
    """Register the tiny patterned dataset (100 training images, 5 classes) as "tiny"; returns its name."""
    monkeypatch.setitem(DATASETS, "tiny", DatasetSpec(tiny_loader))
    return "tiny"


@pytest.fixture(scope="session")
def bad_inputs(import_tool: Callable[[str], ModuleType]) -> ModuleType:
    """``tools/bad_inputs.py`` imported as a module."""
    return import_tool("bad_inputs")
