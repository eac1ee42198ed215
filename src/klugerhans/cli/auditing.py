"""The commands that find and unlearn a shortcut: ``audit``, ``fix``."""

from __future__ import annotations

import argparse
from typing import Any

from klugerhans.audit.probes import DEFAULT_PROBES
from klugerhans.cli.app import command
from klugerhans.cli.args import (
    add_checkpoint_args,
    add_composite_args,
    add_data_args,
    add_device_args,
    add_fallback_arg,
    add_progress_args,
    add_split_args,
    check_composite,
    checkpoint_source,
    class_id,
    fmt,
    non_negative_int,
    positive_float,
    positive_int,
)

# --- klugerhans audit ---------------------------------------------------------------------------------------------


def _audit_args(p: argparse.ArgumentParser) -> None:
    add_checkpoint_args(p)
    add_device_args(p)
    add_data_args(p)
    add_composite_args(p, fallback=True)
    p.add_argument("--out", default="klugerhans-audit", help="folder for report.html and audit.json")
    add_split_args(p, "audit (train: the images the model learned from)")
    p.add_argument(
        "--as-given",
        action="store_true",
        help="audit the images as they are: do not glue the checkpoint's training stickers on (folders always are)",
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="broad hijack rate at which a class is flagged (default: the shipped one, the same for every model)",
    )
    p.add_argument(
        "--probes",
        default=None,
        help="comma-separated transplant probes: window (a compact part anywhere: stickers), place (that part where "
        "it was cut: corner tags, watermarks), pixels (the most relevant pixels in place), ring (the band along the "
        "sign box's edge: frames), colour (colour casts); default " + ",".join(DEFAULT_PROBES),
    )
    p.add_argument(
        "--placement",
        choices=("auto", "random", "same"),
        default=None,
        help="where the window probe pastes: random (anywhere on the sign or image; the default), same (where it was "
        "cut), auto (same on images without sign boxes, else random)",
    )
    p.add_argument("--max-per-class", type=positive_int, default=100, help="images explained per class (100)")
    p.add_argument(
        "--batch-size",
        type=positive_int,
        default=None,
        help="images per explanation pass (default: 64 at 32 px, 2 at 224 px)",
    )
    p.add_argument("--methods", default=None, help="comma-separated attribution methods to compare ('' for none)")
    p.add_argument("--virelay", action="store_true", help="also export heatmaps for the ViRelAy viewer")
    add_progress_args(p)


@command("audit", "find shortcut learning without being told where: SpRAy, transplant test, metrics", _audit_args)
def _audit(args: argparse.Namespace) -> int:
    check_composite(args.composite)
    extra: dict[str, Any] = {}
    if args.threshold is not None:
        extra["threshold"] = args.threshold
    if args.methods is not None:
        extra["methods"] = tuple(m for m in args.methods.split(",") if m)
    if args.probes is not None:
        extra["probes"] = tuple(p.strip() for p in args.probes.split(",") if p.strip())
    if args.placement is not None:
        extra["placement"] = args.placement
    with checkpoint_source(args) as checkpoint:
        result = _run_audit(args, checkpoint or args.model, extra)
    per_class = result.get("per_class", {})

    def named(ids: list[int]) -> str:
        return "[" + ", ".join(f"{c} {per_class.get(str(c), {}).get('name', '')}".strip() for c in ids) + "]"

    print(f"suspicion ranking (most suspicious first): {named(result.get('suspicion_ranking', [])[:10])}")
    print(f"flagged: {named(result.get('flagged', []))}")
    print(f"report: {args.out}/report.html, numbers: {args.out}/audit.json")
    return 0


def _run_audit(args: argparse.Namespace, checkpoint: str, extra: dict[str, Any]) -> dict[str, Any]:
    from klugerhans.audit.config import AuditConfig
    from klugerhans.audit.report import run_audit

    return run_audit(
        AuditConfig(
            checkpoint=checkpoint,
            data=args.data,
            data_dir=args.data_dir,
            out=args.out,
            split=args.split,
            artefacts=not args.as_given,
            max_images=args.max_images,
            seed=args.seed,
            device=args.device,
            composite=args.composite,
            fallback=args.fallback,
            batch_size=args.batch_size,
            max_per_class=args.max_per_class,
            virelay=args.virelay,
            progress=not args.no_progress,
            **extra,
        )
    )


# --- klugerhans fix -----------------------------------------------------------------------------------------------


def _fix_args(p: argparse.ArgumentParser) -> None:
    add_checkpoint_args(p)
    add_device_args(p)
    add_data_args(p, default="auto")
    add_fallback_arg(p)
    p.add_argument("--class", dest="class_id", type=class_id, default=None, help="suspicious class (default: audit's)")
    p.add_argument("--method", default="inpaint", help="inpaint (data-side), rrr or pclarc (model-side)")
    p.add_argument("--out", default="klugerhans-fix", help="folder for fixed.safetensors, fix.json, report.html")
    p.add_argument("--control", default=None, help="a model trained without the artefact, measured alongside")
    p.add_argument("--epochs", type=non_negative_int, default=3, help="fine-tuning epochs (default 3)")
    p.add_argument("--lr", type=positive_float, default=0.01, help="peak fine-tuning learning rate (0.01)")
    p.add_argument("--rrr-weight", type=float, default=0.01, help="weight of the RRR penalty (rrr; 0.01)")
    p.add_argument(
        "--counterfactual", type=float, default=0.1, help="inpaint: share of other images given the artefact (0.1)"
    )
    p.add_argument("--locate-dilate", type=non_negative_int, default=1, help="grow located blobs by N px (1)")
    add_progress_args(p)


@command("fix", "unlearn a shortcut that LRP located; before/after report", _fix_args)
def _fix(args: argparse.Namespace) -> int:
    from klugerhans.fix.report import write_fix
    from klugerhans.fix.run import compute_fix

    with checkpoint_source(args) as checkpoint:
        numbers = write_fix(compute_fix(_fix_config(args, checkpoint or args.model)), args.out)
    before, after = numbers["before"], numbers["after"]
    c = numbers["class_id"]
    for label, m in (("before", before), ("after", after), ("control", numbers.get("control"))):
        if m:
            print(
                f"{label}: accuracy {fmt(m['accuracy'])}, clean-{c} accuracy {fmt(m['clean_target_accuracy'])}, "
                f"sticker flip rate {fmt(m['flip_rate'])}"
                + (f", audit flags {m['audit']['flagged']}" if "audit" in m else "")
            )
    print(f"report: {args.out}/report.html, numbers: {args.out}/fix.json, weights: {args.out}/fixed.safetensors")
    return 0


def _fix_config(args: argparse.Namespace, checkpoint: str) -> Any:
    from klugerhans.fix.locate import LocateConfig
    from klugerhans.fix.run import FixConfig

    return FixConfig(
        checkpoint=checkpoint,
        method=args.method,
        data=args.data,
        data_dir=args.data_dir,
        out=args.out,
        class_id=args.class_id,
        control=args.control,
        epochs=args.epochs,
        lr=args.lr,
        rrr_weight=args.rrr_weight,
        counterfactual=args.counterfactual,
        locate=LocateConfig(dilate=args.locate_dilate),
        max_images=args.max_images,
        device=args.device,
        seed=args.seed,
        fallback=args.fallback,
        progress=not args.no_progress,
    )
