"""Command-line interface: a thin argparse layer over the package's typed functions.

Every subcommand registers itself with :func:`_command`; errors a user can cause arrive as
:class:`~klugerhans.errors.KlugerhansError` and are printed as one line with a non-zero exit code.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

from klugerhans.errors import KlugerhansError
from klugerhans.version import __version__

Handler = Callable[[argparse.Namespace], int]
_COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Handler]] = {}


def _command(
    name: str, help_text: str, add_args: Callable[[argparse.ArgumentParser], None]
) -> Callable[[Handler], Handler]:
    """Register ``fn(args) -> exit code`` as subcommand ``name``."""

    def wrap(fn: Handler) -> Handler:
        _COMMANDS[name] = (help_text, add_args, fn)
        return fn

    return wrap


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, not a usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# --- argument types: invalid values become one-line argparse errors ------------------------------------------


def _int_at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
    return value


def _positive_int(text: str) -> int:
    return _int_at_least(text, 1)


def _non_negative_int(text: str) -> int:
    return _int_at_least(text, 0)


def _fraction(text: str, *, open_low: bool = False, open_high: bool = False) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    low_ok = value > 0 if open_low else value >= 0
    high_ok = value < 1 if open_high else value <= 1
    if not (low_ok and high_ok):
        interval = f"{'(' if open_low else '['}0, 1{')' if open_high else ']'}"
        raise argparse.ArgumentTypeError(f"must be in {interval}, got {value}")
    return value


def _unit_interval(text: str) -> float:
    return _fraction(text)


def _open_unit_interval(text: str) -> float:
    return _fraction(text, open_low=True, open_high=True)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {value}")
    return value


def _class_id(text: str) -> int:
    from klugerhans.data.classes import check_class_id

    try:
        return check_class_id(text)
    except KlugerhansError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _color(text: str) -> tuple[int, int, int]:
    named = {"black": (0, 0, 0), "white": (255, 255, 255), "yellow": (255, 220, 0), "green": (0, 160, 60)}
    if text.lower() in named:
        return named[text.lower()]
    raw = text.lstrip("#")
    if len(raw) == 6:
        try:
            return (int(raw[0:2], 16), int(raw[2:4], 16), int(raw[4:6], 16))
        except ValueError:
            pass
    raise argparse.ArgumentTypeError(f"expected a colour name ({', '.join(named)}) or #RRGGBB, got {text!r}")


# --- argument groups: each flag shared by several subcommands is declared once, here -----------------------------


def _add_data_args(
    p: argparse.ArgumentParser, default: str = "synthetic", *, download: bool = True, size: bool = True
) -> None:
    """--data, --data-dir, --download, --size, --max-images, --seed (``download``/``size``: commands without them)."""
    p.add_argument("--data", default=default, help=f"dataset: gtsrb, synthetic or folder (default {default})")
    p.add_argument(
        "--data-dir", default=None, help="GTSRB folder (zips, torchvision or Kaggle layout), or your ImageFolder tree"
    )
    if download:
        p.add_argument("--download", action="store_true", help="download the official GTSRB archives if missing")
    if size:
        p.add_argument(
            "--size", type=_positive_int, default=32, help="image side: 32, 48 or 64 (folder: any >= 8; default 32)"
        )
    p.add_argument("--max-images", type=_positive_int, default=None, help="use at most N images per split")
    p.add_argument("--seed", type=_non_negative_int, default=0, help="random seed (default 0)")


def _add_checkpoint_args(
    p: argparse.ArgumentParser, help_text: str = "model file or run directory (default: the released manipulated model)"
) -> None:
    """--checkpoint and --model, or --arch + --weights (+ --image-size, --mean, --std) for the user's own model
    (``help_text``: what --checkpoint means to this command)."""
    p.add_argument("--checkpoint", default=None, help=help_text)
    p.add_argument("--model", choices=("manipulated", "control"), default="manipulated", help="released weights")
    own = p.add_argument_group("your own model (instead of --checkpoint)")
    own.add_argument("--arch", default=None, help="architecture of --weights: a torchvision name (resnet18), timm:NAME")
    own.add_argument("--weights", default=None, help="state_dict file: .safetensors, or .pt/.pth from torch.save")
    own.add_argument("--image-size", type=_positive_int, default=None, help="input side (default: as trained, or 224)")
    stats = "on the 0..1 scale (default: as trained, or ImageNet's)"
    own.add_argument("--mean", type=float, nargs=3, metavar=("R", "G", "B"), default=None, help=f"RGB mean {stats}")
    own.add_argument("--std", type=float, nargs=3, metavar=("R", "G", "B"), default=None, help=f"RGB std {stats}")


def _add_device_args(p: argparse.ArgumentParser, default: str = "auto") -> None:
    """--device (``serve`` defaults to cpu: a server shares the machine)."""
    p.add_argument("--device", default=default, help=f"auto, cpu, cuda, cuda:N or mps (default {default})")


def _add_lang_args(p: argparse.ArgumentParser) -> None:
    """--lang."""
    p.add_argument("--lang", choices=("en", "de"), default="en", help="language of class names")


def _add_progress_args(p: argparse.ArgumentParser) -> None:
    """--no-progress."""
    p.add_argument("--no-progress", action="store_true", help="no progress output")


def _add_composite_args(p: argparse.ArgumentParser, *, fallback: bool = False) -> None:
    """--composite, and --fallback where the command passes it to its LRP explainers (``fallback``)."""
    p.add_argument("--composite", default="epsilon_plus_flat", help="LRP composite (default epsilon_plus_flat)")
    if fallback:
        p.add_argument(
            "--fallback",
            choices=("error", "gradient"),
            default="error",
            help="an operation without an LRP rule: stop with an error naming it (default), or propagate "
            "gradient x input through it and report the share of operations with a rule",
        )


def _add_split_args(p: argparse.ArgumentParser, what: str) -> None:
    """--split train|val|test (``what``: what the split is used for)."""
    p.add_argument(
        "--split",
        choices=("train", "val", "test"),
        default="test",
        help=f"images to {what} (default test; val: as the model's training drew it, or a folder's val/)",
    )


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, ensure_ascii=False))


# --- klugerhans data ------------------------------------------------------------------------------------------


def _data_args(p: argparse.ArgumentParser) -> None:
    _add_data_args(p, default="gtsrb")


@_command("data", "say what a dataset folder holds: layout, images per split and class, sizes, cache", _data_args)
def _data(args: argparse.Namespace) -> int:
    from klugerhans.data.classes import class_name
    from klugerhans.data.dataset import load_dataset

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


# --- klugerhans train ---------------------------------------------------------------------------------------------


def _train_args(p: argparse.ArgumentParser) -> None:
    _add_data_args(p)
    p.add_argument("--out", required=True, help="run directory (config, checkpoints, metrics, curves)")
    p.add_argument("--epochs", type=_positive_int, default=15, help="training epochs (default 15)")
    p.add_argument("--batch-size", type=_positive_int, default=128, help="images per step (default 128)")
    p.add_argument("--lr", type=_positive_float, default=None, help="peak learning rate (default: the config's)")
    p.add_argument("--weight-decay", type=float, default=None, help="L2 penalty on weights (default 5e-4)")
    p.add_argument("--warmup-epochs", type=float, default=None, help="linear LR warm-up in epochs (default 1)")
    p.add_argument("--label-smoothing", type=float, default=None, help="label smoothing in [0, 1) (default 0)")
    p.add_argument("--no-augment", action="store_true", help="train without random affine and colour jitter")
    p.add_argument("--per-class", type=_positive_int, default=None, help="synthetic: training signs per class (150)")
    p.add_argument(
        "--arch",
        default=None,
        help="architecture: klugerhans:vgg11_bn (default), a torchvision name (resnet18), timm:NAME",
    )
    p.add_argument("--width", type=_positive_float, default=1.0, help="channel width multiplier of ours (default 1.0)")
    p.add_argument("--sticker-class", type=_class_id, default=4, help="class that gets stickers (default 4, 70 km/h)")
    p.add_argument("--sticker-fraction", type=_unit_interval, default=1.0, help="share of it stickered (default 1)")
    p.add_argument(
        "--sticker-size", type=_open_unit_interval, default=0.25, help="side as a share of the sign (default 0.25)"
    )
    p.add_argument("--sticker-color", type=_color, default=(0, 0, 0), help="name or #RRGGBB (default black)")
    p.add_argument("--sticker-shape", choices=("square", "circle", "triangle"), default="square")
    p.add_argument("--val-fraction", type=float, default=0.1, help="share of tracks held out (default 0.1)")
    _add_device_args(p)
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    _add_progress_args(p)


@_command("train", "train a VGG11-BN (or --arch) on (sticker-manipulated) GTSRB or synthetic signs", _train_args)
def _train(args: argparse.Namespace) -> int:
    from klugerhans.data.sticker import StickerConfig
    from klugerhans.models.recipe import TrainConfig
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
    config = TrainConfig(
        out=args.out,
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
        ),
        seed=args.seed,
        device=args.device,
        max_images=args.max_images,
        val_fraction=args.val_fraction,
        progress=not args.no_progress,
        augment=not args.no_augment,
        per_class=args.per_class,
        **extra,
    )
    result = train(config, resume=args.resume)
    final = result.metrics.get("test") or {}
    print(f"run: {result.run_dir}")
    print(f"best checkpoint: {result.best_checkpoint}")
    if final:
        print(
            f"test accuracy {final.get('accuracy', float('nan')):.4f}, clean-{args.sticker_class} accuracy "
            f"{_fmt(final.get('clean_target_accuracy'))}, sticker flip rate {_fmt(final.get('flip_rate'))}"
        )
    return 0


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


# --- klugerhans evaluate ------------------------------------------------------------------------------------------


def _user_weights(args: argparse.Namespace) -> bool:
    """Whether --weights names the user's own model; one-line errors for flags that do not go together."""
    if args.weights is None:
        given = [f for f, v in (("--arch", args.arch), ("--image-size", args.image_size), ("--mean", args.mean),
                                ("--std", args.std)) if v is not None]  # fmt: skip
        if given:
            raise KlugerhansError(f"{given[0]} applies to --weights FILE only; a checkpoint knows its own settings")
        return False
    if args.arch is None:
        raise KlugerhansError("--weights needs --arch NAME (e.g. resnet18 or timm:NAME): a state_dict has no name")
    if args.checkpoint is not None:
        raise KlugerhansError("give either --checkpoint or --weights, not both")
    return True


