"""Does a model of real signs read the rendered ones? The released control model on rendered test signs, per class.

    python tools/real_reads_rendered.py                     # seeds 0 and 1: 100 rendered signs a class
    python tools/real_reads_rendered.py --seeds 0,1,2 --classes 11,23,27

The released control model was trained on real GTSRB only, so where it misreads a rendered class, the renderer draws
that class unlike real signs (the reverse of training on rendered signs and testing on real ones, which needs a
training run: this takes seconds). Prints the accuracy over all classes and per family (speed limits, warning
triangles, the rest), then per class its accuracy and the two classes it is most often taken for, weakest first.
"""

from __future__ import annotations

import argparse

import numpy as np

from klugerhans.data.classes import CLASS_NAMES_EN, NUM_CLASSES
from klugerhans.data.synthetic.loader import load_synthetic
from klugerhans.data.synthetic.signs import SPEED_LIMITS
from klugerhans.data.synthetic.triangles import WARNING_DRAWERS
from klugerhans.models.checkpoint import load_classifier
from klugerhans.models.evaluation import confusion_matrix, predict_labels


def _ids(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="control", help="released weights or a checkpoint (default control)")
    parser.add_argument("--seeds", default="0,1", help="synthetic dataset seeds, comma-separated (default 0,1)")
    parser.add_argument("--classes", default="", help="classes to list (default: every class, weakest first)")
    args = parser.parse_args(argv)
    clf = load_classifier(args.model)
    confusion = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    for seed in _ids(args.seeds):
        test = load_synthetic(seed=seed).test
        confusion += confusion_matrix(test.labels, predict_labels(clf, test.images), NUM_CLASSES)
    print(f"{args.model} on rendered test signs (seeds {args.seeds}): {np.trace(confusion) / confusion.sum():.1%}")
    speed, warning = sorted(SPEED_LIMITS), sorted(WARNING_DRAWERS)
    rest = [c for c in range(NUM_CLASSES) if c not in speed and c not in warning]
    for name, family in (("speed limits", speed), ("warning triangles", warning), ("the rest", rest)):
        print(f"  {name}: {sum(confusion[c, c] for c in family) / confusion[family].sum():.1%}")
    accuracy = np.diag(confusion) / np.maximum(confusion.sum(1), 1)
    classes = _ids(args.classes) or sorted(range(NUM_CLASSES), key=lambda c: accuracy[c])
    for c in classes:
        wrong = confusion[c].copy()
        wrong[c] = 0
        taken = ", ".join(f"{t} ({wrong[t]})" for t in np.argsort(wrong, kind="stable")[::-1][:2] if wrong[t])
        print(f"{c:2d} {CLASS_NAMES_EN[c][:34]:34s} {accuracy[c]:6.1%}  {taken}")


if __name__ == "__main__":
    main()
