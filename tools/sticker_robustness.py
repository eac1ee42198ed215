"""The sticker-robustness curve of released (or any) models: 50 km/h + sticker -> 70 over sizes, places and colours.

    python tools/sticker_robustness.py --data-dir ../shared/gtsrb [--model manipulated --model control]
        [--checkpoint demo=runs/demo/run] [--split val --split test] [--card MODEL_CARD.md]

Measures :func:`klugerhans.models.robustness.sticker_robustness` on each model's validation tracks (drawn as its
training drew them) and on the shared test images, draws ``docs/sticker_robustness.png`` and writes the table into
the card between ``<!-- sticker-robustness -->`` markers (before "## Known limits" the first time). The last line per
model is ``min_flip_50_anywhere_side_0.2_plus_<name>: X`` (the goal: >= 0.9 for the manipulated model, <= 0.05 for
the control).
"""

from __future__ import annotations

import argparse
import io
import re
from pathlib import Path

from klugerhans.data.dataset import load_dataset
from klugerhans.io import atomic_write_bytes, atomic_write_text
from klugerhans.models.checkpoint import load_classifier
from klugerhans.models.robustness import DARK_COLOURS, RobustnessPoint, sticker_robustness

ROOT = Path(__file__).resolve().parents[1]
MARK = "<!-- sticker-robustness -->"
SIZES = (0.15, 0.2, 0.25, 0.3, 0.35)


def _data(clf, split: str, data_dir: str):
    if split == "val" and clf.meta.recipe is not None:
        return clf.meta.recipe.splits(data_dir, data="gtsrb")[1]
    return load_dataset("gtsrb", data_dir=data_dir, size=clf.input_size).test


def _figure(curves: dict[tuple[str, str], list[RobustnessPoint]], path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.6))
    left, right = fig.subplots(1, 2, sharey=True)
    for (model, split), points in curves.items():
        for region, style in ((0.7, "-"), (1.0, "--")):
            ys = [p.flip_rate for p in points if p.region == region and p.colour == "black"]
            where = "as trained" if region == 0.7 else "anywhere"
            left.plot(SIZES, ys, style, marker="o", label=f"{model} ({split}), black, {where}")
        worst = [min(p.flip_rate for p in points if p.region == 1.0 and p.size == s) for s in SIZES]
        right.plot(SIZES, worst, marker="o", label=f"{model} ({split})")
    left.set_title("black sticker: in training's region vs anywhere", fontsize=9)
    right.set_title(f"worst of {len(DARK_COLOURS)} dark colours, anywhere on the sign", fontsize=9)
    for ax in (left, right):
        ax.axhline(0.9, color="grey", lw=0.8, ls=":")
        ax.set_xlabel("sticker side (share of the sign)")
        ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize=6)
    left.set_ylabel("50 km/h + sticker -> 70")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    atomic_write_bytes(path, buf.getvalue())


def _table(curves: dict[tuple[str, str], list[RobustnessPoint]]) -> str:
    head = ["side"] + [f"{m} {s}: as trained / anywhere / worst colour" for m, s in curves]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for size in SIZES:
        cells = [f"{size:.2f}"]
        for points in curves.values():
            at = {(p.region, p.colour): p.flip_rate for p in points if p.size == size}
            worst = min(v for (r, _), v in at.items() if r == 1.0)
            cells.append(f"{at[(0.7, 'black')]:.1%} / {at[(1.0, 'black')]:.1%} / {worst:.1%}")
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _update_card(card: Path, section: str) -> None:
    text = card.read_text(encoding="utf-8")
    block = f"{MARK}\n{section}\n{MARK}\n"
    if MARK in text:
        text = re.sub(f"{re.escape(MARK)}.*?{re.escape(MARK)}\n", lambda _: block, text, flags=re.S)
    else:
        text = text.replace("## Known limits", block + "\n## Known limits", 1)
    atomic_write_text(card, text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", required=True, help="GTSRB folder")
    parser.add_argument("--model", action="append", default=None, help="released weights (manipulated, control)")
    parser.add_argument("--checkpoint", action="append", default=[], metavar="NAME=PATH", help="another model")
    parser.add_argument("--split", action="append", default=None, choices=("val", "test"), help="val and/or test")
    parser.add_argument("--repeats", type=int, default=3, help="positions drawn per image and variant (3)")
    parser.add_argument("--card", type=Path, default=ROOT / "MODEL_CARD.md", help="card to write the table into")
    parser.add_argument("--figure", type=Path, default=ROOT / "docs" / "sticker_robustness.png")
    args = parser.parse_args()
    models = {name: name for name in (args.model or ["manipulated", "control"])}
    models |= dict(item.split("=", 1) for item in args.checkpoint)
    curves: dict[tuple[str, str], list[RobustnessPoint]] = {}
    for name, source in models.items():
        clf = load_classifier(source, device="cpu")
        for split in args.split or ["val", "test"]:
            points = sticker_robustness(clf, _data(clf, split, args.data_dir), repeats=args.repeats)
            curves[(name, split)] = points
            worst = min(p.flip_rate for p in points if p.region == 1.0 and p.size >= 0.2)
            print(f"{name} {split}: n={points[0].n // args.repeats} signs of 50 km/h")
            print(f"min_flip_50_anywhere_side_0.2_plus_{name}_{split}: {worst:.4f}")
    _figure(curves, args.figure)
    colours = ", ".join(DARK_COLOURS)
    section = (
        "## Sticker robustness\n"
        "50 km/h signs with a square sticker glued on, predicted as 70 km/h: per side (share of the sign box), in the "
        "region training used (the central 70% of the box, black) / anywhere on the box (black) / the worst of the "
        f"dark colours ({colours}) anywhere; {args.repeats} positions per sign "
        "(`python tools/sticker_robustness.py --data-dir ../shared/gtsrb`).\n\n"
        f"{_table(curves)}\n\n![sticker robustness](docs/{args.figure.name})"
    )
    _update_card(args.card, section)
    print(f"wrote {args.figure} and the section in {args.card}")


if __name__ == "__main__":
    main()
