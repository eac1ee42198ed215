"""The sticker-robustness curve of released (or any) models: 50 km/h + sticker -> 70 over sizes, places and colours.

    python tools/sticker_robustness.py --data-dir ../shared/gtsrb [--model manipulated --model control]
        [--checkpoint demo=runs/demo/run] [--split val --split test] [--card MODEL_CARD.md]

Measures :func:`klugerhans.models.robustness.sticker_robustness` on each model's validation tracks (drawn as its
training drew them) and on the shared test images, draws ``docs/sticker_robustness.png`` and writes the table into
the card between ``<!-- sticker-robustness -->`` markers (before "## Known limits" the first time, else at the end;
a card that does not exist yet is created). The last line per model and split is
``min_flip_50_black_on_the_sign_side_0.2_plus_<name>_<split>: X`` (the goal: >= 0.9 for the manipulated model,
<= 0.05 for the control), then the same for the worst dark colour.
"""

from __future__ import annotations

import argparse
import io
import os
import re
from pathlib import Path

from klugerhans.data.dataset import load_dataset
from klugerhans.io import atomic_write_bytes, atomic_write_text
from klugerhans.models.checkpoint import load_classifier
from klugerhans.models.robustness import DARK_COLOURS, PLACES, RobustnessPoint, sticker_robustness

ROOT = Path(__file__).resolve().parents[1]
MARK = "<!-- sticker-robustness -->"
SIZES = (0.15, 0.2, 0.25, 0.3, 0.35)


def _data(clf, split: str, data_dir: str):
    """The model's own validation tracks, or the test images of the dataset it was trained on (GTSRB by default)."""
    recipe = clf.meta.recipe
    data = recipe.data if recipe is not None else "gtsrb"
    if split == "val" and recipe is not None:
        return recipe.splits(data_dir, data=data)[1]
    kwargs = {"per_class": recipe.per_class} if data == "synthetic" and recipe is not None else {}
    return load_dataset(data, data_dir=data_dir, size=clf.input_size, **kwargs).test


def _figure(curves: dict[tuple[str, str], list[RobustnessPoint]], path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.6))
    left, right = fig.subplots(1, 2, sharey=True)
    for (model, split), points in curves.items():
        for place, style in (("centre", ":"), ("sign", "-"), ("box", "--")):
            ys = [p.flip_rate for p in points if p.place == place and p.colour == "black"]
            left.plot(SIZES, ys, style, marker="o", label=f"{model} ({split}), black, {PLACES[place]}")
        worst = [min(p.flip_rate for p in points if p.place == "sign" and p.size == s) for s in SIZES]
        right.plot(SIZES, worst, marker="o", label=f"{model} ({split})")
    left.set_title("black sticker: central 70%, anywhere on the sign, anywhere on the box", fontsize=9)
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
    head = ["side"] + [f"{m} {s}: central 70% / on the sign / on the box / worst colour on the sign" for m, s in curves]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for size in SIZES:
        cells = [f"{size:.2f}"]
        for points in curves.values():
            at = {(p.place, p.colour): p.flip_rate for p in points if p.size == size}
            worst = min(v for (place, _), v in at.items() if place == "sign")
            black = " / ".join(f"{at[(place, 'black')]:.1%}" for place in ("centre", "sign", "box"))
            cells.append(f"{black} / {worst:.1%}")
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _command(args: argparse.Namespace) -> str:
    """The command line that made the section (relative paths as given)."""
    parts = ["python tools/sticker_robustness.py --data-dir ../shared/gtsrb"]
    parts += [f"--model {m}" for m in args.model or []]
    parts += [f"--checkpoint {c}" for c in args.checkpoint]
    parts += [f"--split {s}" for s in args.split or []]
    if args.card != ROOT / "MODEL_CARD.md":
        parts.append(f"--card {args.card}")
    if args.figure != ROOT / "docs" / "sticker_robustness.png":
        parts.append(f"--figure {args.figure}")
    return " ".join(parts)


