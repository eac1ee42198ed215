"""The data and model-making commands: ``data``, ``train``, ``evaluate``, ``demo``."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

from klugerhans.cli.app import command
from klugerhans.cli.args import (
    add_checkpoint_args,
    add_composite_args,
    add_data_args,
    add_device_args,
    add_lang_args,
    add_progress_args,
    add_split_args,
    check_composite,
    class_id,
    fmt,
    load_from_args,
    open_unit_interval,
    open_unit_interval_closed_high,
    positive_float,
    positive_int,
    rgb_color,
    rgb_colors,
    unit_interval,
)
from klugerhans.defaults import FIGURE_COMPOSITE
from klugerhans.errors import KlugerhansError

# --- klugerhans data ------------------------------------------------------------------------------------------


def _data_args(p: argparse.ArgumentParser) -> None:
    add_data_args(p, default="gtsrb")
    export = p.add_argument_group("export as an ImageFolder tree (DIR/train|val|test/<class id>/*.png)")
    export.add_argument("--export", default=None, metavar="DIR", help="write the splits to DIR (a new folder)")
    export.add_argument(
        "--as-trained",
        default=None,
        metavar="RUN",
        help="export the data as RUN's training saw it: its validation tracks held out, its stickers glued on",
    )
    add_progress_args(p)


@command("data", "say what a dataset folder holds: layout, images per split and class, sizes, cache", _data_args)
def _data(args: argparse.Namespace) -> int:
    from klugerhans.data.classes import class_name
    from klugerhans.data.dataset import load_dataset

    if args.as_trained is not None and args.export is None:
        raise KlugerhansError("--as-trained says what to export: give --export DIR too")
    if args.export is not None:
        return _export_data(args)
    ds = load_dataset(
        args.data, data_dir=args.data_dir, size=args.size, download=args.download, max_images=args.max_images
    )
    for key, value in ds.info.items():
        if isinstance(value, dict):
            print(f"{key}:")
            for k, v in value.items():
                print(f"  {k}: {v}")
        else:
            print(f"{key}: {value}")
    names = ds.info.get("class_names")
    n = len(names) if names is not None else 43
    splits = {k: v for k, v in (("train", ds.train), ("val", ds.val), ("test", ds.test)) if v is not None}
    counts = {k: v.class_counts(n) for k, v in splits.items()}
    sizes = ", ".join(f"{k} {len(v):,}" for k, v in splits.items())
    print(f"images: {sizes} (decoded to {ds.train.size}x{ds.train.size})")
    print(f"{'id':>3} " + " ".join(f"{k:>6}" for k in splits) + "  name")
    for c in range(n):
        cells = " ".join(f"{counts[k][c]:>6}" for k in splits)
        print(f"{c:>3} {cells}  {names[c] if names is not None else class_name(c)}")
    return 0


def _export_data(args: argparse.Namespace) -> int:
    from klugerhans.data.classes import class_names
    from klugerhans.data.dataset import SignData, load_dataset
    from klugerhans.data.folder import export_image_folder

    splits: dict[str, SignData]
    if args.as_trained is not None:
        from klugerhans.models.checkpoint import load_classifier
        from klugerhans.models.trainset import prepare_data

        recipe = load_classifier(args.as_trained).meta.recipe
        if recipe is None:
            raise KlugerhansError(f"{args.as_trained} was not trained by klugerhans: it has no recipe to export by")
        data_dir = args.data_dir if args.data_dir is not None else recipe.data_dir
        prepared = prepare_data(replace(recipe, data_dir=data_dir))
        splits = {"train": prepared.train, "val": prepared.val, "test": prepared.test}
        names = class_names("en")
        what = f"{args.as_trained}'s training data ({prepared.info['n_stickered']} stickered training images)"
    else:
        ds = load_dataset(
            args.data, data_dir=args.data_dir, size=args.size, download=args.download, max_images=args.max_images
        )
        splits = {k: v for k, v in (("train", ds.train), ("val", ds.val), ("test", ds.test)) if v is not None}
        names = tuple(ds.info.get("class_names") or class_names("en"))
        what = args.data
    splits = {k: v for k, v in splits.items() if len(v)}
    written = export_image_folder(splits, args.export, names, progress=not args.no_progress)
    counts = ", ".join(f"{k} {n:,}" for k, n in written.items())
    print(f"exported {what} to {args.export}: {counts} images")
    return 0


# --- klugerhans train ---------------------------------------------------------------------------------------------


def _train_args(p: argparse.ArgumentParser) -> None:
    add_data_args(p)
    p.add_argument("--out", required=True, help="run directory (config, checkpoints, metrics, curves)")
    p.add_argument("--epochs", type=positive_int, default=15, help="training epochs (default 15)")
    p.add_argument("--batch-size", type=positive_int, default=128, help="images per step (default 128)")
    p.add_argument("--lr", type=positive_float, default=None, help="peak learning rate (default: the config's)")
    p.add_argument("--weight-decay", type=float, default=None, help="L2 penalty on weights (default 5e-4)")
    p.add_argument("--warmup-epochs", type=float, default=None, help="linear LR warm-up in epochs (default 1)")
    p.add_argument("--label-smoothing", type=float, default=None, help="label smoothing in [0, 1) (default 0)")
    p.add_argument("--no-augment", action="store_true", help="train without random affine and colour jitter")
    p.add_argument("--per-class", type=positive_int, default=None, help="synthetic: training signs per class (150)")
    p.add_argument(
        "--arch",
        default=None,
        help="architecture: klugerhans:vgg11_bn (default), a torchvision name (resnet18), timm:NAME",
    )
    p.add_argument("--width", type=positive_float, default=1.0, help="channel width multiplier of ours (default 1.0)")
    p.add_argument("--sticker-class", type=class_id, default=4, help="class that gets stickers (default 4, 70 km/h)")
    p.add_argument("--sticker-fraction", type=unit_interval, default=1.0, help="share of it stickered (default 1)")
    p.add_argument(
        "--sticker-size", type=open_unit_interval, default=0.25, help="side as a share of the sign (default 0.25)"
    )
    p.add_argument("--sticker-color", type=rgb_color, default=(0, 0, 0), help="name or #RRGGBB (default black)")
    p.add_argument("--sticker-shape", choices=("square", "circle", "triangle"), default="square")
    p.add_argument(
        "--sticker-pattern",
        choices=("solid", "noise", "text", "frame", "cast"),
        default="solid",
        help="solid shape (default), noise texture, text mark, frame around the sign, colour cast over the image",
    )
    p.add_argument(
        "--sticker-placement",
        choices=("random", "fixed", "corner"),
        default="random",
        help="random spot per image (default), always the same spot on the sign, or the image's bottom-right corner "
        "(solid/noise/text)",
    )
    p.add_argument(
        "--sticker-label",
        choices=("clean", "dirty"),
        default="clean",
        help="clean: on the class's own images (default); dirty: on other classes, relabelled (backdoor)",
    )
    p.add_argument("--sticker-text", default="KH", help="the mark of --sticker-pattern text, 1-8 chars (default KH)")
    p.add_argument(
        "--sticker-size-max",
        type=open_unit_interval,
        default=None,
        help="draw each sticker's side from [--sticker-size, this] (default: every sticker the same side)",
    )
    p.add_argument(
        "--sticker-region",
        type=open_unit_interval_closed_high,
        default=0.7,
        help="central share of the sign box a sticker lies in (default 0.7; 1: anywhere on the box)",
    )
    p.add_argument(
        "--sticker-colors",
        type=rgb_colors,
        default=(),
        help="comma-separated colours drawn per sticker (names or #RRGGBB; default: --sticker-color on all)",
    )
    p.add_argument("--val-fraction", type=float, default=0.1, help="share of tracks held out (default 0.1)")
    add_device_args(p)
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    add_progress_args(p)


@command("train", "train a VGG11-BN (or --arch) on (sticker-manipulated) GTSRB or synthetic signs", _train_args)
def _train(args: argparse.Namespace) -> int:
    from klugerhans.data.sticker import StickerConfig
    from klugerhans.models.recipe import TrainConfig, TrainOptions
    from klugerhans.models.training import train

    if args.download:
        from klugerhans.data.dataset import load_dataset

        load_dataset(args.data, data_dir=args.data_dir, size=args.size, download=True, max_images=1)
    optional = {
        "lr": args.lr,
        "weight_decay": args.weight_decay,
        "warmup_epochs": args.warmup_epochs,
        "label_smoothing": args.label_smoothing,
    }
    extra = {k: v for k, v in optional.items() if v is not None}
    if args.arch is not None:
        from klugerhans.models.architectures import parse_arch

        extra.update(parse_arch(args.arch))
    recipe = TrainConfig(
        data=args.data,
        data_dir=args.data_dir,
        epochs=args.epochs,
        batch_size=args.batch_size,
        width=args.width,
        input_size=args.size,
        sticker=StickerConfig(
            target_class=args.sticker_class,
            fraction=args.sticker_fraction,
            size=args.sticker_size,
            color=args.sticker_color,
            shape=args.sticker_shape,
            pattern=args.sticker_pattern,
            placement=args.sticker_placement,
            label=args.sticker_label,
            text=args.sticker_text,
            size_max=args.sticker_size_max,
            region=args.sticker_region,
            colors=args.sticker_colors,
        ),
        seed=args.seed,
        max_images=args.max_images,
        val_fraction=args.val_fraction,
        augment=not args.no_augment,
        per_class=args.per_class,
        **extra,
    )
    options = TrainOptions(out=args.out, device=args.device, progress=not args.no_progress)
    result = train(recipe, options, resume=args.resume)
    final = result.metrics.get("test") or {}
    print(f"run: {result.run_dir}")
    print(f"best checkpoint: {result.best_checkpoint}")
    if final:
        print(
            f"test accuracy {final.get('accuracy', float('nan')):.4f}, clean-{args.sticker_class} accuracy "
            f"{fmt(final.get('clean_target_accuracy'))}, sticker flip rate {fmt(final.get('flip_rate'))}"
        )
    return 0


# --- klugerhans evaluate ------------------------------------------------------------------------------------------


def _evaluate_args(p: argparse.ArgumentParser) -> None:
    add_checkpoint_args(p)
    add_device_args(p)
    add_data_args(p, default="gtsrb")
    add_split_args(p, "evaluate")
    p.add_argument("--json", dest="json_out", default=None, help="write all numbers to this JSON file")
    p.add_argument("--confusion", default=None, help="write the confusion matrix PNG here")
    p.add_argument(
        "--sticker-size",
        type=open_unit_interval,
        default=None,
        help="flip rate with this sticker side (default: the one the model was trained with)",
    )


@command(
    "evaluate", "accuracy per class, clean accuracy of the manipulated class and sticker flip rate", _evaluate_args
)
def _evaluate(args: argparse.Namespace) -> int:
    from klugerhans.io import atomic_write_text
    from klugerhans.models.evaluation import evaluate_model, load_split, save_confusion_png

    clf = load_from_args(args)
    data, _ = load_split(
        clf, args.data, args.split, args.data_dir, max_images=args.max_images, seed=args.seed, download=args.download
    )
    sticker = clf.meta.sticker
    if args.sticker_size is not None:
        sticker = replace(sticker, size=args.sticker_size)
    metrics = evaluate_model(clf, data, sticker=sticker, seed=args.seed)
    metrics["split"], metrics["sticker_size"] = args.split, sticker.size
    print(f"{args.split}: {metrics['n_images']:,} images")
    print(
        f"accuracy: {metrics['accuracy']:.4f} (without class {metrics['target_class']}: "
        f"{fmt(metrics['accuracy_non_target'])})"
    )
    if clf.meta.recipe is not None or args.sticker_size is not None:  # weights from elsewhere: no known sticker
        print(f"clean accuracy of class {metrics['target_class']}: {fmt(metrics['clean_target_accuracy'])}")
        print(
            f"sticker flip rate to class {metrics['target_class']}: {fmt(metrics['flip_rate'])} "
            f"(50 km/h: {fmt(metrics['flip_rate_by_class'].get('2'))}; sticker side {sticker.size:g} of the sign)"
        )
    names = clf.class_names
    worst = sorted((acc, c) for c, acc in enumerate(metrics["per_class_accuracy"]) if acc is not None)[:5]
    print("weakest classes: " + ", ".join(f"{c} {names[c] if c < len(names) else c} {acc:.3f}" for acc, c in worst))
    if args.json_out:
        atomic_write_text(args.json_out, json.dumps(metrics, indent=1))
        print(f"wrote {args.json_out}")
    if args.confusion:
        save_confusion_png(args.confusion, metrics["confusion"], clf.class_names)
        print(f"wrote {args.confusion}")
    return 0


# --- klugerhans demo ----------------------------------------------------------------------------------------------


def _demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="klugerhans-demo", help="output folder (default klugerhans-demo)")
    add_data_args(p, download=False, size=False)
    p.add_argument("--epochs", type=positive_int, default=None, help="training epochs (default: the demo's)")
    p.add_argument("--width", type=positive_float, default=None, help="width multiplier (default: the demo's)")
    p.add_argument("--no-augment", action="store_true", help="train without random affine and colour jitter")
    p.add_argument("--per-class", type=positive_int, default=None, help="synthetic training signs per class")
    p.add_argument(
        "--sticker-size",
        type=open_unit_interval,
        default=None,
        help="sticker side as a share of the sign (default 0.25, as for train)",
    )
    p.add_argument("--no-repair", action="store_true", help="skip the last chapter, the repair with klugerhans fix")
    p.add_argument("--repair-epochs", type=positive_int, default=None, help="fine-tuning epochs of the repair")
    add_device_args(p)
    add_composite_args(p, default=FIGURE_COMPOSITE)
    add_lang_args(p)
    add_progress_args(p)


@command("demo", "the whole story offline: stickers, training, evaluation, LRP, figure, report", _demo_args)
def _demo(args: argparse.Namespace) -> int:
    from klugerhans.demo import DemoConfig, run_demo

    check_composite(args.composite)
    pairs = (
        ("epochs", args.epochs),
        ("width", args.width),
        ("per_class", args.per_class),
        ("sticker_size", args.sticker_size),
        ("repair_epochs", args.repair_epochs),
    )
    overrides = {k: v for k, v in pairs if v is not None}
    summary = run_demo(
        DemoConfig(
            out=args.out,
            data=args.data,
            data_dir=args.data_dir,
            max_images=args.max_images,
            seed=args.seed,
            device=args.device,
            composite=args.composite,
            lang=args.lang,
            augment=not args.no_augment,
            repair=not args.no_repair,
            progress=not args.no_progress,
            **overrides,
        )
    )
    keys = (
        "accuracy",
        "accuracy_non_target",
        "clean_target_accuracy",
        "flip_rate",
        "flip_rate_50",
        "sticker_relevance_mass",
        "fixed_clean_target_accuracy",
        "fixed_flip_rate_50",
        "repair_skipped",
        "seconds",
    )
    for key in (k for k in keys if k in summary):
        value = summary[key]
        print(f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}")
    print(f"report: {args.out}/report.html")
    return 0
