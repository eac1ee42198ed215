"""Measure whether a model's heatmaps show the seed's blue "5" (the composite table of docs/DEMO.md).

    python tools/negative_relevance.py --data gtsrb --data-dir ../shared/gtsrb [--checkpoint manipulated]
    python tools/negative_relevance.py --data synthetic --checkpoint runs/demo/run

Glues the model's sticker on every 50 km/h test sign, keeps those the model then calls the sticker's class, explains
that class with each LRP composite and prints, as medians over the signs: the share of ``|R|`` inside the "5" that is
negative (speaks against the class; ``negative_share_in_five`` of the demo's ``summary.json`` is its mean), the same
share over the rest of the image without the sticker (is the 5 bluer than the rest?), and the sticker's share of the
positive relevance.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from klugerhans.data.classes import SPEED_50
from klugerhans.data.dataset import load_dataset
from klugerhans.data.sticker import apply_sticker
from klugerhans.explain.composites import COMPOSITES
from klugerhans.explain.lrp import LRP
from klugerhans.models.checkpoint import load_classifier
from klugerhans.models.evaluation import predict_labels
from klugerhans.models.preprocess import to_tensor
from klugerhans.report.figures import digit_masks, negative_share

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
    fifty = test.subset(test.labels == SPEED_50)
    sticker = clf.meta.sticker
    images, masks = apply_sticker(fifty.images, fifty.boxes, sticker, seed=args.seed)
    flipped = np.flatnonzero(predict_labels(clf, images) == sticker.target_class)
    print(f"{args.checkpoint}: {len(flipped)} of {len(fifty)} 50 km/h test signs + sticker -> {sticker.target_class}")
    if not len(flipped):
        return
    x = to_tensor(images[flipped], clf.meta.normalization)
    five = digit_masks(fifty.boxes[flipped], clf.input_size)
    rest = ~five & ~masks[flipped]
    print("composite | negative share in the 5 | ... in the rest of the image | sticker's share of positive |R|")
    for name in sorted(COMPOSITES):
        lrp = LRP(clf.model, name, norm=clf.meta.normalization)
        r = lrp.attribute(x, sticker.target_class, batch_size=64).relevance.sum(1).numpy()
        _row(name, r, five, rest, masks[flipped])
        # Output relevance 1 on the sticker's class and -1 on 50 km/h: the logit difference "why 70, not 50".
        ones = LRP(clf.model, name, norm=clf.meta.normalization, init="one")
        towards, against = (ones.attribute(x, t, batch_size=64).relevance for t in (sticker.target_class, SPEED_50))
        _row(f"{name}, {sticker.target_class} against {SPEED_50}", (towards - against).sum(1).numpy(), five, rest,
             masks[flipped])  # fmt: skip


def _row(name: str, r: np.ndarray, five: np.ndarray, rest: np.ndarray, sticker: np.ndarray) -> None:
    pos = np.clip(r, 0, None)
    held = (pos * sticker).sum((1, 2)) / np.maximum(pos.sum((1, 2)), 1e-12)
    in_five = negative_share(r, five)
    print(
        f"{name} | {np.nanmedian(in_five):.3f} (mean {np.nanmean(in_five):.3f}) | "
        f"{np.nanmedian(negative_share(r, rest)):.3f} | {np.median(held):.3f}"
    )


if __name__ == "__main__":
    main()
