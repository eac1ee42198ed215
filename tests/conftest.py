"""Fixtures shared by all test folders (keep additive: other test areas append their own below)."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

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
def import_tool() -> Callable[[str], ModuleType]:
    """Import ``tools/<name>.py`` as the module ``name`` (the tools are scripts, not a package)."""

    def load(name: str) -> ModuleType:
        if name in sys.modules:
            return sys.modules[name]
        spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "tools" / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up by name
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture(scope="session")
def tiny_sticker_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of ``klugerhans train`` on 430 synthetic signs: 1 epoch, width 0.125, sticker side 0.3 (read-only)."""
    from klugerhans.cli import main

    run = tmp_path_factory.mktemp("tiny-sticker") / "run"
    train = ["train", "--data", "synthetic", "--out", str(run), "--epochs", "1", "--width", "0.125"]
    assert main([*train, "--batch-size", "32", "--sticker-size", "0.3", "--max-images", "430", "--no-progress"]) == 0
    return run
