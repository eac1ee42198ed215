"""Fixtures for the model tests: a registered tiny dataset and quick training configs."""

from __future__ import annotations

import pytest
from tiny_signs import tiny_loader

from klugerhans.data.dataset import DATASETS, DatasetSpec


@pytest.fixture
def tiny_data(monkeypatch: pytest.MonkeyPatch) -> str:
    """Register the tiny patterned dataset as "tiny" for this test; returns its name."""
    monkeypatch.setitem(DATASETS, "tiny", DatasetSpec(tiny_loader))
    return "tiny"
