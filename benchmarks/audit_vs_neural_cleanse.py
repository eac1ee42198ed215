"""klugerhans' audit and Neural Cleanse on the same models and training images: decisions and time, in one run.

For each checkpoint (default: the released pair, on the real GTSRB training images as each model saw them, its
stickers glued on), the shipped audit (defaults, as ``klugerhans audit`` runs it) and Neural Cleanse (the bench's
``neural_cleanse`` baseline at ``--steps`` per class) are timed on this machine, one after the other. Usage::

    python benchmarks/audit_vs_neural_cleanse.py --data-dir ../shared/gtsrb [--checkpoint manipulated control]

Per model it prints the audit's flags and its top classes by hijack rate, Neural Cleanse's flags and its top classes
by anomaly index, both wall-clock times, and ``time_ratio_audit_over_nc_<model>: X`` (below 1: the audit is faster).

``--norms-only 4,1,2`` skips the audit and the anomaly index and prints the smallest mask norm Neural Cleanse finds
for just those classes (a look at what a larger ``--steps`` budget finds, at a fraction of the cost of all 43).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from klugerhans.audit.config import AuditConfig
from klugerhans.audit.run import audit_classifier, load_audit_data
from klugerhans.bench.baselines import run_baselines
from klugerhans.bench.neural_cleanse import CleanseConfig, reverse_trigger
from klugerhans.models.checkpoint import load_classifier

ROOT = Path(__file__).resolve().parents[1]


def _top(scores: dict[int, float], n: int = 3) -> str:
    ranked = sorted((c for c in scores if scores[c] == scores[c]), key=lambda c: -scores[c])[:n]
    return ", ".join(f"{c} ({scores[c]:.3g})" for c in ranked)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", nargs="+", default=["manipulated", "control"], help="models to compare")
    parser.add_argument("--data", default="gtsrb", help="dataset the models were trained on")
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "gtsrb"), help="GTSRB folder")
    parser.add_argument("--steps", type=int, default=CleanseConfig.steps, help="Neural Cleanse steps per class")
    parser.add_argument("--max-per-class", type=int, default=200, help="training images per class for Neural Cleanse")
    parser.add_argument("--norms-only", default=None, help="comma-separated classes: their mask norms only")
    args = parser.parse_args(argv)
    if args.norms_only:
        _norms(args, [int(c) for c in args.norms_only.split(",")])
        return
    for name in args.checkpoint:
        clf = load_classifier(name)
        config = AuditConfig(checkpoint=name, data=args.data, data_dir=args.data_dir, methods=(), n_sanity=0,
                             tsne_classes=0, progress=False)  # fmt: skip
        data, masks, info = load_audit_data(config, clf)
        start = time.perf_counter()
        ranking = audit_classifier(clf, data, config, masks, info).ranking
        audit_seconds = time.perf_counter() - start
        found = run_baselines(
            clf.model, data.images, data.labels, clf.meta.normalization, names=["neural_cleanse"],
            max_per_class=args.max_per_class, settings={"neural_cleanse": {"steps": args.steps}},
        )["neural_cleanse"]  # fmt: skip
        print(f"{name}: audit flags {list(ranking.flagged)}, top {_top(ranking.scores)}, {audit_seconds:.0f} s")
        print(f"{name}: neural_cleanse flags {list(found.flagged)}, top {_top(found.scores)}, {found.seconds:.0f} s")
        print(f"time_ratio_audit_over_nc_{name}: {audit_seconds / found.seconds:.2f}", flush=True)


def _norms(args: argparse.Namespace, classes: list[int]) -> None:
    for name in args.checkpoint:
        clf = load_classifier(name)
        config = AuditConfig(checkpoint=name, data=args.data, data_dir=args.data_dir)
        data, _, _ = load_audit_data(config, clf)
        pick = np.concatenate([np.flatnonzero(data.labels == c)[: args.max_per_class] for c in np.unique(data.labels)])
        x = torch.from_numpy(data.images[pick].transpose(0, 3, 1, 2).astype(np.float32) / 255.0)
        y = data.labels[pick]
        for c in classes:
            start = time.perf_counter()
            found = reverse_trigger(clf.model.eval(), x[torch.from_numpy(y != c)], c, clf.meta.normalization,
                                    CleanseConfig(steps=args.steps), torch.Generator().manual_seed(0))  # fmt: skip
            print(f"{name}: class {c}: mask norm {found.norm:.1f} px (attack success {found.success:.2f}), "
                  f"{time.perf_counter() - start:.0f} s", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