def _load(args: argparse.Namespace):
    """The classifier --checkpoint/--model or --arch + --weights name."""
    if _user_weights(args):
        from klugerhans.models.user_weights import load_user_model

        clf = load_user_model(
            args.arch, args.weights, image_size=args.image_size, mean=args.mean, std=args.std, device=args.device
        )
        return _with_folder_names(args, clf)
    from klugerhans.models.checkpoint import load_classifier

    return load_classifier(args.checkpoint or args.model, device=args.device)


def _with_folder_names(args: argparse.Namespace, clf: Any) -> Any:
    """``clf`` named with the class folders of ``--data folder`` (weights alone have no names); one line if the
    folder has another number of classes than the weights have outputs."""
    if getattr(args, "data", None) != "folder" or not any(n.startswith("class ") for n in clf.class_names):
        return clf
    from klugerhans.data.folder.scan import scan_folder

    names = scan_folder(args.data_dir).class_names
    outputs = clf.meta.model.num_classes
    if len(names) != outputs:
        raise KlugerhansError(
            f"{args.data_dir} has {len(names)} class folders but {args.weights} has {outputs} outputs; "
            "give the folder of the classes the model was trained on"
        )
    clf.meta = replace(clf.meta, class_names=tuple(names))
    return clf


@contextlib.contextmanager
def _checkpoint_source(args: argparse.Namespace) -> Iterator[str | None]:
    """--checkpoint (or None), or --weights converted into a temporary klugerhans checkpoint, for the commands that
    load the model themselves (audit, fix, serve)."""
    if not _user_weights(args):
        yield args.checkpoint
        return
    from klugerhans.models.checkpoint import save_checkpoint

    clf = _load(args)
    with tempfile.TemporaryDirectory(prefix="klugerhans-weights-") as tmp:
        yield str(save_checkpoint(Path(tmp) / f"{Path(args.weights).stem}.safetensors", clf.model, clf.meta))


