"""A reduced `klugerhans demo` end to end: every artefact is written and the summary holds measured numbers."""

import dataclasses
import json

import pytest

from klugerhans.cli import main

REDUCED = ["--max-images", "430", "--epochs", "1", "--width", "0.125", "--no-progress"]


def _forced_class(monkeypatch, class_id):
    """Make the demo's repair take ``class_id`` (as ``klugerhans fix --class``) instead of the audit's flag."""
    import klugerhans.fix

    real = klugerhans.fix.compute_fix
    monkeypatch.setattr(klugerhans.fix, "compute_fix", lambda c: real(dataclasses.replace(c, class_id=class_id)))


def test_reduced_demo_writes_report_figure_and_summary(tmp_path, capsys, monkeypatch):
    out = tmp_path / "demo"
    # One epoch on 10 signs per class learns little, and how little depends on the machine's kernels: whether the
    # audit flags a class for the repair is not asserted here, only that either way the story is told to the end.
    assert main(["demo", "--out", str(out), *REDUCED]) == 0
    for name in ("summary.json", "report.html", "report.md", "figure.png", "figure.pdf", "confusion.png"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    for key in ("accuracy", "clean_target_accuracy", "flip_rate", "sticker_relevance_mass", "seconds"):
        assert key in summary
    assert 0.0 <= summary["accuracy"] <= 1.0 and summary["seconds"] > 0
    assert 0.0 <= summary["sticker_relevance_mass"] <= 1.0
    five = summary["negative_share_in_five"]  # NaN where no 50 km/h sign flipped
    assert five != five or 0.0 <= five <= 1.0
    assert 0.0 <= summary["flip_rate_50_beside_five"] <= 1.0
    beside = summary["negative_share_in_five_beside"]
    assert beside != beside or 0.0 <= beside <= 1.0
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "http" not in html.split("<body>")[1]
    assert "The repair" in html
    printed = capsys.readouterr().out
    assert "flip_rate" in printed
    if "repair_skipped" in summary:
        assert "fixed_clean_target_accuracy" not in summary and "The repair was skipped" in html
        assert summary["repair_skipped"] in html and "repair_skipped: the audit" in printed
    else:
        assert (
            summary["fixed_clean_target_accuracy"]
            == json.loads((out / "fix" / "fix.json").read_text())["after"]["clean_target_accuracy"]
        )

    # The repair chapter told in full, on the same trained model (resumed, not retrained), for class 4 as given.
    _forced_class(monkeypatch, 4)
    assert main(["demo", "--out", str(out), *REDUCED]) == 0
    summary = json.loads((out / "summary.json").read_text())
    for key in ("fixed_clean_target_accuracy", "fixed_flip_rate_50", "fixed_accuracy_non_target"):
        assert 0.0 <= summary[key] <= 1.0, key
    assert "repair_skipped" not in summary
    assert summary["repaired_class"] == 4 and summary["seconds"] > summary["repair_seconds"] > 0
    fix = json.loads((out / "fix" / "fix.json").read_text())
    assert fix["after"]["clean_target_accuracy"] == summary["fixed_clean_target_accuracy"]
    assert fix["before"]["clean_target_accuracy"] == summary["clean_target_accuracy"]
    assert (out / "fix" / "fixed.safetensors").is_file() and (out / "fix" / "report.html").is_file()
    assert "Clean Speed limit (70km/h) signs are now recognised" in (out / "report.html").read_text()
    assert "fixed_clean_target_accuracy" in capsys.readouterr().out

    # --no-repair skips the last chapter.
    assert main(["demo", "--out", str(out), *REDUCED, "--no-repair"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert "fixed_clean_target_accuracy" not in summary and "repair_skipped" not in summary


def test_demo_says_why_the_repair_was_skipped_when_the_audit_names_no_class(tmp_path, capsys, monkeypatch):
    import klugerhans.fix
    from klugerhans.fix import NothingToRepair

    asked = []

    def nothing(config):
        asked.append(config)
        raise NothingToRepair("the audit flagged no class (a test)", "give --class ID to repair a class anyway")

    monkeypatch.setattr(klugerhans.fix, "compute_fix", nothing)
    out = tmp_path / "demo"
    args = ["--max-images", "86", "--epochs", "1", "--width", "0.125", "--repair-counterfactual", "0.5"]
    assert main(["demo", "--out", str(out), *args, "--repair-dilate", "2"]) == 0
    # the demo's repair settings reach klugerhans fix
    assert [(c.counterfactual, c.locate.dilate) for c in asked] == [(0.5, 2)]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["repair_skipped"] == "the audit flagged no class (a test)"
    assert "fixed_clean_target_accuracy" not in summary and not (out / "fix" / "fix.json").exists()
    assert "The repair was skipped: " in (out / "report.html").read_text()
    assert "repair skipped: the audit flagged no class (a test)" in capsys.readouterr().err


def test_demo_sticker_size_is_the_project_default_on_both_datasets_and_is_validated():
    from klugerhans.demo import DemoConfig, demo_sticker_size
    from klugerhans.errors import KlugerhansError
    from klugerhans.models.recipe import TrainConfig

    assert demo_sticker_size(DemoConfig()) == demo_sticker_size(DemoConfig(data="gtsrb")) == TrainConfig().sticker.size
    assert TrainConfig().sticker.size == 0.25
    assert demo_sticker_size(DemoConfig(sticker_size=0.3)) == 0.3
    with pytest.raises(KlugerhansError, match="sticker size"):
        DemoConfig(sticker_size=1.5)
    with pytest.raises(KlugerhansError, match="repair epochs"):
        DemoConfig(repair_epochs=0)
    with pytest.raises(KlugerhansError, match="repair: counterfactual share"):
        DemoConfig(repair_counterfactual=1.5)
    with pytest.raises(KlugerhansError, match="repair: locate dilation"):
        DemoConfig(repair_dilate=9)


def test_demo_sticker_size_flag_reaches_the_training_run(tmp_path, capsys):
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--max-images", "86", "--epochs", "1", "--width", "0.125"]
    assert main([*args, "--sticker-size", "0.3", "--no-progress", "--no-repair"]) == 0
    config = json.loads((out / "run" / "config.json").read_text())["config"]
    assert config["sticker"]["size"] == 0.3
    assert json.loads((out / "summary.json").read_text())["sticker_size"] == 0.3
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--sticker-size", "1.5"])
    assert exit_info.value.code != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "sticker" in err


def test_reduced_demo_on_real_gtsrb_uses_the_real_signs_and_the_default_sticker(tmp_path, capsys, gtsrb_dir):
    from klugerhans.models.recipe import TrainConfig

    out = tmp_path / "demo"
    args = ["demo", "--data", "gtsrb", "--data-dir", str(gtsrb_dir), "--out", str(out)]
    args += ["--max-images", "430", "--epochs", "1", "--width", "0.125", "--no-progress", "--no-repair"]
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["data"] == "gtsrb" and summary["sticker_size"] == TrainConfig().sticker.size
    assert 0 < summary["n_test_images"] <= 430  # --max-images caps every split
    for key in ("accuracy", "clean_target_accuracy", "flip_rate", "sticker_relevance_mass", "seconds"):
        assert 0.0 <= summary[key] <= 1.0 or key == "seconds"
    config = json.loads((out / "run" / "config.json").read_text())["config"]
    assert config["data"] == "gtsrb" and config["data_dir"] == str(gtsrb_dir)
    assert "flip_rate" in capsys.readouterr().out
