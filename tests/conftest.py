"""Fixtures shared by all test folders (keep additive: other test areas append their own below)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def gtsrb_dir() -> Path:
    """The real GTSRB archives: ``$KLUGERHANS_GTSRB_DIR``, else ``shared/gtsrb`` next to the repo; skips if absent."""
    path = Path(os.environ.get("KLUGERHANS_GTSRB_DIR") or REPO_ROOT.parent / "shared" / "gtsrb")
    if not path.is_dir() or not any(path.iterdir()):
        pytest.skip(f"real GTSRB data not found in {path}: set KLUGERHANS_GTSRB_DIR to the folder with the archives")
    return path