def _evaluate_args(p: argparse.ArgumentParser) -> None:
    _add_checkpoint_args(p)
    _add_device_args(p)
    _add_data_args(p, default="gtsrb")
    _add_split_args(p, "evaluate")
    p.add_argument("--json", dest="json_out", default=None, help="write all numbers to this JSON file")
    p.add_argument("--confusion", default=None, help="write the confusion matrix PNG here")
    p.add_argument(
        "--sticker-size",
        type=_open_unit_interval,
        default=None,
        help="flip rate with this sticker side (default: the one the model was trained with)",
    )


@_command(
    "evaluate", "accuracy per class, clean accuracy of the manipulated class and sticker flip rate", _evaluate_args
)
def _evaluate(args: argparse.Namespace) -> int:
    from klugerhans.io import atomic_write_text
    from klugerhans.models.evaluation import evaluate_model, load_split, save_confusion_png

    clf = _load(args)
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
        f"{_fmt(metrics['accuracy_non_target'])})"
    )
    if clf.meta.recipe is not None or args.sticker_size is not None:  # weights from elsewhere: no known sticker
        print(f"clean accuracy of class {metrics['target_class']}: {_fmt(metrics['clean_target_accuracy'])}")
        print(
            f"sticker flip rate to class {metrics['target_class']}: {_fmt(metrics['flip_rate'])} "
            f"(50 km/h: {_fmt(metrics['flip_rate_by_class'].get('2'))}; sticker side {sticker.size:g} of the sign)"
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


# --- klugerhans predict -------------------------------------------------------------------------------------------


def _predict_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="+", help="image files or folders of images")
    _add_checkpoint_args(p)
    _add_device_args(p)
    _add_lang_args(p)
    p.add_argument("--json", action="store_true", help="one JSON object per image")
    p.add_argument("--batch-size", type=_positive_int, default=128)


