"""The commands that find and unlearn a shortcut: ``audit``, ``fix``."""

from __future__ import annotations

import argparse
from typing import Any

from klugerhans.audit.config import AuditConfig
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
from klugerhans.cli.fields import ConfigFlags, Flag
from klugerhans.fix.locate import LocateConfig
from klugerhans.fix.run import FixConfig

# --- klugerhans audit ---------------------------------------------------------------------------------------------


def _names(text: str) -> tuple[str, ...]:
    """Comma-separated names ('' for none)."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


_AUDIT = ConfigFlags(
    AuditConfig,
    ("out", "artefacts", "threshold", "probes", "placement", "max_per_class", "batch_size", "methods", "virelay"),
    {
        "artefacts": Flag(
            "--as-given",
            help="audit the images as they are: do not glue the checkpoint's training stickers on (folders always are)",
        ),
        "probes": Flag(
            type=_names,
            help="comma-separated transplant probes: window (a compact part anywhere: stickers), place (that part "
            "where it was cut: corner tags, watermarks), pixels (the most relevant pixels in place), ring (the band "
            "along the sign box's edge: frames), colour (colour casts)",
        ),
        "threshold": Flag(
            help="broad hijack rate at which a class is flagged (default: the shipped one, the same for every model)"
        ),
        "max_per_class": Flag(type=positive_int, help="images explained per class"),
        "batch_size": Flag(type=positive_int, help="images per explanation pass (default: 64 at 32 px, 2 at 224 px)"),
        "methods": Flag(
            type=_names, help="comma-separated attribution methods to compare ('' for none)", shown=", ".join
        ),
    },
)


def _audit_args(p: argparse.ArgumentParser) -> None:
    add_checkpoint_args(p)
    add_device_args(p, AuditConfig.device)
    add_data_args(p, AuditConfig)
    add_composite_args(p, fallback=True, default=AuditConfig.composite)
    _AUDIT.add(p, "out")
    add_split_args(p, "audit (train: the images the model learned from)", AuditConfig.split)
    _AUDIT.add(p, *_AUDIT.fields[1:])
    add_progress_args(p)


@command("audit", "find shortcut learning without being told where: SpRAy, transplant test, metrics", _audit_args)
def _audit(args: argparse.Namespace) -> int:
    check_composite(args.composite)
    with checkpoint_source(args) as checkpoint:
        result = _run_audit(args, checkpoint or args.model)
    per_class = result.get("per_class", {})

    def named(ids: list[int]) -> str:
        return "[" + ", ".join(f"{c} {per_class.get(str(c), {}).get('name', '')}".strip() for c in ids) + "]"

    print(f"suspicion ranking (most suspicious first): {named(result.get('suspicion_ranking', [])[:10])}")
    print(f"flagged: {named(result.get('flagged', []))}")
    print(f"report: {args.out}/report.html, numbers: {args.out}/audit.json")
    return 0


def _run_audit(args: argparse.Namespace, checkpoint: str) -> dict[str, Any]:
    from klugerhans.audit.report import run_audit

    return run_audit(_AUDIT.build(args, checkpoint=checkpoint))


# --- klugerhans fix -----------------------------------------------------------------------------------------------


_FIX = ConfigFlags(
    FixConfig,
    ("class_id", "method", "out", "control", "epochs", "lr", "rrr_weight", "counterfactual"),
    {
        "class_id": Flag("--class", type=class_id, metavar="CLASS_ID"),
        "epochs": Flag(type=non_negative_int),
        "lr": Flag(type=positive_float),
    },
)
_LOCATE = ConfigFlags(LocateConfig, ("dilate",), {"dilate": Flag(type=non_negative_int)}, prefix="locate")


def _fix_args(p: argparse.ArgumentParser) -> None:
    add_checkpoint_args(p)
    add_device_args(p, FixConfig.device)
    add_data_args(p, FixConfig)
    add_fallback_arg(p)
    _FIX.add(p)
    _LOCATE.add(p)
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


def _fix_config(args: argparse.Namespace, checkpoint: str) -> FixConfig:
    return _FIX.build(
        args,
        checkpoint=checkpoint,
        locate=_LOCATE.build(args),
    )
