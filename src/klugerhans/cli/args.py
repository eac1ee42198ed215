"""Argument types, the argument groups several subcommands share, and the model loading they share."""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from klugerhans.cli.fields import field_defaults
from klugerhans.defaults import DEFAULT_COMPOSITE, DEFAULT_DATA, DEFAULT_DEVICE, DEFAULT_FALLBACK
from klugerhans.errors import KlugerhansError

DEFAULT_SIZE = 32
"""The image side of commands with no model or config to take it from (``klugerhans data``)."""

# --- argument types: invalid values become one-line argparse errors ------------------------------------------


def _int_at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
    return value


def positive_int(text: str) -> int:
    """A whole number >= 1."""
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """A whole number >= 0."""
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


def unit_interval(text: str) -> float:
    """A number in [0, 1]."""
    return _fraction(text)


def open_unit_interval(text: str) -> float:
    """A number in (0, 1)."""
    return _fraction(text, open_low=True, open_high=True)


def positive_float(text: str) -> float:
    """A number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {value}")
    return value


def class_id(text: str) -> int:
    """A GTSRB class id, 0..42."""
    from klugerhans.data.classes import check_class_id

    try:
        return check_class_id(text)
    except KlugerhansError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def rgb_color(text: str) -> tuple[int, int, int]:
    """A colour name, #rrggbb, #rgb or rgb(r, g, b), as an RGB triple."""
    from klugerhans.data.colors import parse_color

    try:
        return parse_color(text)
    except KlugerhansError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def color_name(rgb: tuple[int, int, int]) -> str:
    """A colour as the help shows it: its name, else ``#rrggbb``."""
    from klugerhans.data.colors import NAMED_COLORS

    return next((n for n, c in NAMED_COLORS.items() if c == tuple(rgb)), "#" + "".join(f"{v:02x}" for v in rgb))


def rgb_colors(text: str) -> tuple[tuple[int, int, int], ...]:
    """Comma-separated colours (see :func:`rgb_color`)."""
    return tuple(rgb_color(part.strip()) for part in text.split(",") if part.strip())


def open_unit_interval_closed_high(text: str) -> float:
    """A number in (0, 1]."""
    return _fraction(text, open_low=True, open_high=False)


# --- argument groups: each flag shared by several subcommands is declared once, here -----------------------------


def add_data_args(
    p: argparse.ArgumentParser,
    config: type | None = None,
    *,
    default: str | None = None,
    download: bool = True,
    size: bool = True,
) -> None:
    """--data, --data-dir, --download, --size, --max-images, --seed (``download``/``size``: commands without them).

    Their defaults are ``config``'s (its ``data``, ``seed`` and ``input_size``) where the command builds one,
    ``default`` the dataset of a command without a config.
    """
    own = field_defaults(config) if config is not None else {}
    default = default or own.get("data", DEFAULT_DATA)
    p.add_argument("--data", default=default, help=f"dataset: gtsrb, synthetic or folder (default {default})")
    p.add_argument(
        "--data-dir", default=None, help="GTSRB folder (zips, torchvision or Kaggle layout), or your ImageFolder tree"
    )
    if download:
        p.add_argument("--download", action="store_true", help="download the official GTSRB archives if missing")
    if size:
        side = own.get("input_size", DEFAULT_SIZE)
        p.add_argument(
            "--size",
            type=positive_int,
            default=side,
            help=f"image side: 32, 48 or 64 (folder: any >= 8; default {side})",
        )
    p.add_argument("--max-images", type=positive_int, default=None, help="use at most N images per split")
    seed = own.get("seed", 0)
    p.add_argument("--seed", type=non_negative_int, default=seed, help=f"random seed (default {seed})")


def add_checkpoint_args(
    p: argparse.ArgumentParser, help_text: str = "model file or run directory (default: the released manipulated model)"
) -> None:
    """--checkpoint and --model, or --arch + --weights (+ --image-size, --mean, --std) for the user's own model
    (``help_text``: what --checkpoint means to this command)."""
    p.add_argument("--checkpoint", default=None, help=help_text)
    p.add_argument("--model", choices=("manipulated", "control"), default="manipulated", help="released weights")
    own = p.add_argument_group("your own model (instead of --checkpoint)")
    own.add_argument("--arch", default=None, help="architecture of --weights: a torchvision name (resnet18), timm:NAME")
    own.add_argument("--weights", default=None, help="state_dict file: .safetensors, or .pt/.pth from torch.save")
    own.add_argument("--image-size", type=positive_int, default=None, help="input side (default: as trained, or 224)")
    stats = "on the 0..1 scale (default: as trained, or ImageNet's)"
    own.add_argument("--mean", type=float, nargs=3, metavar=("R", "G", "B"), default=None, help=f"RGB mean {stats}")
    own.add_argument("--std", type=float, nargs=3, metavar=("R", "G", "B"), default=None, help=f"RGB std {stats}")


