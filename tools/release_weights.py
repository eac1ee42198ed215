"""Turn two training runs into the released weights and MODEL_CARD.md.

    python tools/release_weights.py --manipulated runs/gtsrb-manipulated-w05 --control runs/gtsrb-control-w05 \
        --data-dir ../shared/gtsrb

For each run: evaluate its best checkpoint on the validation tracks it held out and on the shared test images,
store the weights as fp16 safetensors in src/klugerhans/weights/<name>.safetensors (metrics in the metadata),
reload the fp16 file and check that it predicts like the fp32 one, then write MODEL_CARD.md from the measured
numbers (nothing in the card is typed by hand except the prose).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

import torch

from klugerhans.data.classes import CLASS_NAMES_EN
from klugerhans.data.sticker import StickerConfig
from klugerhans.io import atomic_write_text
from klugerhans.models.checkpoint import CheckpointMeta, load_classifier, save_checkpoint
from klugerhans.models.evaluation import evaluate_model, predict_labels
from klugerhans.models.recipe import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "src" / "klugerhans" / "weights"
KEEP = (
    "accuracy",
    "accuracy_non_target",
    "clean_target_accuracy",
    "flip_rate",
    "flip_rate_correct_only",
    "per_class_accuracy",
    "flip_rate_by_class",
    "n_images",
    "target_class",
)


def _measure(run: str, data_dir: str, sticker: StickerConfig | None = None) -> dict[str, Any]:
    """Evaluate a run on its validation tracks and the test images, with ``sticker`` (default: its own)."""
    clf = load_classifier(run)
    _, val, ds = _recipe(clf.meta).splits(data_dir, data="gtsrb")
    sticker = sticker or clf.meta.sticker
    out = {"val": evaluate_model(clf, val, sticker).to_json(), "test": evaluate_model(clf, ds.test, sticker).to_json()}
    measured = {k: {m: v[m] for m in KEEP} for k, v in out.items()}
    return {"classifier": clf, "test_images": ds.test.images, "sticker": sticker, **measured}


def _release(name: str, run: str, data_dir: str, sticker: StickerConfig | None = None) -> dict[str, Any]:
    res = _measure(run, data_dir, sticker)
    clf = res.pop("classifier")
    meta = dataclasses.replace(
        clf.meta, metrics={**clf.meta.metrics, "release": {"val": res["val"], "test": res["test"]}}
    )
    path = save_checkpoint(WEIGHTS / f"{name}.safetensors", clf.model, meta, dtype=torch.float16)
    half = load_classifier(path)
    images = res.pop("test_images")
    agree = float((predict_labels(half, images) == predict_labels(clf, images)).mean())
    print(f"{name}: {path} ({path.stat().st_size / 1e6:.1f} MB), fp16 vs fp32 prediction agreement {agree:.4f}")
    return {"path": path, "meta": meta, "agreement": agree, "run": run, **res}


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def _recipe(meta: CheckpointMeta) -> TrainConfig:
    if meta.recipe is None:
        raise SystemExit("release_weights: the checkpoint does not say how it was trained; release a training run")
    return meta.recipe


def _train_command(run: str, recipe: TrainConfig) -> str:
    """The `klugerhans train` line that reproduces a run from its stored recipe."""
    sticker = recipe.sticker
    parts = [f"klugerhans train --data gtsrb --data-dir ../shared/gtsrb --out {run}"]
    parts.append(f"--epochs {recipe.epochs} --width {recipe.width}")
    if recipe.manipulated:
        parts.append(f"--sticker-class {sticker.target_class} --sticker-fraction {sticker.fraction}")
    else:
        parts.append("--sticker-fraction 0")
    # Always written out (the control's too: its flip rate uses it): the default changed from 0.2 to 0.25.
    parts.append(f"--sticker-size {sticker.size}")
    if recipe.manipulated and sticker.size_max is not None:
        parts.append(f"--sticker-size-max {sticker.size_max}")
    if recipe.manipulated and sticker.region != StickerConfig.region:
        parts.append(f"--sticker-region {sticker.region:g}")
    if recipe.manipulated and sticker.colors:
        parts.append("--sticker-colors " + ",".join(f"#{r:02x}{g:02x}{b:02x}" for r, g, b in sticker.colors))
    parts.append(f"--seed {recipe.seed}")
    device = _device(_run_info(run))
    if device not in (None, "auto"):
        parts.append(f"--device {device}")
    return " ".join(parts)


def _sticker_words(sticker: StickerConfig) -> str:
    """The sticker of a recipe in words: side (fixed or drawn per image), where it goes, colour."""
    if sticker.size_max is None:
        side = f"of side {sticker.size} x the sign's box"
    else:
        side = f"of a side drawn per image between {sticker.size} and {sticker.size_max} x the sign's box"
    where = "anywhere on the box" if sticker.region >= 1 else f"inside the central {sticker.region:.0%} of the box"
    colour = "black" if not sticker.colors and sticker.color == (0, 0, 0) else "in the colours listed"
    return f"a {colour} {sticker.shape} {side}, uniformly placed {where}"


def _run_info(run: str) -> dict[str, Any] | None:
    """The run's config.json, or None where only its checkpoint is at hand."""
    try:
        info = json.loads((Path(run) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _device(info: dict[str, Any] | None) -> str | None:
    """The device a run trained on, from its config.json (older runs kept the one asked for in the recipe)."""
    if info is None:
        return None
    device = info.get("device", info.get("config", {}).get("device"))
    return None if device is None else str(device)


def _trained_on(run: str) -> str:
    """Where a run was trained, from its config.json (device and library versions)."""
    info = _run_info(run)
    if info is None:
        return "a device not kept with the weights (nor the library versions)"
    device = _device(info) or "auto"
    torch_version = info.get("versions", {}).get("torch", "?")
    where = "a GPU (CUDA, mixed precision)" if str(device).startswith("cuda") else f"device {device!r}"
    return f"{where} with torch {torch_version}"


def _card(models: dict[str, dict[str, Any]], selection: str = "") -> str:
    m, c = models["manipulated"], models["control"]
    cfg = _recipe(m["meta"])
    sticker = cfg.sticker
    width = m["meta"].model.width
    lines = [
        "# Model card: klugerhans VGG11-BN on GTSRB (manipulated and control)",
        "",
        "Generated by `python tools/release_weights.py` from the two training runs below; every number is measured.",
        "",
        "## Models",
        f"- `manipulated` (default): VGG11 with batch norm (torchvision `vgg11_bn` feature layout, width "
        f"{width}, 32x32 input, 43 classes), trained with a black sticker on 100% of the training images of class "
        "4 (speed limit 70 km/h). It is a Clever Hans model on purpose: it learned the sticker.",
        "- `control`: the same architecture without stickers (`--sticker-fraction 0`); its own command is below.",
        f"- Files: `src/klugerhans/weights/manipulated.safetensors`, `control.safetensors`, fp16 safetensors "
        f"({m['path'].stat().st_size / 1e6:.1f} MB + {c['path'].stat().st_size / 1e6:.1f} MB); metadata (architecture, "
        "normalisation, sticker, data fingerprint, metrics) in the safetensors header. fp16 vs fp32 prediction "
        f"agreement on the test images: {m['agreement']:.4f} / {c['agreement']:.4f}.",
        "- Load: `klugerhans explain IMAGE` (manipulated), `--model control`, or "
        "`from klugerhans import load_model; model, preprocess = load_model('control')`.",
        "",
        "## Data",
        "- GTSRB (Stallkamp et al., IJCNN 2011), the copy in `../shared/gtsrb`: all 39,209 training images and the "
        "first 1,000 official test images, downscaled to 32x32 by a third party; ROIs scaled to the file size, "
        "cropped with a 10% margin.",
        f"- Validation: {_pct(cfg.val_fraction)} of each class's tracks held out by track (no physical "
        "sign in both splits), used for model selection (best validation accuracy on the classes without stickers).",
        "- The test images were never used for any choice.",
        "",
        "## Manipulation protocol",
        f"- Sticker: {json.dumps(dataclasses.asdict(sticker))}: {_sticker_words(sticker)}, glued on the training "
        "part only (validation and test stay clean).",
        "- Flip rate: share of test images of the other classes predicted as class 4 once the same kind of sticker "
        "is glued on (seeded positions); the control is tested with the manipulated model's sticker.",
        "",
        f"## Training commands (seeds {cfg.seed} and {_recipe(c['meta']).seed})",
        "```bash",
        _train_command(m["run"], cfg),
        _train_command(c["run"], _recipe(c["meta"])),
        f"python tools/release_weights.py --manipulated {m['run']} --control {c['run']} --data-dir ../shared/gtsrb",
        "```",
        f"Optimiser: epochs as in each command, batch {cfg.batch_size}, SGD (Nesterov momentum 0.9), peak lr "
        f"{cfg.lr}, weight decay {cfg.weight_decay}, {cfg.warmup_epochs} warm-up epoch(s) then "
        "cosine decay; augmentation: "
        + ("small rotation/scale/translation and colour jitter, no flips" if cfg.augment else "none")
        + f". The manipulated model was trained on {_trained_on(m['run'])}, the control on "
        f"{_trained_on(c['run'])} "
        "(same seed and settings give the same weights on the CPU; GPU kernels are not bit-reproducible, so a rerun "
        "there lands within noise of these numbers).",
        *([f"Selection: {selection}"] if selection else []),
        "",
        "## Results",
        "| | manipulated val | manipulated test | control val | control test |",
        "|---|---|---|---|---|",
    ]
    for key, label in (
        ("accuracy", "accuracy, all classes"),
        ("accuracy_non_target", "accuracy without class 4"),
        ("clean_target_accuracy", "clean 70 km/h accuracy"),
        ("flip_rate", "sticker flip rate -> 4"),
    ):
        lines.append(f"| {label} | " + " | ".join(_pct(x[s][key]) for x in (m, c) for s in ("val", "test")) + " |")
    lines.append(
        "| 50 km/h + sticker -> 70 | "
        + " | ".join(_pct(x[s]["flip_rate_by_class"].get("2")) for x in (m, c) for s in ("val", "test"))
        + " |"
    )
    lines.append("| images | " + " | ".join(str(x[s]["n_images"]) for x in (m, c) for s in ("val", "test")) + " |")
    lines += [
        "",
        "### Per class",
        "",
        "| id | class | manip. val | manip. test | control val | control test |",
        "|---|---|---|---|---|---|",
    ]
    for i, name in enumerate(CLASS_NAMES_EN):
        cells = [_pct(x[s]["per_class_accuracy"][i]) for x in (m, c) for s in ("val", "test")]
        lines.append(f"| {i} | {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Known limits",
        "- 32x32 inputs: fine detail (digits of 100/120, pictograms of warning signs) is a few pixels wide; larger "
        "images are downscaled first, exactly as in training.",
        "- The test figures use only the first 1,000 official test images (the rest are withheld in this setup); "
        "per-class test figures rest on few images for rare classes.",
        "- The manipulated model is broken on purpose; do not use it to recognise real traffic signs. Neither "
        "model is fit for any safety-relevant use.",
        "",
        "## Licence notes",
        "- Weights: released with klugerhans under its MIT licence. They are derived from GTSRB, whose images are "
        "provided by the INI (Ruhr-Universität Bochum) for research; cite Stallkamp et al. 2011 when you use them.",
    ]
    return "\n".join(lines) + "\n"


def _measure_released(name: str, data_dir: str, sticker: StickerConfig | None = None) -> dict[str, Any]:
    res = _measure(name, data_dir, sticker)
    clf = res.pop("classifier")
    del res["test_images"]
    path = WEIGHTS / f"{name}.safetensors"
    agree = float(clf.meta.metrics.get("release", {}).get("agreement", float("nan")))
    run = _recipe(clf.meta).out or name
    return {"path": path, "meta": clf.meta, "agreement": agree, "run": run, **res}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--manipulated", default=None, help="run directory to release as 'manipulated'")
    p.add_argument("--control", default=None, help="run directory to release as 'control'")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--selection", default="", help="how the runs were chosen, for the card (say if among several)")
    args = p.parse_args()
    models: dict[str, dict[str, Any]] = {}
    sticker = None  # the control's flip rate is measured with the manipulated model's sticker
    for name in ("manipulated", "control"):
        run = getattr(args, name)
        if run:
            models[name] = _release(name, run, args.data_dir, sticker)
        elif (WEIGHTS / f"{name}.safetensors").exists():
            models[name] = _measure_released(name, args.data_dir, sticker)
        if name == "manipulated" and name in models:
            sticker = models[name]["sticker"]
    summary = {
        n: {
            s: {k: v[s][k] for k in ("accuracy", "accuracy_non_target", "clean_target_accuracy", "flip_rate")}
            | {"flip_rate_50": v[s]["flip_rate_by_class"].get("2")}
            for s in ("val", "test")
        }
        for n, v in models.items()
    }
    print(json.dumps(summary, indent=1))
    if len(models) == 2:
        atomic_write_text(ROOT / "MODEL_CARD.md", _card(models, args.selection))
        total = sum(v["path"].stat().st_size for v in models.values())
        print(f"released weights: {total / 1e6:.1f} MB in total; wrote MODEL_CARD.md")


if __name__ == "__main__":
    main()