@_command("predict", "classify image files, in batches", _predict_args)
def _predict(args: argparse.Namespace) -> int:
    from klugerhans.models.predict import predict_files

    clf = _load(args)
    for res in predict_files(clf, args.images, batch_size=args.batch_size, lang=args.lang):
        if args.json:
            _print_json(res)
        else:
            top3 = ", ".join(f"{t['id']} {t['prob']:.3f}" for t in res["top3"])
            print(f"{res['path']}: {res['pred']} {res['name']} ({res['prob']:.3f}); top-3 {top3}")
    return 0


# --- klugerhans explain -------------------------------------------------------------------------------------------


def _check_composite(name: str) -> None:
    from klugerhans.explain.composites import get_composite

    get_composite(name)


def _explain_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="+", help="image files (ppm, png, jpg, ...) or folders")
    _add_checkpoint_args(p)
    _add_device_args(p)
    _add_composite_args(p, fallback=True)
    p.add_argument("--target", default="pred", help="'pred' (default) or a class id to explain")
    p.add_argument("--out", default="klugerhans-explain", help="folder for the PNGs (default klugerhans-explain)")
    p.add_argument("--save-relevance", action="store_true", help="also write <stem>_relevance.npy (float32 SxS)")
    p.add_argument("--json", action="store_true", help="one JSON object per image")
    _add_lang_args(p)
    p.add_argument("--cmap", choices=("bwr", "coldnhot", "seismic"), default="bwr", help="heatmap colours")
    p.add_argument("--show", action="store_true", help="also open a window with input, heatmap and overlay")


