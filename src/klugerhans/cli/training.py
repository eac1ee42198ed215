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
    color_name,
    fmt,
    load_from_args,
    non_negative_int,
    open_unit_interval,
    open_unit_interval_closed_high,
    positive_float,
    positive_int,
    rgb_color,
    rgb_colors,
    unit_interval,
)
from klugerhans.cli.fields import ConfigFlags, Flag
from klugerhans.data.classes import class_name
from klugerhans.data.sticker import StickerConfig
from klugerhans.demo import DemoConfig
from klugerhans.errors import KlugerhansError
from klugerhans.models.recipe import TrainConfig, TrainOptions

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


_RECIPE = ConfigFlags(
    TrainConfig,
    (
        "epochs",
        "batch_size",
        "lr",
        "weight_decay",
        "warmup_epochs",
        "label_smoothing",
        "augment",
        "per_class",
        "width",
        "val_fraction",
    ),
    {
        "epochs": Flag(type=positive_int),
        "batch_size": Flag(type=positive_int),
        "lr": Flag(type=positive_float),
        "augment": Flag(help="train without random affine and colour jitter"),
        "per_class": Flag(type=positive_int),
        "width": Flag(type=positive_float),
    },
)
_STICKER = ConfigFlags(
    StickerConfig,
    (
        "target_class",
        "fraction",
        "size",
        "color",
        "shape",
        "pattern",
        "placement",
        "label",
        "text",
        "size_max",
        "region",
        "colors",
    ),
    {
        "target_class": Flag("--sticker-class", type=class_id),
        "fraction": Flag(type=unit_interval),
        "size": Flag(type=open_unit_interval),
        "color": Flag(type=rgb_color, help="name or #RRGGBB", shown=color_name),
        "pattern": Flag(
            help="solid shape, noise texture, text mark, frame around the sign, colour cast over the image"
        ),
        "placement": Flag(
            help="random spot per image, always the same spot on the sign, or the image's bottom-right corner "
            "(solid/noise/text)"
        ),
        "label": Flag(help="clean: on the class's own images; dirty: on other classes, relabelled (backdoor)"),
        "size_max": Flag(
            type=open_unit_interval,
            help="draw each sticker's side from [--sticker-size, this] (default: every sticker the same side)",
        ),
        "region": Flag(type=open_unit_interval_closed_high),
        "colors": Flag(
            type=rgb_colors,
            help="comma-separated colours drawn per sticker (names or #RRGGBB; default: --sticker-color on all)",
        ),
    },
    prefix="sticker",
)
_RUN = ConfigFlags(TrainOptions, ("out",))


def _train_args(p: argparse.ArgumentParser) -> None:
    add_data_args(p, TrainConfig)
    _RUN.add(p)
    _RECIPE.add(p, *_RECIPE.fields[:8])
    p.add_argument(
        "--arch",
        default=None,
        help=f"architecture: {TrainConfig.family}:{TrainConfig.arch} (default), a torchvision name (resnet18), "
        "timm:NAME",
    )
    _RECIPE.add(p, "width")
    _STICKER.add(p)
    _RECIPE.add(p, "val_fraction")
    add_device_args(p, TrainOptions.device)
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    add_progress_args(p)


@command("train", "train a VGG11-BN (or --arch) on (sticker-manipulated) GTSRB or synthetic signs", _train_args)
def _train(args: argparse.Namespace) -> int:
    from klugerhans.models.training import train

    if args.download:
        from klugerhans.data.dataset import load_dataset

        load_dataset(args.data, data_dir=args.data_dir, size=args.size, download=True, max_images=1)
    arch: dict[str, str] = {}
    if args.arch is not None:
        from klugerhans.models.architectures import parse_arch

        arch = parse_arch(args.arch)
    recipe = _RECIPE.build(
        args,
        **arch,
        input_size=args.size,
        sticker=_STICKER.build(args),
    )
    options = _RUN.build(args)
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
        help="flip rate with stickers of exactly this side (default: the side or range of sides the model was trained "
        "with; colour, shape and region stay the model's)",
    )


def _sides(sticker: StickerConfig) -> str:
    """The sticker's side, or its range of sides, for a one-line report."""
    return f"{sticker.size:g}" if sticker.size_max is None else f"{sticker.size:g}-{sticker.size_max:g}"


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
        # one side for every sticker, also where the model was trained with a range of sides
        sticker = replace(sticker, size=args.sticker_size, size_max=None)
    m = evaluate_model(clf, data, sticker=sticker, seed=args.seed)
    print(f"{args.split}: {m.n_images:,} images")
    print(f"accuracy: {m.accuracy:.4f} (without class {m.target_class}: {fmt(m.accuracy_non_target)})")
    if clf.meta.recipe is not None or args.sticker_size is not None:  # weights from elsewhere: no known sticker
        print(f"clean accuracy of class {m.target_class}: {fmt(m.clean_target_accuracy)}")
        print(
            f"sticker flip rate to class {m.target_class}: {fmt(m.flip_rate)} "
            f"(50 km/h: {fmt(m.flip_rate_by_class.get(2))}; sticker side {_sides(sticker)} of the sign)"
        )
    names = clf.class_names
    worst = sorted((acc, c) for c, acc in enumerate(m.per_class_accuracy) if acc is not None)[:5]
    print("weakest classes: " + ", ".join(f"{c} {names[c] if c < len(names) else c} {acc:.3f}" for acc, c in worst))
    if args.json_out:
        record = m.to_json() | {"split": args.split, "sticker_size": sticker.size, "sticker_size_max": sticker.size_max}
        atomic_write_text(args.json_out, json.dumps(record, indent=1))
        print(f"wrote {args.json_out}")
    if args.confusion:
        save_confusion_png(args.confusion, m.confusion, clf.class_names)
        print(f"wrote {args.confusion}")
    return 0


# --- klugerhans demo ----------------------------------------------------------------------------------------------


_DEMO = ConfigFlags(
    DemoConfig,
    (
        "out",
        "epochs",
        "width",
        "augment",
        "per_class",
        "sticker_size",
        "repair",
        "repair_epochs",
        "repair_counterfactual",
        "repair_dilate",
    ),
    {
        "epochs": Flag(type=positive_int),
        "width": Flag(type=positive_float),
        "augment": Flag(help="train without random affine and colour jitter"),
        "per_class": Flag(type=positive_int),
        "sticker_size": Flag(type=open_unit_interval),
        "repair": Flag(help="skip the last chapter, the repair with klugerhans fix"),
        "repair_epochs": Flag(type=positive_int),
        "repair_counterfactual": Flag(type=unit_interval),
        "repair_dilate": Flag(type=non_negative_int),
    },
)


def _demo_args(p: argparse.ArgumentParser) -> None:
    _DEMO.add(p, "out")
    add_data_args(p, DemoConfig, download=False, size=False)
    _DEMO.add(p, *_DEMO.fields[1:])
    add_device_args(p, DemoConfig.device)
    add_composite_args(p, default=DemoConfig.composite)
    add_lang_args(p)
    add_progress_args(p)


@command("demo", "the whole story offline: stickers, training, evaluation, LRP, figure, report", _demo_args)
def _demo(args: argparse.Namespace) -> int:
    from klugerhans.demo import run_demo

    check_composite(args.composite)
    summary = run_demo(_DEMO.build(args)).to_json()
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
