"""`klugerhans evaluate` end to end on a tiny synthetic model: JSON keys, splits, the sticker override, errors."""

import json

import pytest

from klugerhans.cli import main
from klugerhans.models.checkpoint import load_classifier


@pytest.fixture(scope="module")
def tiny_run(tiny_sticker_run):
    return tiny_sticker_run


def _evaluate(run, tmp_path, *extra):
    out = tmp_path / "metrics.json"
    args = ["evaluate", "--checkpoint", str(run), "--data", "synthetic", "--json", str(out), "--max-images", "430"]
    assert main([*args, *extra]) == 0
    return json.loads(out.read_text())


def test_json_has_the_documented_keys_and_the_trained_sticker(tiny_run, tmp_path, capsys):
    m = _evaluate(tiny_run, tmp_path)
    for key in ("accuracy", "per_class_accuracy", "flip_rate", "flip_rate_by_class", "clean_target_accuracy"):
        assert key in m
    assert len(m["per_class_accuracy"]) == 43 and m["split"] == "test"
    assert m["sticker_size"] == 0.3  # the size the model was trained with, from its checkpoint
    assert "sticker side 0.3 of the sign" in capsys.readouterr().out


@pytest.fixture
def used(monkeypatch):
    """The stickers `klugerhans evaluate` measures the flip rate with, one per call, in order."""
    import klugerhans.models.evaluation as evaluation

    stickers = []
    real = evaluation.evaluate_model

    def spy(clf, data, sticker=None, **kwargs):
        stickers.append(sticker)
        return real(clf, data, sticker=sticker, **kwargs)

    monkeypatch.setattr(evaluation, "evaluate_model", spy)
    return stickers


def test_sticker_size_override_and_validation_split(tiny_run, tmp_path, used):
    base = _evaluate(tiny_run, tmp_path)
    bigger = _evaluate(tiny_run, tmp_path, "--sticker-size", "0.6")
    assert [s.size for s in used] == [0.3, 0.6] and bigger["sticker_size"] == 0.6
    assert used[1].target_class == used[0].target_class == 4 and used[1].color == used[0].color
    assert bigger["accuracy"] == base["accuracy"]  # clean images are untouched
    val = _evaluate(tiny_run, tmp_path, "--split", "val")
    assert val["split"] == "val" and val["n_images"] != base["n_images"]


def test_bad_sticker_size_is_a_one_line_error(tiny_run, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--checkpoint", str(tiny_run), "--data", "synthetic", "--sticker-size", "1.2"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--sticker-size" in err


def test_sticker_size_override_gives_one_side_on_a_model_trained_with_a_range(tmp_path, used, capsys):
    """The released model was trained with a range of sides: --sticker-size 0.4 means stickers of side 0.4 only."""
    released = load_classifier("manipulated").meta.sticker
    assert released is not None and released.size_max is not None and released.size_max < 0.4
    out = tmp_path / "m.json"
    args = ["evaluate", "--model", "manipulated", "--data", "synthetic", "--max-images", "86", "--json", str(out)]
    assert main(args) == 0
    assert f"sticker side {released.size:g}-{released.size_max:g} of the sign" in capsys.readouterr().out
    assert main([*args, "--sticker-size", "0.4"]) == 0
    trained, fixed = used
    assert (trained.size, trained.size_max) == (released.size, released.size_max)
    assert (fixed.size, fixed.size_max) == (0.4, None)
    assert fixed.region == trained.region and fixed.color == trained.color
    assert "sticker side 0.4 of the sign" in capsys.readouterr().out
    assert json.loads(out.read_text())["sticker_size_max"] is None