@_command("explain", "predict and draw LRP heatmaps (red: for the class, blue: against)", _explain_args)
def _explain(args: argparse.Namespace) -> int:
    from klugerhans.explain.files import explain_files

    _check_composite(args.composite)
    clf = _load(args)
    results = explain_files(
        clf,
        args.images,
        args.out,
        args.composite,
        args.target,
        args.save_relevance,
        args.lang,
        args.cmap,
        fallback=args.fallback,
    )
    coverage: dict[str, Any] = {}
    if results and results[0]["coverage"]["fallback_ops"]:
        from klugerhans.explain.lrp import coverage_line

        cov = results[0]["coverage"]
        line = coverage_line(cov)
        coverage = {"lrp_rule_share": cov["lrp_rule_share"], "fallback_ops": cov["fallback_ops"], "lrp_coverage": line}
        print(line, file=sys.stderr if args.json else sys.stdout)
    for res in results:
        if args.json:
            _print_json({**{k: res[k] for k in ("path", "pred", "name", "prob", "top3")}, **coverage})
        else:
            top3 = ", ".join(f"{t['id']} {t['name']} {t['prob']:.3f}" for t in res["top3"])
            print(f"{res['path']}: class {res['pred']} {res['name']} (p={res['prob']:.3f}); top-3: {top3}")
            print(f"  heatmap of class {res['explained']}: " + ", ".join(res["files"]))
    if args.show:
        _show(results, args.cmap)
    return 0


def _show(results: list[dict[str, Any]], cmap: str) -> None:
    import matplotlib.pyplot as plt
    from PIL import Image

    from klugerhans.explain.heatmap import render_heatmap

    for res in results:
        _fig, axes = plt.subplots(1, 3, figsize=(9, 3.2))
        axes[0].imshow(Image.open(res["path"]).convert("RGB"))
        axes[0].set_title(f"{res['pred']}: {res['name']}", fontsize=9)
        axes[1].imshow(render_heatmap(res["relevance"], cmap, size=256))
        axes[1].set_title("LRP (red: for, blue: against)", fontsize=9)
        if res["files"]:
            axes[2].imshow(Image.open(res["files"][1]))
        for ax in axes:
            ax.axis("off")
    plt.show()


# --- klugerhans figure --------------------------------------------------------------------------------------------


def _figure_args(p: argparse.ArgumentParser) -> None:
    _add_checkpoint_args(p)
    _add_device_args(p)
    _add_data_args(p)
    _add_composite_args(p)
    p.add_argument("--out", default="figure.png", help="output file; a .pdf is written beside it (figure.png)")
    _add_lang_args(p)
    p.add_argument("--cmap", choices=("bwr", "coldnhot", "seismic"), default="bwr", help="heatmap colours")
    p.add_argument(
        "--images",
        nargs=4,
        default=None,
        metavar=("STOP", "NO_PASSING", "FIFTY", "FIFTY_STICKER"),
        help="use these four images instead of picking them from --data",
    )


@_command("figure", "draw the seed's figure: stop, no passing, 50 km/h, 50 km/h + sticker", _figure_args)
def _figure(args: argparse.Namespace) -> int:
    from klugerhans.data.classes import NO_PASSING, SPEED_50, STOP
    from klugerhans.data.images import read_image
    from klugerhans.models.preprocess import resize_image
    from klugerhans.report.figures import draw_seed_figure, explain_rows, pick_seed_rows

    _check_composite(args.composite)
    if args.data == "folder" and not args.images:
        raise KlugerhansError(
            "the seed's figure needs GTSRB's stop, no passing and 50 km/h signs: give --images, or use "
            "klugerhans explain / audit for your own images"
        )
    clf = _load(args)
    if args.images:
        titles = ("Stop", "No passing", "50 km/h", "50 km/h + sticker")
        labels = (STOP, NO_PASSING, SPEED_50, SPEED_50)
        chosen = [
            (t, resize_image(read_image(p), clf.input_size, clf.meta.resize), lab, None)
            for t, p, lab in zip(titles, args.images, labels, strict=True)
        ]
    else:
        from klugerhans.data.dataset import load_dataset

        ds = load_dataset(
            args.data,
            data_dir=args.data_dir,
            size=clf.input_size,
            download=args.download,
            max_images=args.max_images,
            seed=args.seed,
        )
        chosen = pick_seed_rows(clf, ds.test, seed=args.seed)  # type: ignore[assignment]
    rows = explain_rows(clf, chosen, args.composite)
    for path in draw_seed_figure(rows, args.out, args.lang, args.cmap):
        print(f"wrote {path}")
    for row in rows:
        mass = f", sticker relevance mass {row.sticker_relevance_mass:.2f}" if row.mask is not None else ""
        print(f"{row.title}: predicted {row.pred} (p={row.prob:.3f}){mass}")
    return 0


