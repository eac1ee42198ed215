"""`klugerhans train --arch`: torchvision architectures train with the same recipe and load back by name."""

from __future__ import annotations

import json

import pytest
import torch

from klugerhans.cli import main
from klugerhans.errors import KlugerhansError
from klugerhans.models.checkpoint import load_classifier
from klugerhans.models.recipe import TrainConfig
from klugerhans.models.vgg import ModelConfig


def test_train_resnet18_from_the_cli_loads_back(tiny_data, tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["train", "--data", tiny_data, "--out", str(run), "--epochs", "1", "--batch-size", "32"]
    threads = torch.get_num_threads()
    try:
        assert main([*argv, "--arch", "resnet18", "--device", "cpu", "--no-progress", "--no-augment"]) == 0
    finally:
        torch.set_num_threads(threads)
    clf = load_classifier(run)
    assert clf.meta.model == ModelConfig(family="torchvision", arch="resnet18", input_size=32, num_classes=43)
    assert clf.meta.recipe is not None and clf.meta.recipe.arch == "resnet18"
    assert clf.meta.recipe.model_config() == clf.meta.model
    assert clf.meta.resize == "square"  # trained on sign crops: preprocessed as in training
    assert json.loads((run / "config.json").read_text())["config"]["family"] == "torchvision"
    assert clf.probabilities(torch.randn(2, 3, 32, 32)).shape == (2, 43)


def test_old_recipes_mean_our_vgg():
    old = TrainConfig(width=0.5).to_dict()
    del old["arch"], old["family"]
    recipe = TrainConfig.from_dict(old)
    assert recipe.model_config() == ModelConfig(width=0.5)


def test_recipe_checks_the_architecture():
    with pytest.raises(KlugerhansError, match=r"^resnet18 takes no width multiplier; leave it at 1$"):
        TrainConfig(family="torchvision", arch="resnet18", width=0.5)
    with pytest.raises(KlugerhansError, match="did you mean resnet18"):
        TrainConfig(family="torchvision", arch="resnet181")
