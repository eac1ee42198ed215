"""A dataset, model or architecture family registered by a user works wherever the built-in ones do: its registry
entry declares what it can do (:class:`~klugerhans.data.dataset.DatasetSpec`,
:class:`~klugerhans.models.config.ModelSpec`, :class:`~klugerhans.models.config.Family`), so no code asks for a name
such as "folder", "synthetic" or "klugerhans"."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from klugerhans.audit.config import AuditConfig
from klugerhans.audit.run import load_audit_data
from klugerhans.cli import main
from klugerhans.data.dataset import DATASETS, SignData, SignDataset, load_dataset, register_dataset
from klugerhans.errors import KlugerhansError
from klugerhans.models.architectures import parse_arch
from klugerhans.models.checkpoint import CheckpointMeta, Classifier, classifier_from_model
from klugerhans.models.config import (
    FAMILIES,
    MODELS,
    Family,
    ModelConfig,
    ModelSpec,
    create_model,
    format_arch,
    register_family,
    register_model,
)
from klugerhans.models.evaluation import load_split
from klugerhans.models.recipe import TrainConfig
from klugerhans.models.user_weights import load_user_model

CLASSES = 5
asked: list[dict[str, object]] = []
"""The keyword arguments each loader of this module was called with, latest last."""


def _squares(per_class: int, size: int, seed: int) -> SignData:
    """``per_class`` noisy grey images of each of :data:`CLASSES` classes, the sign box in the middle."""
    rng = np.random.default_rng(seed)
    n = per_class * CLASSES
    return SignData(
        images=rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8),
        labels=np.repeat(np.arange(CLASSES, dtype=np.int64), per_class),
        tracks=np.arange(n, dtype=np.int64),
        boxes=np.tile(np.array([size / 4, size / 4, 3 * size / 4, 3 * size / 4], dtype=np.float32), (n, 1)),
        sources=np.array([f"drawn/{i}" for i in range(n)]),
    )


def _drawn(*, data_dir=None, size=32, download=False, max_images=None, seed=0, train_per_class=4) -> SignDataset:
    asked.append({"size": size, "train_per_class": train_per_class})
    return SignDataset(_squares(train_per_class, size, seed), _squares(2, size, seed + 1), {"name": "drawn"})


def _photos(*, data_dir=None, size=32, download=False, max_images=None, seed=0, lazy=False) -> SignDataset:
    asked.append({"size": size, "lazy": lazy})
    info = {"name": "photos", "class_names": list(_photo_classes(data_dir))}
    return SignDataset(_squares(2, size, seed), _squares(2, size, seed + 1), info)


def _photo_classes(data_dir: str | None) -> tuple[str, ...]:
    return tuple(f"kind {c}" for c in range(CLASSES))


@pytest.fixture
def registered() -> Iterator[None]:
    """ "drawn": generated, any size, with a title; "photos": lazy, with classes of its own. Removed afterwards."""
    register_dataset("drawn", title="drawn squares", sizes=None, generated=True)(_drawn)
    register_dataset("photos", lazy=True, class_names=_photo_classes)(_photos)
    asked.clear()
    yield
    for name in ("drawn", "photos"):
        DATASETS.pop(name)


def _classifier(recipe: TrainConfig | None = None) -> Classifier:
    torch.manual_seed(0)
    config = ModelConfig(width=0.125, num_classes=CLASSES)
    names = tuple(str(c) for c in range(CLASSES))
    return classifier_from_model(create_model(config), CheckpointMeta(config, class_names=names, recipe=recipe))


def test_a_generated_dataset_of_any_size_takes_per_class_and_its_title(registered: None) -> None:
    ds = load_dataset("drawn", size=20, per_class=3)
    assert asked[-1] == {"size": 20, "train_per_class": 3} and ds.train.size == 20 and len(ds.train) == 15
    recipe = TrainConfig(data="drawn", per_class=3, val_fraction=0.2)
    assert recipe.describe().startswith("trained on drawn squares with")
    train, val, _ = recipe.splits()
    assert asked[-1]["train_per_class"] == 3 and len(train) + len(val) == 15
    # The other entry declares neither: the defaults refuse what it cannot do, naming the datasets that can.
    with pytest.raises(KlugerhansError, match=r"^unsupported image size 20: use 32, 48 or 64$"):
        load_dataset("photos", size=20)
    with pytest.raises(KlugerhansError, match=r"images per class drawn, synthetic draws; 'photos' is read from files"):
        load_dataset("photos", per_class=3)
    with pytest.raises(KlugerhansError, match=r"^--per-class applies to drawn, synthetic only$"):
        TrainConfig(data="photos", per_class=3)


def test_a_lazy_dataset_with_classes_of_its_own_is_read_lazily_and_audited_as_given(registered: None) -> None:
    load_dataset("photos", lazy=True)
    assert asked[-1]["lazy"] is True
    with pytest.raises(KlugerhansError, match=r"^'drawn' is decoded into memory; only folder, photos can be read"):
        load_dataset("drawn", lazy=True)
    clf = _classifier(TrainConfig(data="drawn"))  # a manipulated recipe: its sticker is on class 4
    _, ds = load_split(clf, "photos", "test", lazy=True)
    assert asked[-1]["lazy"] is True and ds.info["name"] == "photos"
    _, ds = load_split(clf, "drawn", "test", lazy=True)  # asked lazily where the data cannot be: read as it can
    assert "lazy" not in asked[-1] and ds.info["name"] == "drawn"

    def audit(data: str) -> dict[str, object]:
        return load_audit_data(AuditConfig(checkpoint="-", data=data, progress=False), clf)[2]

    as_given = audit("photos")
    assert asked[-1]["lazy"] is True and not as_given["artefacts_reproduced"]
    reproduced = audit("drawn")
    assert reproduced["artefacts_reproduced"] and reproduced["n_with_artefact"] > 0


def test_the_teaching_case_figure_needs_gtsrb_classes(
    registered: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "figure.png"
    assert main(["figure", "--data", "photos", "--out", str(out)]) == 2
    assert "the teaching case's figure needs GTSRB's stop" in capsys.readouterr().err and not out.exists()


def _tiny_net(config: ModelConfig) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, config.num_classes)
    )


@pytest.fixture
def tiny_net() -> Iterator[None]:
    """Our family's "tiny_net": 32 px only, no width multiplier. Removed afterwards."""
    register_model("tiny_net", input_sizes=(32,), width=False)(_tiny_net)
    yield
    MODELS.pop("tiny_net")