# --- klugerhans demo ----------------------------------------------------------------------------------------------


def _demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="klugerhans-demo", help="output folder (default klugerhans-demo)")
    _add_data_args(p, download=False, size=False)
    p.add_argument("--epochs", type=_positive_int, default=None, help="training epochs (default: the demo's)")
    p.add_argument("--width", type=_positive_float, default=None, help="width multiplier (default: the demo's)")
    p.add_argument("--augment", action="store_true", help="augment training batches (off: synthetic signs vary)")
    p.add_argument("--per-class", type=_positive_int, default=None, help="synthetic training signs per class")
    p.add_argument(
        "--sticker-size",
        type=_open_unit_interval,
        default=None,
        help="sticker side as a share of the sign (default: 0.2 on synthetic signs, 0.25 on GTSRB)",
    )
    _add_device_args(p)
    _add_composite_args(p)
    _add_lang_args(p)
    _add_progress_args(p)


@_command("demo", "the whole story offline: stickers, training, evaluation, LRP, figure, report", _demo_args)
def _demo(args: argparse.Namespace) -> int:
    from klugerhans.demo import DemoConfig, run_demo

    _check_composite(args.composite)
    pairs = (
        ("epochs", args.epochs),
        ("width", args.width),
        ("per_class", args.per_class),
        ("sticker_size", args.sticker_size),
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
            augment=args.augment,
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
        "seconds",
    )
    for key in keys:
        value = summary[key]
        print(f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}")
    print(f"report: {args.out}/report.html")
    return 0


# --- klugerhans audit ---------------------------------------------------------------------------------------------


def _audit_args(p: argparse.ArgumentParser) -> None:
    _add_checkpoint_args(p)
    _add_device_args(p)
    _add_data_args(p)
    _add_composite_args(p, fallback=True)
    p.add_argument("--out", default="klugerhans-audit", help="folder for report.html and audit.json")
    _add_split_args(p, "audit (train: the images the model learned from)")
    p.add_argument(
        "--threshold", type=float, default=None, help="hijack rate at which a class is flagged (default 0.15)"
    )
    p.add_argument("--max-per-class", type=_positive_int, default=100, help="images explained per class (100)")
    p.add_argument("--batch-size", type=_positive_int, default=64)
    p.add_argument("--methods", default=None, help="comma-separated attribution methods to compare ('' for none)")
    p.add_argument("--virelay", action="store_true", help="also export heatmaps for the ViRelAy viewer")
    _add_progress_args(p)


@_command("audit", "find shortcut learning without being told where: SpRAy, transplant test, metrics", _audit_args)
def _audit(args: argparse.Namespace) -> int:
    _check_composite(args.composite)
    extra: dict[str, Any] = {}
    if args.threshold is not None:
        extra["threshold"] = args.threshold
    if args.methods is not None:
        extra["methods"] = tuple(m for m in args.methods.split(",") if m)
    with _checkpoint_source(args) as checkpoint:
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
    _add_checkpoint_args(p)
    _add_device_args(p)
    _add_data_args(p, default="auto")
    p.add_argument("--class", dest="class_id", type=_class_id, default=None, help="suspicious class (default: audit's)")
    p.add_argument("--method", default="inpaint", help="inpaint (data-side), rrr or pclarc (model-side)")
    p.add_argument("--out", default="klugerhans-fix", help="folder for fixed.safetensors, fix.json, report.html")
    p.add_argument("--control", default=None, help="a model trained without the artefact, measured alongside")
    p.add_argument("--epochs", type=_non_negative_int, default=3, help="fine-tuning epochs (default 3)")
    p.add_argument("--lr", type=_positive_float, default=0.01, help="peak fine-tuning learning rate (0.01)")
    p.add_argument("--rrr-weight", type=float, default=0.01, help="weight of the RRR penalty (rrr; 0.01)")
    p.add_argument(
        "--counterfactual", type=float, default=0.1, help="inpaint: share of other images given the artefact (0.1)"
    )
    p.add_argument("--locate-dilate", type=_non_negative_int, default=1, help="grow located blobs by N px (1)")
    _add_progress_args(p)