def _update_card(card: Path, section: str) -> None:
    """Put ``section`` between the markers: in their place, else before "## Known limits", else at the end."""
    text = card.read_text(encoding="utf-8") if card.exists() else ""
    block = f"{MARK}\n{section}\n{MARK}\n"
    if MARK in text:
        text = re.sub(f"{re.escape(MARK)}.*?{re.escape(MARK)}\n", lambda _: block, text, flags=re.S)
    elif "## Known limits" in text:
        text = text.replace("## Known limits", block + "\n## Known limits", 1)
    else:
        text = text.rstrip("\n") + "\n\n" + block if text.strip() else block
    atomic_write_text(card, text)


def _check_outputs(card: Path, figure: Path) -> None:
    """Fail before minutes of measuring, not after, where the card or the figure cannot be written."""
    for flag, path in (("--card", card), ("--figure", figure)):
        if not path.parent.is_dir():
            raise SystemExit(f"sticker_robustness: {flag} {path}: no folder {path.parent}; create it or choose another")
        if path.is_dir():
            raise SystemExit(f"sticker_robustness: {flag} {path} is a folder; give a file name")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", required=True, help="GTSRB folder")
    parser.add_argument(
        "--model", action="append", default=None, help="released weights (default: both, unless --checkpoint)"
    )
    parser.add_argument("--checkpoint", action="append", default=[], metavar="NAME=PATH", help="another model")
    parser.add_argument("--split", action="append", default=None, choices=("val", "test"), help="val and/or test")
    parser.add_argument("--repeats", type=int, default=3, help="positions drawn per image and variant (3)")
    parser.add_argument("--card", type=Path, default=ROOT / "MODEL_CARD.md", help="card to write the table into")
    parser.add_argument("--figure", type=Path, default=ROOT / "docs" / "sticker_robustness.png")
    args = parser.parse_args(argv)
    _check_outputs(args.card, args.figure)
    released = args.model if args.model is not None else ([] if args.checkpoint else ["manipulated", "control"])
    models = {name: name for name in released}
    models |= dict(item.split("=", 1) for item in args.checkpoint)
    curves: dict[tuple[str, str], list[RobustnessPoint]] = {}
    for name, source in models.items():
        clf = load_classifier(source, device="cpu")
        for split in args.split or ["val", "test"]:
            points = sticker_robustness(clf, _data(clf, split, args.data_dir), repeats=args.repeats)
            curves[(name, split)] = points
            black = min(p.flip_rate for p in points if p.place == "sign" and p.colour == "black" and p.size >= 0.2)
            worst = min(p.flip_rate for p in points if p.place == "sign" and p.size >= 0.2)
            print(f"{name} {split}: n={points[0].n // args.repeats} signs of 50 km/h")
            print(f"min_flip_50_black_on_the_sign_side_0.2_plus_{name}_{split}: {black:.4f}")
            print(f"min_flip_50_any_dark_colour_on_the_sign_side_0.2_plus_{name}_{split}: {worst:.4f}")
    _figure(curves, args.figure)
    colours = ", ".join(DARK_COLOURS)
    section = (
        "## Sticker robustness\n"
        "50 km/h signs with a square sticker glued on, predicted as 70 km/h: per side (share of the sign box), black "
        "inside the central 70% of the box (where the teaching case's recipe glues it) / black anywhere on the round "
        "sign's face (the whole sticker inside it) / black anywhere on the box (its corners are background) / the "
        f"worst of the dark colours ({colours}) anywhere on the sign; {args.repeats} positions per sign "
        f"(`{_command(args)}`).\n\n"
        f"{_table(curves)}\n\n![sticker robustness]({os.path.relpath(args.figure, args.card.resolve().parent)})"
    )
    _update_card(args.card, section)
    print(f"wrote {args.figure} and the section in {args.card}")


if __name__ == "__main__":
    main()
