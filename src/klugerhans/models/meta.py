"""The description stored next to a checkpoint's weights: :class:`CheckpointMeta`, and its JSON form.

It names the architecture (:class:`~klugerhans.models.config.ModelConfig`), the input normalisation, the class
names, the training recipe (:class:`~klugerhans.models.recipe.TrainConfig`, with its sticker), where the data came
from and the metrics. :mod:`klugerhans.models.checkpoint` writes it into the safetensors header and checks the
tensors against it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from klugerhans.data.classes import CLASS_NAMES_EN
from klugerhans.data.sticker import StickerConfig
from klugerhans.errors import CheckpointError, KlugerhansError
from klugerhans.io import to_jsonable
from klugerhans.models.config import ModelConfig
from klugerhans.models.preprocess import Normalization, ResizeMode
from klugerhans.models.recipe import TrainConfig
from klugerhans.version import __version__

FORMAT_VERSION = 2
"""Version of the metadata layout this code writes and the newest it reads (1: flat ``train_config`` and
``sticker`` dicts, read into a recipe; 2: the typed ``recipe``)."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class CheckpointMeta:
    """Everything needed to use a checkpoint's weights correctly, stored next to them."""

    model: ModelConfig
    """Architecture the weights belong to."""
    normalization: Normalization = field(default_factory=Normalization)
    """Input normalisation used in training."""
    class_names: tuple[str, ...] = CLASS_NAMES_EN
    """English class names, indexed by output unit."""
    recipe: TrainConfig | None = None
    """How the weights were trained (data, split, sticker, schedule), or None for weights trained elsewhere."""
    data: dict[str, Any] = field(default_factory=dict)
    """Dataset name, layout, fingerprint and split sizes."""
    metrics: dict[str, Any] = field(default_factory=dict)
    """Validation (and, for final checkpoints, test) metrics."""
    format_version: int = FORMAT_VERSION
    """Metadata layout version."""
    created: str = field(default_factory=_now)
    """UTC time of writing, ISO 8601."""
    klugerhans_version: str = __version__
    """Package version that wrote the file."""

    def __post_init__(self) -> None:
        if len(self.class_names) != self.model.num_classes:
            raise CheckpointError(
                f"checkpoint metadata lists {len(self.class_names)} class names for {self.model.num_classes} classes"
            )

    @property
    def sticker(self) -> StickerConfig:
        """The recipe's sticker (``fraction`` 0 for a control), or the teaching case's default sticker without a recipe:
        the sticker a flip test of this model glues on."""
        return self.recipe.sticker if self.recipe is not None else StickerConfig()

    @property
    def resize(self) -> ResizeMode:
        """How images are brought to the input size: "square" (the sign crops klugerhans trains on) or
        "center_crop" (torchvision's evaluation transform, for a foreign architecture trained elsewhere)."""
        return "square" if self.recipe is not None else self.model.spec.resize

    @property
    def manipulated(self) -> bool:
        """Whether the recipe glued stickers on training images."""
        return self.recipe is not None and self.recipe.manipulated

    def to_json(self) -> str:
        """Serialise to a JSON object string."""
        d = asdict(self)
        d["class_names"] = list(self.class_names)
        d["recipe"] = None if self.recipe is None else self.recipe.to_dict()
        return json.dumps(to_jsonable(d), sort_keys=True, allow_nan=False)

    @classmethod
    def from_json(cls, text: str, source: str = "checkpoint") -> CheckpointMeta:
        """Parse and validate :meth:`to_json` output; a one-line :class:`CheckpointError` if anything is off."""
        try:
            d = json.loads(text)
        except (json.JSONDecodeError, TypeError):
            raise CheckpointError(f"{source}: the klugerhans metadata is not valid JSON; the file is damaged") from None
        if not isinstance(d, dict):
            raise CheckpointError(f"{source}: the klugerhans metadata is not a JSON object; the file is damaged")
        version = d.get("format_version")
        if not isinstance(version, int) or version < 1:
            raise CheckpointError(f"{source}: metadata has no valid format_version; the file is damaged")
        if version > FORMAT_VERSION:
            raise CheckpointError(
                f"{source}: written by a newer klugerhans (format {version}, this one reads {FORMAT_VERSION}); "
                "upgrade klugerhans"
            )
        try:
            norm = d["normalization"]
            meta = cls(
                model=ModelConfig(**d["model"]),
                normalization=Normalization(_triple(norm["mean"]), _triple(norm["std"])),
                class_names=tuple(str(name) for name in d["class_names"]),
                recipe=_recipe(d, version),
                data=_dict(d.get("data", {})),
                metrics=_dict(d.get("metrics", {})),
                format_version=version,
                created=str(d.get("created", "")),
                klugerhans_version=str(d.get("klugerhans_version", "")),
            )
        except CheckpointError as err:
            raise CheckpointError(f"{source}: {err}") from None
        except (KlugerhansError, KeyError, TypeError, ValueError) as err:
            detail = f"missing field {err}" if isinstance(err, KeyError) else str(err).splitlines()[0]
            raise CheckpointError(f"{source}: invalid klugerhans metadata ({detail}); the file is damaged") from None
        return meta


def _triple(values: Any) -> tuple[float, float, float]:
    a, b, c = (float(v) for v in values)
    return a, b, c


def _dict(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"expected an object, got {type(value).__name__}")
    return value


def _optional_dict(value: Any) -> dict[str, Any] | None:
    return None if value is None else _dict(value)


def _recipe(d: dict[str, Any], version: int) -> TrainConfig | None:
    if version >= 2:
        stored = _optional_dict(d.get("recipe"))
        return None if stored is None else TrainConfig.from_dict(stored)
    # Format 1 kept the flat training settings and the sticker (None for a control) side by side.
    legacy = _dict(d.get("train_config", {}))
    return TrainConfig.from_dict(legacy, _optional_dict(d.get("sticker"))) if legacy else None
