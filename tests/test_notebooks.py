"""Execute both notebooks on a small configuration, as CI does (Training first: LRP explains its model)."""

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def _run(name: str, cwd: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(cwd)}})
    client.execute()
    return nb


def test_training_then_lrp_notebook(tmp_path, monkeypatch):
    run = tmp_path / "run"
    monkeypatch.setenv("KLUGERHANS_NB_SMALL", "1")
    monkeypatch.setenv("KLUGERHANS_NB_OUT", str(run))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    _run("Training.ipynb", tmp_path)
    assert (run / "best.safetensors").exists() and (run / "curves.png").exists()

    monkeypatch.setenv("KLUGERHANS_CHECKPOINT", str(run))
    nb = _run("LRP.ipynb", tmp_path)
    assert (tmp_path / "figure.png").exists() and (tmp_path / "figure.pdf").exists()
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "sticker holds" in printed
    assert os.path.getsize(tmp_path / "figure.png") > 10_000
