"""A reduced `klugerhans demo` end to end: every artefact is written and the summary holds measured numbers."""

import json

import pytest

from klugerhans.cli import main


def test_reduced_demo_writes_report_figure_and_summary(tmp_path, capsys):
    out = tmp_path / "demo"
    code = main(
        ["demo", "--out", str(out), "--max-images", "430", "--epochs", "1", "--width", "0.125", "--no-progress"]
    )
    assert code == 0
    for name in ("summary.json", "report.html", "report.md", "figure.png", "figure.pdf", "confusion.png"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    for key in ("accuracy", "clean_target_accuracy", "flip_rate", "sticker_relevance_mass", "seconds"):
        assert key in summary
    assert 0.0 <= summary["accuracy"] <= 1.0 and summary["seconds"] > 0
    assert 0.0 <= summary["sticker_relevance_mass"] <= 1.0
    # The last chapter: the repair, with its own report and weights, measured on the same test signs.
    for key in ("fixed_clean_target_accuracy", "fixed_flip_rate_50", "fixed_accuracy_non_target"):
        assert 0.0 <= summary[key] <= 1.0, key
    assert summary["repaired_class"] in range(43) and summary["seconds"] > summary["repair_seconds"] > 0
    fix = json.loads((out / "fix" / "fix.json").read_text())
    assert fix["after"]["clean_target_accuracy"] == summary["fixed_clean_target_accuracy"]
    assert fix["before"]["clean_target_accuracy"] == summary["clean_target_accuracy"]
    assert (out / "fix" / "fixed.safetensors").is_file() and (out / "fix" / "report.html").is_file()
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "http" not in html.split("<body>")[1]
    assert "The repair" in html
    printed = capsys.readouterr().out
    assert "flip_rate" in printed and "fixed_clean_target_accuracy" in printed

    # A second run resumes the finished training instead of starting over; --no-repair skips the last chapter.
    args = ["demo", "--out", str(out), "--max-images", "430", "--epochs", "1", "--width", "0.125", "--no-progress"]
    assert main([*args, "--no-repair"]) == 0
    assert "fixed_clean_target_accuracy" not in json.loads((out / "summary.json").read_text())


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
