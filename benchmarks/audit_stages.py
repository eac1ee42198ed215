"""Time per stage of ``klugerhans audit`` for a 12,630-image test set (GTSRB's size) at full width on this CPU.

What is measured and what is extrapolated (every line of the output says which):

* ``load``, ``predict``, ``lrp`` grow linearly with the number of images: they run on ``--subset`` images and are
  scaled to ``--target`` images (``lrp``: to the images discovery explains, at most ``max_per_class`` per class,
  assuming every image is correctly classified: an upper bound).
* ``spray`` and ``tsne`` run for real at the target's class sizes (class shares from the loaded labels, capped at
  ``max_per_class``), on the subset's heatmaps repeated with a little noise up to each class size.
* ``transplant`` does not depend on the dataset size (``recipients`` per class): it runs for ``--classes`` classes
  and is scaled to 43.
* ``methods`` (every attribution method on the localisation and faithfulness images, plus pixel flipping) and
  ``sanity`` (parameter randomisation) have a fixed cost: they run for real with the audit's defaults.

The model is a freshly initialised VGG11-BN at ``--width`` (timing does not depend on the weights) unless
``--checkpoint`` is given; data is the real GTSRB training split when ``--data-dir`` holds it, else synthetic signs.
Wall-clock and process CPU seconds are both printed: on a shared machine, CPU seconds / threads estimates an idle
machine. Usage::

    python benchmarks/audit_stages.py [--subset 512] [--target 12630] [--width 1.0] [--data-dir ../shared/gtsrb]

The last line is ``audit_minutes_12630: X.X`` (extrapolated wall-clock minutes; the goal is <= 15).
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from klugerhans.audit.collect import collect_heatmaps
from klugerhans.audit.config import AuditConfig
from klugerhans.audit.faithfulness import region_perturbation, uniform_fill
from klugerhans.audit.methods import MethodOptions, attribute, make_attributor
from klugerhans.audit.sanity import sanity_check
from klugerhans.audit.spray import SprayConfig, spray_class, tsne_view
from klugerhans.audit.transplant import TransplantConfig, patch_side, transplant_class
from klugerhans.data.dataset import load_dataset
from klugerhans.explain.lrp import LRP
from klugerhans.models.checkpoint import CheckpointMeta, classifier_from_model, load_classifier
from klugerhans.models.evaluation import predict_labels
from klugerhans.models.preprocess import to_tensor
from klugerhans.models.vgg import ModelConfig, create_model

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "gtsrb"


def _timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subset", type=int, default=512, help="images actually loaded, predicted and explained")
    parser.add_argument("--target", type=int, default=12630, help="dataset size to extrapolate to")
    parser.add_argument("--width", type=float, default=1.0, help="VGG width multiplier when no checkpoint is given")
    parser.add_argument("--checkpoint", default=None, help="time this model instead of a fresh one")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA, help="GTSRB folder (else synthetic data)")
    parser.add_argument("--classes", type=int, default=4, help="classes the transplant test runs for")
    args = parser.parse_args()
    defaults = AuditConfig(checkpoint="benchmark")
    threads = torch.get_num_threads()
    print(f"torch threads {threads}, load average {os.getloadavg()[0]:.1f}, subset {args.subset}, target {args.target}")

    if args.checkpoint:
        clf = load_classifier(args.checkpoint, "cpu")
    else:
        torch.manual_seed(0)
        cfg = ModelConfig(width=args.width)
        clf = classifier_from_model(create_model(cfg), CheckpointMeta(model=cfg))
    real = args.data_dir.is_dir() and any(args.data_dir.glob("*.zip"))
    name = "gtsrb" if real else "synthetic"
    # the whole split is loaded (GTSRB from its decode cache) for its class shares; stages then use a random subset
    ds, load_wall, load_cpu = _timed(lambda: load_dataset(name, data_dir=str(args.data_dir) if real else None))
    full = ds.train
    load_scale = args.target / len(full)
    rows: list[tuple[str, float, float, str]] = []

    def add(stage: str, wall: float, cpu: float, how: str) -> None:
        rows.append((stage, wall, cpu, how))
        print(f"{stage:<11}{wall:9.1f}{cpu:9.1f}  {how}", flush=True)

    print(f"{'stage':<11}{'wall s':>9}{'cpu s':>9}  how")
    add("load", load_wall * load_scale, load_cpu * load_scale, f"{name} {len(full)} images, x{load_scale:.2f}")
    pick = np.sort(np.random.default_rng(0).choice(len(full), size=min(args.subset, len(full)), replace=False))
    data = full.subset(pick)
    n = len(data)
    scale = args.target / n
    norm = clf.meta.normalization

    _, wall, cpu = _timed(lambda: predict_labels(clf, data.images))
    add("predict", wall * scale, cpu * scale, f"{n} images, x{scale:.1f}")

    # class sizes at the target scale (shares of the whole split) and, capped, the images discovery explains
    classes, counts = np.unique(full.labels, return_counts=True)
    keep = np.isin(classes, data.labels)
    classes, counts = classes[keep], counts[keep]
    sizes = np.maximum(12, np.round(counts / counts.sum() * args.target)).astype(int)
    cap = defaults.max_per_class
    explained = np.minimum(sizes, cap) if cap is not None else sizes
    lrp_scale = float(explained.sum()) / n

    side = patch_side(data.size, defaults.patch)
    lrp = LRP(clf.model, defaults.composite, norm=norm)
    index = np.arange(n)
    heat, wall, cpu = _timed(
        lambda: collect_heatmaps(lrp, data.images, data.labels, index, defaults.spray_grid, side, norm, 64)
    )
    add(
        "lrp", wall * lrp_scale, cpu * lrp_scale, f"{n} images, scaled to {explained.sum()} explained, x{lrp_scale:.1f}"
    )

    rng = np.random.default_rng(0)

    def class_maps(c: int, size: int) -> np.ndarray:
        own = heat.maps[heat.labels == c]
        pick = own[rng.integers(0, len(own), size)]
        return pick + rng.normal(0, 0.01 * (np.abs(pick).mean() + 1e-6), pick.shape).astype(np.float32)

    _, wall, cpu = _timed(
        lambda: [spray_class(class_maps(c, s), int(c), SprayConfig()) for c, s in zip(classes, explained, strict=True)]
    )
    add("spray", wall, cpu, f"{len(classes)} classes of {explained.min()}..{explained.max()} heatmaps, measured")

    largest = classes[np.argsort(-explained)[: defaults.tsne_classes]]
    size_of = dict(zip(classes.tolist(), explained.tolist(), strict=True))
    _, wall, cpu = _timed(lambda: [tsne_view(class_maps(c, size_of[int(c)])) for c in largest])
    add("tsne", wall, cpu, f"{len(largest)} largest classes, measured")

    tcfg = TransplantConfig(patch=defaults.patch, recipients=defaults.recipients)
    in_subset, subset_counts = np.unique(data.labels, return_counts=True)
    tested = in_subset[np.argsort(-subset_counts, kind="stable")[: args.classes]]  # enough donors each

    def transplant() -> None:
        for c in tested:
            donors = np.flatnonzero(data.labels == c)
            recipients = np.flatnonzero(data.labels != c)
            pos = np.flatnonzero(heat.labels == c)
            transplant_class(
                lambda im: predict_labels(clf, im),
                int(c),
                data.images,
                data.boxes,
                donors,
                heat.corners[pos],
                heat.share[pos],
                recipients,
                tcfg,
            )

    _, wall, cpu = _timed(transplant)
    factor = 43 / len(tested)
    add("transplant", wall * factor, cpu * factor, f"{len(tested)} classes x{factor:.1f}")

    options = MethodOptions(norm=norm)
    k = min(n, defaults.n_localisation + defaults.n_faithfulness)
    x = to_tensor(data.images[:k], norm)
    t = torch.as_tensor(data.labels[:k])
    faith = slice(defaults.n_localisation, k)
    fill = uniform_fill(tuple(x[faith].shape), norm)
    steps = min(defaults.flip_steps, (data.size // defaults.flip_region) ** 2)

    def methods() -> None:
        for m in defaults.methods:
            maps = attribute(make_attributor(m, clf.model, options), x, t, defaults.batch_size)
            region_perturbation(clf.logits, x[faith], maps[faith], t[faith], fill, defaults.flip_region, steps)

    _, wall, cpu = _timed(methods)
    add("methods", wall, cpu, f"{len(defaults.methods)} methods on {k} images + pixel flipping, measured")

    s = min(k, defaults.n_sanity)
    _, wall, cpu = _timed(lambda: sanity_check(clf.model, defaults.methods, x[:s], t[:s], options))
    add("sanity", wall, cpu, f"{len(defaults.methods)} methods on {s} images, all layers, measured")

    total_wall = sum(r[1] for r in rows)
    total_cpu = sum(r[2] for r in rows)
    print(
        f"{'total':<11}{total_wall:9.1f}{total_cpu:9.1f}  (cpu s / {threads} threads = {total_cpu / threads / 60:.1f} "
        "min on an idle machine)"
    )
    print(f"audit_minutes_{args.target}: {total_wall / 60:.1f}")


if __name__ == "__main__":
    main()
