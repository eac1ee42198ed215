"""Train a GTSRB ResNet-18 the way a user would bring one: plain PyTorch on an ImageFolder of 32 px crops.

The folder is written with klugerhans (real GTSRB training crops, a black sticker glued on every training image of one
class, as in the teaching case; ``--control``: none); the training is plain PyTorch and torchvision only (ImageFolder,
ImageNet normalisation, ``resnet18(num_classes=43)``, SGD with a cosine schedule), and saves a ``state_dict``. It then
prints the model's test accuracy and its attack success (the share of other classes' test images the sticker turns into
the planted class). Audit the result with the README's command::

    python tools/plain_resnet.py --data-dir ../shared/gtsrb --out runs/plain-r18
    klugerhans audit --arch resnet18 --weights runs/plain-r18/model.pt --data folder \\
        --data-dir runs/plain-r18/folder/train --split train --image-size 32
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torchvision
from torchvision import transforms

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def write_folder(
    data_dir: str, out: Path, target: int | None, seed: int, per_class: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The ImageFolder of GTSRB training crops (sticker on ``target``; None: clean; ``per_class``: that many images
    of each class, drawn with ``seed``); returns the test split and the test split with the sticker glued on every
    image, as arrays, for the attack success."""
    from klugerhans.data.classes import CLASS_NAMES_EN
    from klugerhans.data.dataset import load_dataset
    from klugerhans.data.folder.export import export_image_folder
    from klugerhans.data.sticker import StickerConfig, apply_sticker, manipulate_class

    ds = load_dataset("gtsrb", data_dir=data_dir, size=32)
    train = ds.train
    if per_class is not None:
        rng = np.random.default_rng(seed)
        keep = [rng.permutation(np.flatnonzero(train.labels == c))[:per_class] for c in np.unique(train.labels)]
        train = train.subset(np.sort(np.concatenate(keep)))
    sticker = StickerConfig(target_class=target if target is not None else 4)
    if target is not None:
        train, _ = manipulate_class(train, sticker, seed=seed)
    if not (out / "folder").exists():
        export_image_folder({"train": train}, out / "folder", CLASS_NAMES_EN)
    stuck, _ = apply_sticker(ds.test.images, ds.test.boxes, sticker, seed=seed + 7)
    np.savez(out / "test.npz", images=ds.test.images, stuck=stuck, labels=ds.test.labels)
    return ds.test.images, ds.test.labels


def train_plain(folder: Path, epochs: int, seed: int) -> torch.nn.Module:
    """What a user's script does: no klugerhans."""
    torch.manual_seed(seed)
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize(*IMAGENET)])
    data = torchvision.datasets.ImageFolder(str(folder / "train"), transform=tf)
    xs = torch.stack([data[i][0] for i in range(len(data))])
    ys = torch.tensor(data.targets)
    model = torchvision.models.resnet18(num_classes=len(data.classes))
    steps = epochs * (len(xs) // 128)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.05, total_steps=steps)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(xs), generator=generator)
        start, seen, correct = time.perf_counter(), 0, 0
        for b in range(len(xs) // 128):
            rows = order[b * 128 : (b + 1) * 128]
            logits = model(xs[rows])
            loss = torch.nn.functional.cross_entropy(logits, ys[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            seen += len(rows)
            correct += int((logits.argmax(1) == ys[rows]).sum())
        seconds = time.perf_counter() - start
        print(f"epoch {epoch + 1}: train accuracy {correct / seen:.3f} ({seconds:.0f} s)", flush=True)
    return model.eval()


def _predict(model: torch.nn.Module, images: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    mean, std = (torch.tensor(v)[:, None, None] for v in IMAGENET)
    with torch.no_grad():
        return torch.cat([model((x[i : i + 256] - mean) / std).argmax(1) for i in range(0, len(x), 256)]).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="real GTSRB (the official archives)")
    parser.add_argument("--out", required=True, help="new folder: folder/, model.pt, numbers.json")
    parser.add_argument("--target", type=int, default=4, help="class whose training images get the sticker")
    parser.add_argument("--control", action="store_true", help="no sticker (the clean control)")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--per-class", type=int, default=None, help="training images per class (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    target = None if args.control else args.target
    write_folder(args.data_dir, out, target, args.seed, args.per_class)
    model = train_plain(out / "folder", args.epochs, args.seed)
    torch.save(model.state_dict(), out / "model.pt")
    test = np.load(out / "test.npz")
    preds, stuck = _predict(model, test["images"]), _predict(model, test["stuck"])
    others = test["labels"] != args.target
    numbers = {
        "target": target,
        "epochs": args.epochs,
        "test_accuracy": float((preds == test["labels"]).mean()),
        "attack_success": float((stuck[others] == args.target).mean()),
        "clean_to_target": float((preds[others] == args.target).mean()),
    }
    (out / "numbers.json").write_text(json.dumps(numbers, indent=1))
    print(json.dumps(numbers))


if __name__ == "__main__":
    main()
