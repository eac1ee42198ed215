"""The command line: outputs of predict/explain and one-line errors with non-zero exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from klugerhans.cli import main
from klugerhans.data.classes import CLASS_NAMES_DE, CLASS_NAMES_EN
from klugerhans.models.checkpoint import CheckpointMeta, save_checkpoint
from klugerhans.models.vgg import ModelConfig, create_model

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    config = ModelConfig(width=0.125)
    save_checkpoint(path, create_model(config).eval(), CheckpointMeta(model=config))
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    paths = []
    for i, (size, mode, ext) in enumerate(
        [((40, 36), "RGB", "ppm"), ((64, 64), "L", "png"), ((20, 30), "RGBA", "png")]
    ):
        img = Image.fromarray(rng.integers(0, 255, (*size[::-1], 3), dtype=np.uint8)).convert(mode)
        path = folder / f"sign{i}.{ext}"
        img.save(path)
        paths.append(path)
    return paths


def _one_line_error(capsys: pytest.CaptureFixture[str], code: int) -> str:
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def test_predict_json(checkpoint, images, capsys):
    assert main(["predict", *map(str, images), "--checkpoint", str(checkpoint), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["path"] for r in rows] == [str(p) for p in images]
    for r in rows:
        assert set(r) == {"path", "pred", "name", "prob", "top3"}
        assert r["pred"] == r["top3"][0]["id"] and 0 < r["prob"] <= 1 and len(r["top3"]) == 3


def test_explain_writes_pngs_and_relevance(checkpoint, images, tmp_path, capsys):
    code = main(
        [
            "explain",
            *map(str, images),
            "--checkpoint",
            str(checkpoint),
            "--out",
            str(tmp_path),
            "--save-relevance",
            "--json",
            "--lang",
            "de",
            "--target",
            "4",
        ]
    )
    assert code == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 3
    for p in images:
        assert Image.open(tmp_path / f"{p.stem}_heatmap.png").size == (256, 256)
        assert Image.open(tmp_path / f"{p.stem}_overlay.png").mode == "RGB"
        rel = np.load(tmp_path / f"{p.stem}_relevance.npy", allow_pickle=False)
        assert rel.shape == (32, 32) and rel.dtype == np.float32 and np.isfinite(rel).all()


@pytest.mark.parametrize(
    "argv",
    [
        ["predict", "/nonexistent/sign.ppm"],
        ["explain", "IMG", "--composite", "no_such_rule"],
        ["explain", "IMG", "--target", "99"],
        ["predict", "TEXT"],
        ["predict", "IMG", "--checkpoint", "/nonexistent.safetensors"],
        ["predict", "IMG", "--checkpoint", "TEXT"],
        ["train", "--out", "X", "--epochs", "-1"],
        ["train", "--out", "X", "--sticker-size", "1.5"],
        ["train", "--out", "X", "--sticker-class", "43"],
        ["data", "--data", "gtsrb", "--data-dir", "/nonexistent"],
        ["data", "--data", "imagenet"],
    ],
)
def test_bad_input_is_one_line(argv, checkpoint, images, tmp_path, capsys):
    text = tmp_path / "note.ppm"
    text.write_text("not an image")
    argv = [a.replace("IMG", str(images[0])).replace("TEXT", str(text)) for a in argv]
    if argv[0] in ("predict", "explain") and "--checkpoint" not in argv:
        argv += ["--checkpoint", str(checkpoint)]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse rejects invalid values before main's handler
        code = int(exc.code or 0)
    _one_line_error(capsys, code)


def test_subprocess_exit_codes_and_no_traceback(tmp_path):
    ok = subprocess.run([sys.executable, "-m", "klugerhans", "--version"], capture_output=True, text=True)
    assert ok.returncode == 0 and "klugerhans" in ok.stdout
    bad = subprocess.run(
        [sys.executable, str(REPO / "LRP.py"), str(tmp_path / "missing.ppm"), "--checkpoint", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_lrp_script_explains_an_image(checkpoint, images, tmp_path):
    res = subprocess.run(
        [sys.executable, str(REPO / "LRP.py"), str(images[0]), "--checkpoint", str(checkpoint)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    assert "class" in res.stdout
    assert (tmp_path / "lrp_output" / f"{images[0].stem}_heatmap.png").exists()


def test_train_defaults_are_the_configs_defaults():
    from klugerhans.cli import build_parser
    from klugerhans.data.sticker import StickerConfig
    from klugerhans.models.recipe import TrainConfig

    args = build_parser().parse_args(["train", "--out", "run"])
    assert args.sticker_size == StickerConfig.size == TrainConfig().sticker.size == 0.25
    assert args.sticker_fraction == TrainConfig().sticker.fraction and args.sticker_class == StickerConfig.target_class


def _confident_checkpoint(path: Path, names: tuple[str, ...]) -> Path:
    """A tiny model whose output bias alone ranks the classes, one logit apart: a clear top-3 whatever the image."""
    config = ModelConfig(width=0.125, num_classes=len(names))
    torch.manual_seed(0)
    model = create_model(config).eval()
    head = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        head.weight.mul_(1e-3)
        head.bias.copy_(torch.tensor([float((7 * c) % len(names)) for c in range(len(names))]))
    return save_checkpoint(path, model, CheckpointMeta(model=config, class_names=names))


@pytest.mark.parametrize("own_names", [False, True], ids=["gtsrb-names", "own-names"])
def test_predict_and_explain_give_the_same_german_top3(own_names, images, tmp_path, capsys):
    names = tuple(f"own {c}" for c in range(5)) if own_names else CLASS_NAMES_EN
    checkpoint = _confident_checkpoint(tmp_path / "model.safetensors", names)
    common = [*map(str, images), "--checkpoint", str(checkpoint), "--lang", "de", "--json"]
    assert main(["predict", *common]) == 0
    predicted = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert main(["explain", *common, "--out", str(tmp_path / "explain")]) == 0
    explained = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    # German names for GTSRB models; a model with its own classes keeps its names (it has no German list).
    shown = names if own_names else CLASS_NAMES_DE
    assert len(predicted) == len(explained) == len(images)
    for p, e in zip(predicted, explained, strict=True):
        assert [(t["id"], t["name"]) for t in p["top3"]] == [(t["id"], t["name"]) for t in e["top3"]]
        assert [t["name"] for t in p["top3"]] == [shown[t["id"]] for t in p["top3"]]
        assert [t["prob"] for t in p["top3"]] == pytest.approx([t["prob"] for t in e["top3"]], abs=1e-5)
        assert (p["pred"], p["name"]) == (e["pred"], e["name"]) == (p["top3"][0]["id"], p["top3"][0]["name"])


# --- the user's own model: --arch + --weights ------------------------------------------------------------------


@pytest.fixture(scope="module")
def resnet_weights(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module]:
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=7).eval()
    path = tmp_path_factory.mktemp("weights") / "resnet18.pt"
    torch.save({"state_dict": model.state_dict()}, path)
    return path, model


def test_predict_with_own_resnet_weights(resnet_weights, images, capsys):
    path, model = resnet_weights
    argv = ["predict", *map(str, images), "--arch", "resnet18", "--weights", str(path), "--image-size", "64"]
    assert main([*argv, "--device", "cpu", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == len(images)
    from klugerhans.data.images import read_image, resize_center_crop
    from klugerhans.models.preprocess import IMAGENET, Normalization, to_tensor

    for row, image in zip(rows, images, strict=True):
        x = to_tensor(resize_center_crop(read_image(image), 64)[None], Normalization(*IMAGENET))
        with torch.no_grad():
            expected = int(model(x).argmax())
        assert row["pred"] == expected and row["name"] == f"class {expected}" and 0 < row["prob"] <= 1


def test_explain_with_own_resnet_weights(resnet_weights, images, tmp_path, capsys):
    path, _ = resnet_weights
    argv = ["explain", str(images[0]), "--arch", "resnet18", "--weights", str(path), "--image-size", "64"]
    assert main([*argv, "--device", "cpu", "--out", str(tmp_path / "x")]) == 0
    assert (tmp_path / "x" / "sign0_heatmap.png").exists()


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--weights", "W"], "--weights needs --arch"),
        (["--arch", "resnet18"], "--arch applies to --weights FILE only"),
        (["--image-size", "64"], "--image-size applies to --weights FILE only"),
        (["--arch", "resnet181", "--weights", "W"], "did you mean resnet18"),
        (["--arch", "resnet34", "--weights", "W"], "tensor layer1.2.conv1.weight is missing"),
        (["--arch", "resnet18", "--weights", "W", "--image-size", "16"], "too small"),
        (["--arch", "resnet18", "--weights", "W", "--checkpoint", "C"], "either --checkpoint or --weights"),
        (["--arch", "resnet18", "--weights", "W", "--std", "0", "1", "1"], "invalid --mean/--std"),
    ],
)
def test_own_model_flags_give_one_line_errors(extra, words, resnet_weights, checkpoint, images, capsys):
    path, _ = resnet_weights
    extra = [str(path) if a == "W" else str(checkpoint) if a == "C" else a for a in extra]
    code = main(["predict", str(images[0]), "--device", "cpu", *extra])
    assert words in _one_line_error(capsys, code)


def test_every_model_command_takes_own_weights():
    from klugerhans.cli import build_parser

    parser = build_parser()
    for command in ("explain", "predict", "evaluate", "audit", "fix", "figure", "serve"):
        args = parser.parse_args([command, *(["x.png"] if command in ("explain", "predict") else [])])
        assert {"arch", "weights", "image_size", "mean", "std"} <= set(vars(args)), command
    assert parser.parse_args(["train", "--out", "r", "--arch", "resnet18"]).arch == "resnet18"


def test_explain_fallback_for_an_operation_without_rule(images, tmp_path, capsys, monkeypatch):
    """Without --fallback: a one-line error naming the op and its module path; with it: the share is reported."""
    import klugerhans.cli.explaining as cli  # the module where `explain` looks `load_from_args` up
    from klugerhans.models.checkpoint import CheckpointMeta, classifier_from_model

    class ChannelMean(torch.nn.Module):  # a mean over the flattened pixels: no rule (x.mean((2, 3)) has one)
        def forward(self, x):
            return x.flatten(2).mean(2)

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), ChannelMean(), torch.nn.Linear(4, 43))
    clf = classifier_from_model(model.eval(), CheckpointMeta(model=ModelConfig(width=0.125)))
    monkeypatch.setattr(cli, "load_from_args", lambda args: clf)
    argv = ["explain", *map(str, images[:2]), "--out", str(tmp_path / "x"), "--json"]
    err = _one_line_error(capsys, main(argv))
    assert "no LRP rule for call_method mean at '2.mean'" in err and "--fallback gradient" in err

    assert main([*argv, "--fallback", "gradient"]) == 0
    captured = capsys.readouterr()
    rows = [json.loads(line) for line in captured.out.splitlines()]
    line = "LRP rules covered 4 of 5 operations; gradient fallback for: mean (2.mean)"
    assert captured.err.strip() == line and len(rows) == 2
    for row in rows:
        assert row["lrp_rule_share"] == pytest.approx(0.8) and row["lrp_coverage"] == line
        assert row["fallback_ops"] == [{"op": "mean", "module": "2.mean"}]
    assert main([*argv[:-1], "--fallback", "gradient"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == line


def _model_with_a_mean() -> torch.nn.Module:
    class ChannelMean(torch.nn.Module):  # a mean over the flattened pixels: no rule (x.mean((2, 3)) has one)
        def forward(self, x):
            return x.flatten(2).mean(2)

    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), ChannelMean(), torch.nn.Linear(4, 43))


def test_every_lrp_command_takes_fallback():
    from klugerhans.cli import build_parser

    parser = build_parser()
    for command in ("explain", "audit", "fix", "figure", "serve"):
        args = parser.parse_args([command, *(["x.png"] if command == "explain" else []), "--fallback", "gradient"])
        assert args.fallback == "gradient", command


def test_figure_fallback_for_an_operation_without_rule(images, tmp_path, capsys, monkeypatch):
    import klugerhans.cli.explaining as cli
    from klugerhans.models.checkpoint import CheckpointMeta, classifier_from_model

    clf = classifier_from_model(_model_with_a_mean().eval(), CheckpointMeta(model=ModelConfig(width=0.125)))
    monkeypatch.setattr(cli, "load_from_args", lambda args: clf)
    four = [str(images[i % len(images)]) for i in range(4)]
    argv = ["figure", "--images", *four, "--out", str(tmp_path / "fig.png")]
    err = _one_line_error(capsys, main(argv))
    assert "no LRP rule for call_method mean at '2.mean'" in err
    assert main([*argv, "--fallback", "gradient"]) == 0
    assert "LRP rules covered 4 of 5 operations; gradient fallback for: mean (2.mean)" in capsys.readouterr().out
    assert (tmp_path / "fig.png").exists()


def test_web_model_store_passes_fallback_to_its_explainers():
    from klugerhans.errors import KlugerhansError
    from klugerhans.models.checkpoint import CheckpointMeta, classifier_from_model
    from klugerhans.web.analysis import ModelStore

    clf = classifier_from_model(_model_with_a_mean().eval(), CheckpointMeta(model=ModelConfig(width=0.125)))
    x = torch.rand(1, 3, 32, 32)
    with pytest.raises(KlugerhansError, match="no LRP rule"):
        ModelStore().explainer(clf, "epsilon_plus_flat").attribute(x)
    relevance = ModelStore(fallback="gradient").explainer(clf, "epsilon_plus_flat").attribute(x).relevance
    assert relevance.shape == (1, 3, 32, 32) and torch.isfinite(relevance).all()


@pytest.mark.parametrize(
    ("extra", "words"),
    [(["--probes", "window,ruler"], "unknown transplant probe(s) ruler"), (["--probes", ","], "at least one")],
)
def test_audit_probes_are_checked_in_one_line(extra, words, checkpoint, tmp_path, capsys):
    code = main(["audit", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "a"), "--no-progress", *extra])
    assert words in _one_line_error(capsys, code)
