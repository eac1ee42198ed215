import json

import numpy as np
import pytest
import torch

from klugerhans.io import atomic_write, atomic_write_figure, atomic_write_text, to_jsonable


def test_atomic_write_replaces_whole_file(tmp_path):
    path = tmp_path / "a" / "f.txt"
    atomic_write_text(path, "one")
    atomic_write_text(path, "two")
    assert path.read_text() == "two"
    assert [p.name for p in path.parent.iterdir()] == ["f.txt"]


def test_failure_keeps_old_content_and_leaves_no_temp(tmp_path):
    path = tmp_path / "f.txt"
    atomic_write_text(path, "old")
    with pytest.raises(OSError), atomic_write(path, "w") as fh:
        fh.write("partial")
        raise OSError(28, "No space left on device")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_a_figure_is_rendered_then_written_atomically(tmp_path):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1, 1))
    fig.subplots().plot([0, 1], [1, 0])
    path = atomic_write_figure(tmp_path / "f.png", fig, dpi=50)
    assert path == tmp_path / "f.png" and path.read_bytes().startswith(b"\x89PNG")
    assert atomic_write_figure(tmp_path / "f.pdf", fig, fmt="pdf").read_bytes().startswith(b"%PDF")

    class Broken:
        def savefig(self, *args, **kwargs):
            raise RuntimeError("no renderer")

    with pytest.raises(RuntimeError):
        atomic_write_figure(path, Broken())
    assert path.read_bytes().startswith(b"\x89PNG") and sorted(p.name for p in tmp_path.iterdir()) == ["f.pdf", "f.png"]


def test_to_jsonable_turns_arrays_scalars_and_non_finite_numbers_into_json():
    value = {1: np.arange(2), "t": torch.tensor([0.5]), "s": np.float32(0.25), "n": (float("nan"), np.int64(3))}
    assert to_jsonable(value) == {"1": [0, 1], "t": [0.5], "s": 0.25, "n": [None, 3]}
    assert json.dumps(to_jsonable(value), allow_nan=False)
