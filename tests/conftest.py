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


@pytest.fixture(scope="session")
def tiny_sticker_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of ``klugerhans train`` on 430 synthetic signs: 1 epoch, width 0.125, sticker side 0.3 (read-only)."""
    from klugerhans.cli import main

    run = tmp_path_factory.mktemp("tiny-sticker") / "run"
    train = ["train", "--data", "synthetic", "--out", str(run), "--epochs", "1", "--width", "0.125"]
    assert main([*train, "--batch-size", "32", "--sticker-size", "0.3", "--max-images", "430", "--no-progress"]) == 0
    return run