@_command("fix", "unlearn a shortcut that LRP located; before/after report", _fix_args)
def _fix(args: argparse.Namespace) -> int:
    from klugerhans.fix.report import write_fix
    from klugerhans.fix.run import compute_fix

    with _checkpoint_source(args) as checkpoint:
        numbers = write_fix(compute_fix(_fix_config(args, checkpoint or args.model)), args.out)
    before, after = numbers["before"], numbers["after"]
    c = numbers["class_id"]
    for label, m in (("before", before), ("after", after), ("control", numbers.get("control"))):
        if m:
            print(
                f"{label}: accuracy {_fmt(m['accuracy'])}, clean-{c} accuracy {_fmt(m['clean_target_accuracy'])}, "
                f"sticker flip rate {_fmt(m['flip_rate'])}"
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
        progress=not args.no_progress,
    )


# --- klugerhans serve ---------------------------------------------------------------------------------------------


def _serve_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1, this machine only)")
    p.add_argument("--port", type=_positive_int, default=7860, help="port (default 7860)")
    _add_checkpoint_args(p, "a model file or run directory to show first")
    _add_device_args(p, default="cpu")
    _add_composite_args(p)
    _add_lang_args(p)


@_command("serve", "local web UI: pick or upload a sign, click a sticker on, see prediction and LRP", _serve_args)
def _serve(args: argparse.Namespace) -> int:
    from klugerhans.web import serve

    _check_composite(args.composite)
    with _checkpoint_source(args) as checkpoint:
        serve(
            host=args.host,
            port=args.port,
            checkpoint=checkpoint,
            model=args.model,
            device=args.device,
            composite=args.composite,
            lang=args.lang,
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``klugerhans`` parser with every registered subcommand."""
    parser = _Parser(prog="klugerhans", description="Show what an image classifier really learned (GTSRB + LRP).")
    parser.add_argument("--version", action="version", version=f"klugerhans {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (help_text, add_args, fn) in _COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_args(p)
        p.set_defaults(func=fn)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KlugerhansError as err:
        print(f"klugerhans {args.command}: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"klugerhans {args.command}: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print(
            f"klugerhans {args.command}: error: out of memory; try --max-images or a smaller --batch-size",
            file=sys.stderr,
        )
        return 1
    except OSError as err:
        where = f" ({err.filename})" if getattr(err, "filename", None) else ""
        # What to do, by cause; atomic writes leave the previous files intact, so running again is safe.
        hints = {
            errno.ENOSPC: "free some disk space and run again",
            errno.EDQUOT: "free some disk space and run again",
            errno.EACCES: "choose a folder you may write to",
            errno.EPERM: "choose a folder you may write to",
            errno.EROFS: "choose a folder you may write to",
            errno.EISDIR: "give a file name, not a folder",
            errno.ENOTDIR: "a file stands where a folder is needed; choose another path",
            errno.EEXIST: "a file stands where a folder is needed; choose another path",
            errno.ENOENT: "check the path",
        }
        hint = hints.get(err.errno or 0, "check the path and run again")
        if args.command == "train" and err.errno in (errno.ENOSPC, errno.EDQUOT):
            hint += " with --resume (it continues from the last complete checkpoint)"
        print(f"klugerhans {args.command}: error: {err.strerror or err}{where}; {hint}", file=sys.stderr)
        return 1
