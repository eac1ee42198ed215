"""Measure where LRP puts a sticker's relevance (the table of docs/LOCALISATION.md).

    python tools/measure_localisation.py --data-dir ../shared/gtsrb [--checkpoint manipulated] [--n 64]

Glues the model's sticker onto correctly classified test signs of other classes, keeps up to ``--n`` that flip
to the sticker's class, explains that class with each LRP composite and prints the relevance mass accuracy on
the exact and grown masks, the share of positive relevance below a tenth of the map's maximum, and the
pointing game; then, for ``epsilon_plus_flat``, how its positive relevance splits between the sticker's inside, its
outermost row of pixels, the row just outside it and the rest of the image; and its mass when it explains the
logit difference to the sign's true class instead of class 4 alone.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from klugerhans.audit.localisation import dilate_masks, pointing_game, relevance_mass_accuracy
from klugerhans.data.dataset import load_dataset
from klugerhans.data.sticker import apply_sticker
from klugerhans.explain.lrp import LRP
from klugerhans.models.checkpoint import load_classifier
from klugerhans.models.evaluation import predict_labels
from klugerhans.models.preprocess import to_tensor

ROOT = Path(__file__).resolve().parents[1]
COMPOSITES = ("epsilon_plus_flat", "epsilon_plus", "epsilon_gamma_box", "epsilon_alpha2_beta1_flat")


def _bands(masks: np.ndarray) -> dict[str, np.ndarray]:
    """(N, S, S) masks -> the sticker's inside (eroded 1 px), its outermost row, the row outside it, the rest."""
    inside = ~dilate_masks(~masks, 1)
    grown = dilate_masks(masks, 1)
    return {"inside": inside, "edge": masks & ~inside, "outside row": grown & ~masks, "rest": ~grown}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "gtsrb"), help="real GTSRB folder")
    parser.add_argument("--checkpoint", default="manipulated", help="model file, run directory or released name")
    parser.add_argument("--n", type=int, default=64, help="flipped signs to explain")
    args = parser.parse_args(argv)
    clf = load_classifier(args.checkpoint)
    test = load_dataset("gtsrb", data_dir=args.data_dir, size=clf.input_size).test
    sticker = clf.meta.sticker
    correct = predict_labels(clf, test.images) == test.labels
    pool = np.random.default_rng(0).permutation(np.flatnonzero(correct & (test.labels != sticker.target_class)))
    images, masks = apply_sticker(test.images[pool[:400]], test.boxes[pool[:400]], sticker, seed=0)
    keep = np.flatnonzero(predict_labels(clf, images) == sticker.target_class)[: args.n]
    x, m = to_tensor(images[keep], clf.meta.normalization), masks[keep]
    true = test.labels[pool[:400]][keep]
    print(f"{len(keep)} flipped signs, sticker covers {m.mean():.1%} of the image")
    print("composite | exact | +1 px | +2 px | +3 px | haze share | pointing game")
    positive = {}
    for name in COMPOSITES:
        lrp = LRP(clf.model, name, norm=clf.meta.normalization)
        r = lrp.attribute(x, sticker.target_class, batch_size=64).relevance.sum(1).numpy()
        pos = np.clip(r, 0, None)
        peak = pos.reshape(len(r), -1).max(1)[:, None, None]
        haze = ((pos * (pos < 0.1 * peak)).sum((1, 2)) / pos.sum((1, 2))).mean()
        mass = [relevance_mass_accuracy(r, m, t).mean() for t in range(4)]
        print(" | ".join([name, *(f"{v:.3f}" for v in mass), f"{haze:.3f}", f"{pointing_game(r, m).mean():.2f}"]))
        positive[name] = pos
    flat = positive["epsilon_plus_flat"]
    total = flat.sum((1, 2))
    print("epsilon_plus_flat, positive relevance by band: band | pixels | share | density vs a uniform map")
    for band, a in _bands(m).items():
        share = (flat * a).sum((1, 2)) / total
        density = share * a[0].size / np.maximum(a.sum((1, 2)), 1)
        print(f"{band} | {a.sum((1, 2)).mean():.1f} | {share.mean():.3f} | {density.mean():.2f}")
    # Output relevance 1 on class 4 and -1 on the true class: LRP explains the logit difference f_4 - f_true.
    lrp = LRP(clf.model, "epsilon_plus_flat", init="one")
    towards, against = (lrp.attribute(x, t, batch_size=64).relevance for t in (sticker.target_class, true))
    contrast = (towards - against).sum(1).numpy()
    mass = relevance_mass_accuracy(contrast, m, 0).mean()
    print(f"epsilon_plus_flat, class 4 against the true class: mass {mass:.3f}")


if __name__ == "__main__":
    main()
