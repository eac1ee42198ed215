"""Does an artefact take in a suite's recipe? Train one model per artefact setting and print its attack success.

    python tools/attack_success.py --out runs/takes-probe black_square:0.3:1.0:dirty colour_patch:0.25:0.5:dirty \\
        corner_tag:0.3:1.0:dirty black_square:0.3:1.0:clean black_square:0.25:0.5:dirty:resnet18

Each ``KIND:SIZE:FRACTION:LABEL[:ARCH]`` trains the ``takes`` suite's recipe (``--suite``) with that artefact on class
``--target`` and prints ``NAME: attack_success A, accuracy B, clean target accuracy C, S s``: the attack success is the
share of the other classes' test images that the artefact turns into the target (the suite's ``min_attack_success``
is judged on it). Finished models in ``--out`` are reused.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

from klugerhans.bench.grid import SUITES, _sticker, _with_arch
from klugerhans.models.checkpoint import load_classifier
from klugerhans.models.evaluation import evaluate_model
from klugerhans.models.recipe import TrainOptions
from klugerhans.models.training import train
from klugerhans.models.trainset import prepare_data

COLOUR = (255, 0, 255)
"""The colour of coloured artefacts (the suite draws one per model)."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("settings", nargs="+", help="KIND:SIZE:FRACTION:LABEL[:ARCH]")
    parser.add_argument("--out", required=True, help="folder of the trained runs")
    parser.add_argument("--suite", default="takes", help="whose recipe (default takes)")
    parser.add_argument("--target", type=int, default=17, help="the planted class")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    suite = SUITES.get_or_raise(args.suite)
    for setting in args.settings:
        kind, size, fraction, label, *arch = setting.split(":")
        sticker = _sticker(kind, float(size), "random", float(fraction), label, args.target, COLOUR)
        recipe = replace(suite.recipe, sticker=sticker, seed=args.seed)
        recipe = _with_arch(recipe, arch[0] if arch else suite.archs[0])
        run = Path(args.out) / setting.replace(":", "-")
        start = time.perf_counter()
        if not (run / "best.safetensors").exists():
            train(recipe, TrainOptions(out=str(run), progress=False), resume=(run / "train_state.pt").exists())
        clf = load_classifier(run / "best.safetensors")
        prepared = prepare_data(recipe)
        e = evaluate_model(clf, prepared.test, recipe.sticker, seed=recipe.seed)
        print(f"{setting}: attack_success {e.flip_rate:.3f}, accuracy {e.accuracy:.3f}, clean target accuracy "
              f"{e.clean_target_accuracy:.2f}, {time.perf_counter() - start:.0f} s", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
