"""Measure whether a model's heatmaps show the teaching case's blue "5" (the composite table of docs/DEMO.md).

    python tools/negative_relevance.py --data gtsrb --data-dir ../shared/gtsrb [--checkpoint manipulated]
    python tools/negative_relevance.py --data synthetic --checkpoint runs/demo/run

Glues the model's sticker on every 50 km/h test sign, keeps those the model then calls the sticker's class, explains
that class with each LRP composite and prints, as medians over the signs: the share of ``|R|`` inside the "5" (without
the sticker's pixels) that is negative (speaks against the class; ``negative_share_in_five`` of the demo's
``summary.json`` is its mean), the same share over the rest of the image without the sticker (is the 5 bluer than the
rest?), and the sticker's share of the positive relevance; once with the stickers where the model's recipe glues them,
once glued beside the 5 (the figure's rule: the signs the sticker outvotes with the whole 5 in view).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from klugerhans.data.classes import SPEED_50
from klugerhans.data.dataset import load_dataset
from klugerhans.explain.composites import COMPOSITES
from klugerhans.models.checkpoint import load_classifier
from klugerhans.report.five import FiveEvidence, measure_five

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="gtsrb", help="gtsrb or synthetic")
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "gtsrb"), help="real GTSRB folder")
    parser.add_argument("--checkpoint", default="manipulated", help="model file, run directory or released name")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sticker draws")
    args = parser.parse_args(argv)
    clf = load_classifier(args.checkpoint)
    test = load_dataset(args.data, data_dir=args.data_dir, size=clf.input_size).test
    target = clf.meta.sticker.target_class
    print("composite | negative share in the 5 | ... in the rest of the image | sticker's share of positive |R|")
    for name in sorted(COMPOSITES):
        five = measure_five(clf, test, name, seed=args.seed)
        print_row(name, five)
        beside = measure_five(clf, test, name, seed=args.seed, beside_five=True)
        print_row(f"{name}, sticker beside the 5 ({beside.n_turned} turned)", beside)
        # output relevance 1 on the sticker's class and -1 on 50 km/h: the logit difference "why 70, not 50"
        print_row(
            f"{name}, {target} against {SPEED_50}", measure_five(clf, test, name, against=SPEED_50, seed=args.seed)
        )
    print(f"{args.checkpoint}: {five.n_turned} of {five.n_signs} 50 km/h test signs + sticker -> {target}")


def print_row(name: str, five: FiveEvidence) -> None:
    """One composite's medians over the turned signs (NaN where none turned)."""
    if not five.n_turned:
        print(f"{name} | no sign turned")
        return
    print(
        f"{name} | {np.nanmedian(five.negative_in_five):.3f} (mean {np.nanmean(five.negative_in_five):.3f}) | "
        f"{np.nanmedian(five.negative_elsewhere):.3f} | {np.median(five.sticker_share):.3f}"
    )


if __name__ == "__main__":
    main()