def add_device_args(p: argparse.ArgumentParser, default: str = DEFAULT_DEVICE) -> None:
    """--device (``serve`` defaults to cpu: a server shares the machine)."""
    p.add_argument("--device", default=default, help=f"auto, cpu, cuda, cuda:N or mps (default {default})")


def add_lang_args(p: argparse.ArgumentParser) -> None:
    """--lang."""
    p.add_argument("--lang", choices=("en", "de"), default="en", help="language of class names")


def add_progress_args(p: argparse.ArgumentParser) -> None:
    """--no-progress."""
    p.add_argument("--no-progress", action="store_true", help="no progress output")


def add_composite_args(p: argparse.ArgumentParser, *, fallback: bool = False, default: str | None = None) -> None:
    """--composite (``default``: the package's), and --fallback where the command passes it to its LRP explainers
    (``fallback``)."""
    default = default or DEFAULT_COMPOSITE
    p.add_argument("--composite", default=default, help=f"LRP composite (default {default})")
    if fallback:
        add_fallback_arg(p)


def add_fallback_arg(p: argparse.ArgumentParser) -> None:
    """--fallback error|gradient: what LRP does at an operation without a rule."""
    p.add_argument(
        "--fallback",
        choices=("error", "gradient"),
        default=DEFAULT_FALLBACK,
        help="an operation without an LRP rule: stop with an error naming it (default), or propagate "
        "gradient x input through it and report the share of operations with a rule",
    )


def add_split_args(p: argparse.ArgumentParser, what: str, default: str = "test") -> None:
    """--split train|val|test (``what``: what the split is used for; ``default``: the command's config's)."""
    p.add_argument(
        "--split",
        choices=("train", "val", "test"),
        default=default,
        help=f"images to {what} (default {default}; val: as the model's training drew it, or a folder's val/)",
    )


def print_json(obj: Any) -> None:
    print(json.dumps(obj, ensure_ascii=False))


# --- output and model loading shared by several commands --------------------------------------------------------


def fmt(value: float | None) -> str:
    """A share or rate with four decimals, or "n/a"."""
    return "n/a" if value is None else f"{value:.4f}"


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


def load_from_args(args: argparse.Namespace):
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
    """``clf`` named with the classes of a ``--data`` that has its own (an image folder's class folders; weights
    alone have no names); one line if the data has another number of classes than the weights have outputs."""
    if getattr(args, "data", None) is None or not any(n.startswith("class ") for n in clf.class_names):
        return clf
    from klugerhans.data.dataset import DATASETS

    read_names = DATASETS.get_or_raise(args.data).class_names
    if read_names is None:
        return clf
    names = read_names(args.data_dir)
    outputs = clf.meta.model.num_classes
    if len(names) != outputs:
        raise KlugerhansError(
            f"{args.data_dir} has {len(names)} classes but {args.weights} has {outputs} outputs; "
            "give the data of the classes the model was trained on"
        )
    clf.meta = replace(clf.meta, class_names=tuple(names))
    return clf


@contextlib.contextmanager
def checkpoint_source(args: argparse.Namespace) -> Iterator[str | None]:
    """--checkpoint (or None), or --weights converted into a temporary klugerhans checkpoint, for the commands that
    load the model themselves (audit, fix, serve)."""
    if not _user_weights(args):
        yield args.checkpoint
        return
    from klugerhans.models.checkpoint import save_checkpoint

    clf = load_from_args(args)
    with tempfile.TemporaryDirectory(prefix="klugerhans-weights-") as tmp:
        yield str(save_checkpoint(Path(tmp) / f"{Path(args.weights).stem}.safetensors", clf.model, clf.meta))


def check_composite(name: str) -> None:
    # only the name: a composite's bounds come from the checkpoint, which is read later
    from klugerhans.explain.composites import COMPOSITES

    COMPOSITES.get_or_raise(name)
