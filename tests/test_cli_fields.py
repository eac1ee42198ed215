"""Flags made from config dataclasses: each default is the field's, each help the field's docstring, and a command
given no flags builds the config's defaults."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from typing import Literal

import pytest

from klugerhans.cli import build_parser
from klugerhans.cli.fields import ConfigFlags, Flag, attribute_docs, field_defaults


@dataclass(frozen=True)
class _Toy:
    """A config as the package writes them."""

    name: str
    """What it is called. Nothing after the first sentence reaches the help."""
    steps: int = 3
    """Number of steps, e.g. three."""
    rate: float = 5e-4
    """Learning rate of :class:`~torch.optim.SGD` (``lr``)."""
    mode: Literal["fast", "slow"] = "slow"
    """How to run."""
    limit: int | None = None
    """Stop after this many; None: never."""
    augment: bool = True
    """Augment the batches."""
    names: tuple[str, ...] = ("a", "b")
    """The names."""


def _parser(flags: ConfigFlags) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="toy")
    flags.add(p)
    return p


_TOY = ConfigFlags(
    _Toy,
    ("name", "steps", "rate", "mode", "limit", "augment", "names"),
    {"names": Flag(type=lambda s: tuple(s.split(",")))},
)


def test_attribute_docs_are_the_literals_under_the_fields() -> None:
    docs = attribute_docs(_Toy)
    assert docs["steps"] == "Number of steps, e.g. three."
    assert set(docs) == {f.name for f in dataclasses.fields(_Toy)}


def test_flags_take_default_type_choices_and_help_from_the_field() -> None:
    p = _parser(_TOY)
    actions = {a.dest: a for a in p._actions}
    assert actions["name"].required and actions["steps"].default == 3 and actions["steps"].type is int
    assert actions["mode"].choices == ("fast", "slow") and actions["limit"].type is int
    assert actions["no_augment"].option_strings == ["--no-augment"]
    helps = {dest: a.help for dest, a in actions.items()}
    assert helps["name"] == "what it is called"
    assert helps["steps"] == "number of steps, e.g. three (default 3)"
    assert helps["rate"] == "learning rate of SGD (lr) (default 0.0005)"
    assert helps["limit"] == "stop after this many; default: never"
    assert helps["names"] == "the names (default a,b)"


def test_parsed_flags_build_the_config() -> None:
    p = _parser(_TOY)
    assert _TOY.build(p.parse_args(["--name", "x"])) == _Toy(name="x")
    args = p.parse_args(["--name", "x", "--steps", "5", "--no-augment", "--names", "c", "--mode", "fast"])
    assert _TOY.build(args) == _Toy(name="x", steps=5, augment=False, names=("c",), mode="fast")


@pytest.mark.parametrize(
    ("argv", "config", "module", "exposed"),
    [
        (["train", "--out", "r"], "TrainConfig", "training", "_RECIPE"),
        (["train", "--out", "r"], "StickerConfig", "training", "_STICKER"),
        (["demo"], "DemoConfig", "training", "_DEMO"),
        (["audit"], "AuditConfig", "auditing", "_AUDIT"),
        (["fix"], "FixConfig", "auditing", "_FIX"),
    ],
)
def test_a_command_without_flags_passes_the_configs_defaults(argv, config, module, exposed) -> None:
    import importlib

    flags: ConfigFlags = getattr(importlib.import_module(f"klugerhans.cli.{module}"), exposed)
    assert flags.config.__name__ == config
    values = flags.values(build_parser().parse_args(argv))
    defaults = field_defaults(flags.config)
    assert values == {name: defaults[name] for name in flags.fields}


def test_train_help_shows_the_recipes_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    from klugerhans.cli import main
    from klugerhans.models.recipe import TrainConfig

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    for value in (TrainConfig.epochs, TrainConfig.batch_size, TrainConfig.lr, TrainConfig.weight_decay):
        assert f"(default {value:g})" in shown
    assert "the config's" not in shown


@pytest.mark.parametrize(
    ("argv", "module", "exposed", "given"),
    [
        (["audit", "--split", "train", "--max-images", "7", "--seed", "3", "--device", "cpu", "--no-progress",
          "--data", "folder", "--data-dir", "d", "--composite", "epsilon_plus", "--fallback", "gradient"],
         "auditing", "_AUDIT", {"checkpoint": "m.safetensors"}),
        (["fix", "--max-images", "7", "--seed", "3", "--device", "cpu", "--no-progress", "--data", "gtsrb",
          "--data-dir", "d", "--fallback", "gradient"], "auditing", "_FIX", {"checkpoint": "m.safetensors"}),
        (["demo", "--data", "gtsrb", "--data-dir", "d", "--max-images", "7", "--seed", "3", "--device", "cpu",
          "--no-progress", "--composite",
          "epsilon_plus", "--lang", "de"], "training", "_DEMO", {}),
        (["train", "--out", "r", "--max-images", "7", "--seed", "3", "--data", "gtsrb", "--data-dir", "d"],
         "training", "_RECIPE", {}),
        (["train", "--out", "r", "--device", "cpu", "--no-progress"], "training", "_RUN", {}),
    ],
)  # fmt: skip
def test_the_shared_flags_reach_the_config_by_field_name(argv, module, exposed, given) -> None:
    import importlib

    flags: ConfigFlags = getattr(importlib.import_module(f"klugerhans.cli.{module}"), exposed)
    args = build_parser().parse_args(argv)
    config = flags.build(args, **given)
    names = {f.name for f in dataclasses.fields(config)}
    checked = 0
    for name in ("data", "data_dir", "split", "max_images", "seed", "device", "composite", "fallback", "lang"):
        if name in names and hasattr(args, name):
            assert getattr(config, name) == getattr(args, name), name
            assert getattr(args, name) != field_defaults(flags.config).get(name), f"{name}: the test gives the default"
            checked += 1
    if "progress" in names:
        assert config.progress is False
        checked += 1
    assert checked >= 2
