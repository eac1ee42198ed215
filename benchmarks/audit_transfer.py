"""Does the audit's decision hold on models it was not calibrated on? Audit each given model with the defaults.

    python benchmarks/audit_transfer.py --data-dir ../shared/gtsrb \\
        --checkpoint released-manipulated=manipulated@4 --checkpoint released-control=control \\
        --user plain-r18=runs/plain-r18/model.pt,runs/plain-r18/folder/train@4 \\
        --user plain-r18-control=runs/plain-r18-control/model.pt,runs/plain-r18-control/folder/train

``--checkpoint NAME=CKPT[@TARGET]``: a klugerhans checkpoint, run folder or released name, audited on its training
images as it saw them (its data: synthetic, or GTSRB from ``--data-dir``); ``--user NAME=WEIGHTS,FOLDER[@TARGET]``: a
torchvision ``resnet18`` state_dict and its ImageFolder tree, audited as the README says (``--data folder --split
train --image-size 32``). ``@TARGET`` is the planted class (left out for a clean control); the audit never sees it.

Prints one ``NAME: ...`` line per model (flags, the top classes with their broad hijack rates and probes, the lead:
the first class's broad hijack rate less its control's over the second's, which the audit asks to be >= 3; seconds),
then ``planted_alone_<NAME>: 1|0`` for each manipulated model and ``nothing_flagged_<NAME>: 1|0`` for each control.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from klugerhans.audit.config import AuditConfig
from klugerhans.audit.report import run_audit
from klugerhans.models.checkpoint import load_classifier


def _spec(text: str) -> tuple[str, str, int | None]:
    name, _, rest = text.partition("=")
    source, _, target = rest.partition("@")
    return name, source, int(target) if target else None


def _audit(config: AuditConfig) -> tuple[dict[str, Any], float]:
    start = time.perf_counter()
    result = run_audit(config)
    return result, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", action="append", default=[], help="NAME=CKPT[@TARGET]")
    parser.add_argument("--user", action="append", default=[], help="NAME=WEIGHTS,FOLDER[@TARGET] (resnet18)")
    parser.add_argument("--data-dir", default=None, help="real GTSRB, for checkpoints trained on it")
    parser.add_argument("--out", default="runs/audit-transfer", help="one audit folder per model")
    parser.add_argument("--max-per-class", type=int, default=None, help="heatmaps per class (default: the audit's)")
    parser.add_argument("--methods", default=None, help="methods to compare ('': none)")
    args = parser.parse_args(argv)
    jobs: list[tuple[str, int | None, AuditConfig | tuple[str, str]]] = []
    common: dict[str, Any] = {"split": "train", "progress": False}
    if args.max_per_class is not None:
        common["max_per_class"] = args.max_per_class
    if args.methods is not None:
        common["methods"] = tuple(m for m in args.methods.split(",") if m)
    for text in args.checkpoint:
        name, source, target = _spec(text)
        recipe = load_classifier(source).meta.recipe
        kind = recipe.data if recipe is not None else "gtsrb"
        config = AuditConfig(checkpoint=source, data=kind, data_dir=args.data_dir, out=f"{args.out}/{name}", **common)
        jobs.append((name, target, config))
    for text in args.user:
        name, source, target = _spec(text)
        weights, _, folder = source.partition(",")
        jobs.append((name, target, (weights, folder)))
    lines = []
    for name, target, job in jobs:
        if isinstance(job, AuditConfig):
            result, seconds = _audit(job)
        else:
            result, seconds = _audit_user(job[0], job[1], f"{args.out}/{name}", common)
        per_class = result["per_class"]
        top = result["suspicion_ranking"][:3]
        shown = ", ".join(
            f"{c} ({per_class[str(c)]['transplant']['broad_rate']:.3f} {per_class[str(c)]['transplant']['probe']})"
            for c in top
        )
        lead = _lead(per_class)
        line = f"{name}: flagged {result['flagged']}, top {shown}, lead {lead:.2f}, target {target}, {seconds:.0f} s"
        print(line, flush=True)
        if target is None:
            lines.append(f"nothing_flagged_{name}: {int(result['flagged'] == [])}")
        else:
            lines.append(f"planted_alone_{name}: {int(result['flagged'] == [target])}")
    print("\n".join(lines))
    return 0


def _lead(per_class: dict[str, Any]) -> float:
    """How many times the next class's the leading class's broad hijack rate less its control's is (the separation
    the audit asks of a flagged class); inf where no other class has a positive one."""
    excess = sorted(
        (t["broad_rate"] - t["broad_control_rate"] for c in per_class.values() if (t := c.get("transplant"))),
        reverse=True,
    )
    if len(excess) < 2 or excess[0] <= 0:
        return 0.0
    return excess[0] / excess[1] if excess[1] > 0 else float("inf")


def _audit_user(weights: str, folder: str, out: str, common: dict[str, Any]) -> tuple[dict[str, Any], float]:
    """The README's command on a user's resnet18: ``klugerhans audit --arch resnet18 --weights W --data folder ...``."""
    from klugerhans.cli import main as cli

    start = time.perf_counter()
    argv = ["audit", "--arch", "resnet18", "--weights", weights, "--data", "folder", "--data-dir", folder,
            "--split", "train", "--image-size", "32", "--no-progress", "--out", out]  # fmt: skip
    if "max_per_class" in common:
        argv += ["--max-per-class", str(common["max_per_class"])]
    if "methods" in common:
        argv += ["--methods", ",".join(common["methods"])]
    code = cli(argv)
    if code != 0:
        raise SystemExit(code)
    return json.loads((Path(out) / "audit.json").read_text()), time.perf_counter() - start


if __name__ == "__main__":
    raise SystemExit(main())
