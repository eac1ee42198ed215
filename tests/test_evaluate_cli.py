"""`klugerhans evaluate` end to end on a tiny synthetic model: JSON keys, splits, the sticker override, errors."""

import json

import pytest

from klugerhans.cli import main


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


def test_sticker_size_override_and_validation_split(tiny_run, tmp_path, monkeypatch):
    import klugerhans.models.evaluation as evaluation

    used = []
    real = evaluation.evaluate_model

    def spy(clf, data, sticker=None, **kwargs):
        used.append(sticker)
        return real(clf, data, sticker=sticker, **kwargs)

    monkeypatch.setattr(evaluation, "evaluate_model", spy)
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
