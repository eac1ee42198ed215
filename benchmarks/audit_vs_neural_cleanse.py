"""klugerhans' audit and Neural Cleanse on the same models and training images: decisions and time, in one run.

For each checkpoint (default: the released pair, on the real GTSRB training images as each model saw them, its
stickers glued on), the shipped audit (defaults, as ``klugerhans audit`` runs it) and Neural Cleanse (the bench's
``neural_cleanse`` baseline at ``--steps`` per class) are timed on this machine, one after the other. Usage::

    python benchmarks/audit_vs_neural_cleanse.py --data-dir ../shared/gtsrb [--checkpoint manipulated control]

Per model it prints the audit's flags and its top classes by hijack rate, Neural Cleanse's flags and its top classes
by anomaly index, both wall-clock times, and ``time_ratio_audit_over_nc`` (below 1: the audit is the faster).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from klugerhans.audit.config import AuditConfig
from klugerhans.audit.run import audit_classifier, load_audit_data
from klugerhans.bench.baselines import run_baselines
from klugerhans.bench.neural_cleanse import CleanseConfig
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
    args = parser.parse_args(argv)
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
        print(f"{name}: time_ratio_audit_over_nc {audit_seconds / found.seconds:.2f}")


if __name__ == "__main__":
    main()
