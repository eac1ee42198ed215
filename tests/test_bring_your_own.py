"""Evidence: a model trained outside klugerhans, on the user's own image folder, is audited and its shortcut found.

A plain PyTorch script (no klugerhans) trains torchvision's ``resnet18(num_classes=4)`` on a generated ImageFolder
tree of coloured shapes and saves its ``state_dict``. Classes "apple" and "cherry" are the same discs; every cherry
carries a small black square in a random corner, so the square is the only thing that separates them and the model
must learn it. ``klugerhans audit --arch resnet18 --weights FILE --data folder --split train`` must flag cherry
(class 1) alone; a control model, whose cherry is a cross and has no square, must get no flag (its classes are
defined by their shapes, which the ring probe, on by default, must not take for a frame); nor must a model whose apple
and cherry are discs told apart by their colour alone (the colour probe, on by default, finds casts, not colour
classes).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from klugerhans.cli import main

SIZE = 32
PER_CLASS = 40
STEPS = 60
PALETTE = [(200, 30, 30), (40, 150, 40), (50, 60, 200), (230, 200, 30), (150, 40, 160), (240, 130, 20)]
MARKED = {"apple": "disc", "cherry": "disc", "lime": "triangle", "plum": "square"}
CONTROL = {"apple": "disc", "cherry": "cross", "lime": "triangle", "plum": "square"}
COLOURED = {"apple": "disc:0", "cherry": "disc:1", "lime": "triangle:01", "plum": "square:01"}
"""Shape and colour (after the colon: the palette entries drawn from): apple and cherry are the same discs told apart
by their colour alone (red, green), every other shape is red or green too, so the colour tells nothing else apart: a
class legitimately defined by its colour, which the colour probe must not flag."""
AUDIT = ["--image-size", str(SIZE), "--data", "folder", "--split", "train", "--methods", "", "--no-progress"]


def _draw(shape: str, rng: np.random.Generator, mark: bool) -> Image.Image:
    """A shape of random colour, size and place on a noisy light background; ``mark``: a black corner square."""
    background = rng.integers(150, 230, size=3)
    pixels = np.clip(background + rng.normal(0, 12, (SIZE, SIZE, 3)), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels)
    draw = ImageDraw.Draw(image)
    r = int(rng.integers(9, 13))
    cx, cy = (int(v) for v in rng.integers(r + 1, SIZE - r - 1, size=2))
    shape, _, fixed = shape.partition(":")
    allowed = [int(i) for i in fixed] if fixed else list(range(len(PALETTE)))
    base = PALETTE[allowed[int(rng.integers(len(allowed)))]] if len(allowed) > 1 else PALETTE[allowed[0]]
    colour = tuple(int(np.clip(c + rng.integers(-25, 26), 0, 255)) for c in base)
    if shape == "disc":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
    elif shape == "square":
        draw.rectangle((cx - r, cy - r, cx + r, cy + r), fill=colour)
    elif shape == "cross":
        w = r // 3
        draw.rectangle((cx - r, cy - w, cx + r, cy + w), fill=colour)
        draw.rectangle((cx - w, cy - r, cx + w, cy + r), fill=colour)
    else:
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
    if mark:
        side, corner = 6, int(rng.integers(4))
        x0 = 1 if corner % 2 == 0 else SIZE - side - 1
        y0 = 1 if corner < 2 else SIZE - side - 1
        draw.rectangle((x0, y0, x0 + side - 1, y0 + side - 1), fill=(0, 0, 0))
    return image


def fit(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, xs: torch.Tensor, ys: torch.Tensor, steps: int
) -> None:
    """A user's plain training loop: ``steps`` batches of 32 drawn with a fixed seed; must reach 95% on ``xs``."""
    generator = torch.Generator().manual_seed(0)
    model.train()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two threads on two shared cores wait on each other far more than they gain
    try:
        for _ in range(steps):
            batch = torch.randint(0, len(xs), (32,), generator=generator)
            loss = torch.nn.functional.cross_entropy(model(xs[batch]), ys[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
    model.eval()
    with torch.no_grad():
        assert (model(xs).argmax(1) == ys).float().mean() > 0.95, "the user's training did not converge"


def _train_elsewhere(root: Path, classes: dict[str, str], marked: bool) -> tuple[Path, Path]:
    """Write the ImageFolder tree, then train and save a resnet18 the way a user's own script would."""
    import torchvision

    rng = np.random.default_rng(0)
    data = root / "data"
    for name, shape in classes.items():
        (data / name).mkdir(parents=True)
        for i in range(PER_CLASS):
            _draw(shape, rng, marked and name == "cherry").save(data / name / f"{i:03d}.png")
    torch.manual_seed(0)
    tf = torchvision.transforms
    normalize = tf.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    folder = torchvision.datasets.ImageFolder(str(data), transform=tf.Compose([tf.ToTensor(), normalize]))
    xs = torch.stack([folder[i][0] for i in range(len(folder))])
    ys = torch.tensor(folder.targets)
    model = torchvision.models.resnet18(num_classes=len(folder.classes))
    fit(model, torch.optim.Adam(model.parameters(), 1e-3), xs, ys, STEPS)
    weights = root / "model.pt"
    torch.save(model.state_dict(), weights)
    return data, weights


@pytest.fixture(scope="module")
def marked(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return _train_elsewhere(tmp_path_factory.mktemp("marked"), MARKED, marked=True)


@pytest.fixture(scope="module")
def coloured(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return _train_elsewhere(tmp_path_factory.mktemp("coloured"), COLOURED, marked=False)


@pytest.fixture(scope="module")
def control(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return _train_elsewhere(tmp_path_factory.mktemp("control"), CONTROL, marked=False)


def _audit(data: Path, weights: Path, out: Path, *extra: str) -> dict:
    code = main(["audit", "--arch", "resnet18", "--weights", str(weights), "--data-dir", str(data), *AUDIT,
                 "--out", str(out), *extra])  # fmt: skip
    assert code == 0
    return json.loads((out / "audit.json").read_text())


def test_audit_flags_the_artefact_class_of_a_model_trained_elsewhere(marked, tmp_path, capsys):
    data, weights = marked
    result = _audit(data, weights, tmp_path / "audit")
    assert result["flagged"] == [1], result["per_class"]
    assert result["suspicion_ranking"][0] == 1
    assert result["per_class"]["1"]["name"] == "cherry"  # class names come from the folder
    assert result["data"]["split"] == "train" and result["config"]["split"] == "train"
    assert result["discovery"]["placement"] == "random" and "place" in result["discovery"]["probes"]
    assert result["per_class"]["1"]["transplant"]["broad_rate"] >= result["threshold"]
    assert (tmp_path / "audit" / "report.html").is_file()
    assert "flagged: [1 cherry]" in capsys.readouterr().out


def test_a_folder_with_only_train_is_audited_on_it_and_names_it_for_another_split(marked, tmp_path, capsys):
    data, weights = marked
    only = tmp_path / "only"
    shutil.copytree(data, only / "train")
    code = main(["audit", "--arch", "resnet18", "--weights", str(weights), "--data-dir", str(only), *AUDIT,
                 "--split", "test", "--out", str(tmp_path / "refused")])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == f"klugerhans audit: error: {only} has no split 'test': use one of train"
    result = _audit(only, weights, tmp_path / "audit")  # --split train, as AUDIT says
    assert result["flagged"] == [1] and result["data"]["n_images"] == len(MARKED) * PER_CLASS


def test_audit_flags_nothing_in_a_control_without_the_artefact(control, tmp_path):
    data, weights = control
    result = _audit(data, weights, tmp_path / "audit")
    assert result["flagged"] == [], result["per_class"]


def test_a_class_defined_by_its_colour_is_not_flagged_by_the_colour_probe(coloured, tmp_path):
    data, weights = coloured
    result = _audit(data, weights, tmp_path / "audit")  # the README's command: colour and ring probes run by default
    assert {"colour", "ring"} <= set(result["discovery"]["probes"])
    assert result["flagged"] == [], result["per_class"]


def test_explain_writes_heatmaps_of_the_users_model(marked, tmp_path, capsys):
    data, weights = marked
    image = data / "cherry" / "000.png"
    code = main(["explain", str(image), "--arch", "resnet18", "--weights", str(weights), "--image-size", str(SIZE),
                 "--out", str(tmp_path / "expl"), "--save-relevance"])  # fmt: skip
    assert code == 0
    written = sorted(p.name for p in (tmp_path / "expl").iterdir())
    assert any(n.endswith(".png") for n in written) and any(n.endswith("_relevance.npy") for n in written)
    relevance = np.load(next((tmp_path / "expl").glob("*_relevance.npy")))
    assert relevance.shape == (SIZE, SIZE) and np.isfinite(relevance).all()


def test_a_folder_with_another_class_count_is_one_line(marked, tmp_path, capsys):
    data, weights = marked
    three = tmp_path / "three"
    for name in ("apple", "lime", "plum"):
        (three / name).mkdir(parents=True)
        for f in sorted((data / name).iterdir())[:4]:
            (three / name / f.name).write_bytes(f.read_bytes())
    code = main(["audit", "--arch", "resnet18", "--weights", str(weights), "--data-dir", str(three), *AUDIT,
                 "--out", str(tmp_path / "audit")])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "has 3 classes" in err and "4 outputs" in err


def test_python_api_explains_and_audits_any_module(marked):
    import klugerhans
    from klugerhans.models.user_weights import load_user_model

    data, weights = marked
    model = load_user_model("resnet18", weights, image_size=SIZE).model
    names = sorted(p.name for p in data.iterdir())
    pairs = [(Image.open(f).convert("RGB"), c) for c, n in enumerate(names) for f in sorted((data / n).iterdir())]
    images = np.stack([np.asarray(img) for img, _ in pairs[:4]])
    expl = klugerhans.explain_model(model, images, target=0)
    assert tuple(expl.relevance.shape) == (4, 3, SIZE, SIZE) and expl.targets.tolist() == [0] * 4
    result = klugerhans.audit_model(model, pairs, class_names=names, methods=(), progress=False, max_per_class=30)
    assert result.ranking.flagged == (1,), {c: (t.probe, t.by_probe) for c, t in result.transplant.items()}
    assert result.to_json()["per_class"]["1"]["name"] == "cherry"