def test_a_registered_model_is_checked_named_and_loaded_by_the_cli(
    tiny_net: None, registered: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(KlugerhansError, match=r"^klugerhans:tiny_net takes no width multiplier"):
        ModelConfig(arch="tiny_net", width=0.5)
    with pytest.raises(KlugerhansError, match=r"^input size must be one of \(32,\), got 48$"):
        ModelConfig(arch="tiny_net", input_size=48)
    assert parse_arch("klugerhans:tiny_net") == {"family": "klugerhans", "arch": "tiny_net"}
    weights = tmp_path / "tiny.safetensors"
    save_file(create_model(arch="tiny_net", num_classes=CLASSES).state_dict(), str(weights))
    clf = load_user_model("klugerhans:tiny_net", weights)  # no size given: the model's own, not 224
    assert clf.input_size == 32 and clf.meta.resize == "square" and clf.meta.model.num_classes == CLASSES
    # --arch takes it, and the data's own class names name the weights' outputs.
    code = main(["evaluate", "--arch", "klugerhans:tiny_net", "--weights", str(weights), "--data", "photos",
                 "--device", "cpu", "--split", "test"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and "weakest classes: " in out and "kind " in out


def test_a_registered_family_is_named_checked_and_built(tmp_path: Path) -> None:
    spec = ModelSpec(_tiny_net, input_sizes=None, min_input_size=8, width=False, resize="center_crop")
    register_family("toy")(Family(lambda: ("net",), lambda arch: spec))
    try:
        assert parse_arch("toy:net") == {"family": "toy", "arch": "net"} and format_arch("toy", "net") == "toy:net"
        with pytest.raises(KlugerhansError, match=r"^unknown architecture toy:nte: did you mean net\?"):
            parse_arch("toy:nte")
        with pytest.raises(KlugerhansError, match=r"^input size 4 px is too small for toy:net; give at least 8$"):
            ModelConfig(family="toy", arch="net", input_size=4)
        config = ModelConfig(family="toy", arch="net", input_size=12, num_classes=CLASSES)
        assert create_model(config)(torch.zeros(2, 3, 12, 12)).shape == (2, CLASSES)
        assert CheckpointMeta(config, class_names=tuple("abcde")).resize == "center_crop"
    finally:
        FAMILIES.pop("toy")
