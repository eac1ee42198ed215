"""How much faster Neural Cleanse's classes run side by side than one after another (same steps, same images).

    python benchmarks/neural_cleanse_speed.py [--steps 30] [--classes 43] [--group N]

Times :func:`~klugerhans.bench.neural_cleanse.reverse_trigger` class by class against
:func:`~klugerhans.bench.neural_cleanse.reverse_triggers` (``--group`` classes a pass) on a torchvision ResNet-18
and our VGG11-BN at width 0.25 (the `takes` suite's two) and the released VGG11-BN (width 0.75) at 32 px, on random
images (what is searched does not change the arithmetic), and prints ``speedup_<model>: <one by one seconds / side
by side seconds>`` from one run on this machine.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torchvision

from klugerhans.bench.neural_cleanse import CleanseConfig, reverse_trigger, reverse_triggers
from klugerhans.models.checkpoint import load_classifier
from klugerhans.models.preprocess import Normalization
from klugerhans.models.vgg import create_model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="optimisation steps per class")
    parser.add_argument("--classes", type=int, default=43, help="classes searched")
    parser.add_argument("--group", type=int, default=CleanseConfig.group, help="classes per pass side by side")
    args = parser.parse_args(argv)
    config = CleanseConfig(steps=args.steps, group=args.group)
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(args.classes), 20)
    x = torch.from_numpy(rng.random((len(labels), 3, 32, 32), dtype=np.float32))
    imagenet = Normalization(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    released = load_classifier("manipulated")
    models = {
        "resnet18": (torchvision.models.resnet18(num_classes=args.classes).eval(), imagenet),
        "vgg_w025": (create_model(width=0.25, num_classes=args.classes).eval(), released.meta.normalization),
        "released_vgg": (released.model.eval(), released.meta.normalization),
    }
    for name, (model, norm) in models.items():
        for p in model.parameters():
            p.requires_grad_(False)
        targets = list(range(min(args.classes, model(x[:1]).shape[1])))
        start = time.perf_counter()
        for c in targets:
            reverse_trigger(model, x[torch.from_numpy(labels != c)], c, norm, config, torch.Generator().manual_seed(0))
        alone = time.perf_counter() - start
        start = time.perf_counter()
        reverse_triggers(model, x, labels, targets, norm, config, torch.Generator().manual_seed(0))
        together = time.perf_counter() - start
        print(f"{name}: {len(targets)} classes x {args.steps} steps: one by one {alone:.1f} s, side by side "
              f"{together:.1f} s ({config.group} a pass)")  # fmt: skip
        print(f"speedup_{name}: {alone / together:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
