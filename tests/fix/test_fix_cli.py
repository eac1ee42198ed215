"""`klugerhans fix` end to end on a tiny synthetic model: files, numbers, and one-line errors."""

import json

import pytest

from klugerhans.cli import main
from klugerhans.models.checkpoint import load_classifier

TINY = ["--max-images", "430", "--no-progress"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("fix") / "run"
    args = [
        "train",
        "--data",
        "synthetic",
        "--out",
        str(run),
        "--epochs",
        "1",
        "--width",
        "0.125",
        "--batch-size",
        "32",
    ]
    assert main(args + TINY) == 0
    return run


@pytest.mark.parametrize("method,epochs", [("inpaint", "1"), ("rrr", "1"), ("pclarc", "0")])
def test_fix_writes_weights_numbers_and_report(tiny_run, tmp_path, capsys, method, epochs):
    out = tmp_path / method
    code = main(
        ["fix", "--checkpoint", str(tiny_run), "--class", "4", "--method", method, "--epochs", epochs,
         "--out", str(out), "--control", str(tiny_run), *TINY]
    )  # fmt: skip
    assert code == 0
    for name in (
        "fixed.safetensors",
        "fix.json",
        "report.html",
        "report.md",
        "figures/before.png",
        "figures/after.png",
    ):
        assert (out / name).is_file(), name
    numbers = json.loads((out / "fix.json").read_text())
    assert numbers["class_id"] == 4 and numbers["config"]["data"] == "synthetic"  # taken from the checkpoint
    for side in ("before", "after", "control"):
        for key in ("accuracy", "clean_target_accuracy", "flip_rate"):
            assert 0.0 <= numbers[side][key] <= 1.0
    assert set(numbers["after"]["audit"]) >= {"suspicion_ranking", "flagged"}
    assert numbers["locate"]["images"] > 0 and numbers["locate"]["truth_available"]
    fixed = load_classifier(out / "fixed.safetensors")
    assert fixed.meta.metrics["fix"]["method"] == method
    assert fixed.meta.sticker == load_classifier(tiny_run).meta.sticker  # the data still has its artefact
    html = (out / "report.html").read_text()
    assert "Before and after" in html and "data:image/png;base64," in html
    assert "after:" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--method", "magic"], "unknown fix method 'magic'"),
        (["--method", "inpaint", "--epochs", "0"], "give --epochs 1 or more"),
        (["--class", "77"], "class"),
        (["--locate-dilate", "-1"], "--locate-dilate"),
        (["--fallback", "zero"], "--fallback"),
    ],
)
def test_bad_fix_input_is_one_line(tiny_run, tmp_path, capsys, args, needle):
    try:
        code = main(["fix", "--checkpoint", str(tiny_run), "--out", str(tmp_path / "x"), *args, *TINY])
    except SystemExit as exit_:  # argparse refuses bad values itself
        code = exit_.code
    err = capsys.readouterr().err.strip()
    assert code != 0 and needle in err and len(err.splitlines()) == 1 and "Traceback" not in err


@pytest.fixture(scope="module")
def untrained_run(tiny_run, tmp_path_factory):
    """``tiny_run``'s checkpoint with its last layer zeroed: equal logits, so every image is called class 0."""
    import torch

    from klugerhans.models.checkpoint import save_checkpoint

    clf = load_classifier(tiny_run)
    last = [m for m in clf.model.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
    return save_checkpoint(tmp_path_factory.mktemp("untrained") / "untrained.safetensors", clf.model, clf.meta)


def test_fix_on_an_untrained_model_says_what_the_audit_found_in_one_line(untrained_run, tmp_path, capsys):
    code = main(["fix", "--checkpoint", str(untrained_run), "--out", str(tmp_path / "x"), *TINY])
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "the audit could test none of the 43 classes" in err and "give --class ID" in err
    assert not (tmp_path / "x" / "fix.json").exists()


def test_the_class_to_repair_is_the_first_flagged_one_and_nothing_flagged_is_nothing_to_repair():
    from klugerhans.fix import NothingToRepair, suspect_class

    audit = {"suspicion_ranking": [7, 4, 1], "flagged": [4], "broad_rate": {"7": 0.3, "4": 0.25, "1": 0.0},
             "threshold": 0.24, "n_classes": 43, "accuracy": 0.9}  # fmt: skip
    assert suspect_class(audit) == 4  # ranked second, but the first that is flagged (significant)
    with pytest.raises(NothingToRepair, match=r"no class \(the most suspicious, class 7, broad hijack rate 0\.300"):
        suspect_class(audit | {"flagged": []})
    with pytest.raises(NothingToRepair, match=r"could test none of the 43 classes: .* 2\.0% .* give --class ID"):
        suspect_class(audit | {"flagged": [], "suspicion_ranking": [], "accuracy": 0.02})
