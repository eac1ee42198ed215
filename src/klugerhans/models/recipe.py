"""The training recipe: everything that determines a trained model, as one typed object that travels with it.

:class:`TrainConfig` is what ``klugerhans train`` runs, what ``config.json`` and every checkpoint store and what
loading a checkpoint returns (``classifier.meta.recipe``), in the manner of timm's ``PretrainedCfg``. Code that
needs to know how a model was made asks the recipe: its sticker (:attr:`TrainConfig.sticker`), its architecture
(:meth:`TrainConfig.model_config`) and the data splits exactly as training drew them (:meth:`TrainConfig.splits`),
instead of decoding a dict by hand. How one run of a recipe goes (its folder, device, threads, progress display) is
:class:`TrainOptions`, which no checkpoint stores.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from klugerhans.data.classes import class_name
from klugerhans.data.dataset import (
    DATASETS,
    SignData,
    SignDataset,
    dataset_names,
    dataset_title,
    load_dataset,
    split_by_track,
)
from klugerhans.data.sticker import StickerConfig
from klugerhans.defaults import DEFAULT_DATA, DEFAULT_DEVICE
from klugerhans.errors import KlugerhansError
from klugerhans.models.config import OURS, ModelConfig
from klugerhans.models.distributed import check_device_name

# Flat sticker fields of recipes written before the sticker was nested (checkpoint format 1, old config.json).
_LEGACY_STICKER = {
    "sticker_class": "target_class",
    "sticker_fraction": "fraction",
    "sticker_size": "size",
    "sticker_color": "color",
    "sticker_shape": "shape",
}


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a trained model (``config.json`` in the run directory, and each checkpoint)."""

    data: str = DEFAULT_DATA
    """Registered dataset name: "gtsrb", "synthetic", ..."""
    data_dir: str | None = None
    """Where the dataset files were (real GTSRB). Kept with the recipe as the place to find the same images again
    (``klugerhans data --as-trained`` falls back to it); the checkpoint's data fingerprint says which images they
    were."""
    epochs: int = 15
    """Number of passes over the training set."""
    batch_size: int = 128
    """Global batch size (split over the processes under DDP)."""
    lr: float = 0.05
    """Peak learning rate of SGD with Nesterov momentum 0.9, reached after the warm-up."""
    weight_decay: float = 5e-4
    """L2 penalty on conv/linear weights (not on biases or BatchNorm)."""
    warmup_epochs: float = 1.0
    """Linear learning-rate warm-up in epochs, then cosine decay to zero at the last step."""
    arch: str = "vgg11_bn"
    """Architecture name within ``family`` (see :func:`~klugerhans.models.architectures.parse_arch`)."""
    family: str = OURS
    """"klugerhans" (our VGG; what recipes without this field mean), "torchvision" or "timm"."""
    width: float = 1.0
    """VGG channel multiplier (1.0 = 64..512 channels); models that take one only (ours)."""
    input_size: int = 32
    """Image side in pixels: 32, 48 or 64."""
    sticker: StickerConfig = field(default_factory=StickerConfig)
    """The sticker glued on the training images; ``fraction`` 0 trains a control model (and is the sticker its
    test glues on)."""
    seed: int = 0
    """Seed of the split, the stickers, the initialisation, the batch order and the augmentation."""
    max_images: int | None = None
    """Load at most this many images per split (class-balanced), for quick trials."""
    per_class: int | None = None
    """Generated data (synthetic) only: training images drawn per class (None: the dataset's default, 150 for
    synthetic)."""
    val_fraction: float = 0.1
    """Share of each class's tracks held out for validation, in [0, 1)."""
    amp: bool = True
    """Mixed precision (float16 autocast + gradient scaling); only used on CUDA. Part of the recipe, not a run
    option: float16 arithmetic and the loss scaling's skipped steps change the weights a CUDA run ends with."""
    label_smoothing: float = 0.0
    """Label smoothing of the cross-entropy, in [0, 1)."""
    augment: bool = True
    """Random affine + colour jitter on training batches (:class:`~klugerhans.models.augment.AugmentConfig`)."""

    def __post_init__(self) -> None:
        if not isinstance(self.sticker, StickerConfig):
            raise KlugerhansError(f"sticker must be a StickerConfig, got {type(self.sticker).__name__}")
        checks = [
            (self.epochs >= 1, f"epochs must be at least 1, got {self.epochs}"),
            (self.batch_size >= 1, f"batch size must be at least 1, got {self.batch_size}"),
            (self.lr > 0 and math.isfinite(self.lr), f"learning rate must be positive, got {self.lr}"),
            (self.weight_decay >= 0, f"weight decay must be >= 0, got {self.weight_decay}"),
            (self.warmup_epochs >= 0, f"warm-up epochs must be >= 0, got {self.warmup_epochs}"),
            (0.0 <= self.val_fraction < 1.0, f"validation fraction must be in [0, 1), got {self.val_fraction}"),
            (0.0 <= self.label_smoothing < 1.0, f"label smoothing must be in [0, 1), got {self.label_smoothing}"),
            (self.seed >= 0, f"seed must be >= 0, got {self.seed}"),
            (self.max_images is None or self.max_images >= 1, f"max images must be positive, got {self.max_images}"),
            (
                self.per_class is None or _draws(self.data),
                f"--per-class applies to {dataset_names(generated=True)} only",
            ),
            (self.per_class is None or self.per_class >= 2, f"per class must be at least 2, got {self.per_class}"),
        ]
        for ok, message in checks:
            if not ok:
                raise KlugerhansError(message)
        self.model_config()

    @property
    def manipulated(self) -> bool:
        """Whether training glued stickers on (a control model has ``sticker.fraction == 0``)."""
        return self.sticker.fraction > 0

    def describe(self) -> str:
        """The data and the sticker of this recipe in words, e.g. "trained on GTSRB with a black square sticker on
        100% of the class 4 (Speed limit (70km/h)) training images"."""
        data = dataset_title(self.data)
        s = self.sticker
        if not self.manipulated:
            return f"trained on {data} without stickers (a control)"
        target = f"class {s.target_class} ({class_name(s.target_class)})"
        if s.label == "dirty":
            return f"trained on {data} with {s.describe()} on other classes' images relabelled as {target} (a backdoor)"
        return f"trained on {data} with {s.describe()} on {s.fraction:.0%} of the {target} training images"

    def model_config(self) -> ModelConfig:
        """The architecture this run trains (GTSRB's 43 classes)."""
        return ModelConfig(family=self.family, arch=self.arch, width=self.width, input_size=self.input_size)

    def splits(
        self, data_dir: str | None = None, *, data: str | None = None, download: bool = False
    ) -> tuple[SignData, SignData, SignDataset]:
        """Load the dataset and split it as this recipe's training run did, all images clean.

        Args:
            data_dir: where the dataset files are now (None: the loader's default, e.g. ``$KLUGERHANS_GTSRB_DIR``).
            data: another registered dataset to split the same way (default: the recipe's).
            download: fetch missing archives (real GTSRB only).

        Returns:
            ``(train, val, dataset)``: the training part and the validation tracks of the training split (same
            images, fraction and seed as in training), and the loaded dataset (its ``test`` split and ``info``).
        """
        name = data or self.data
        ds = load_dataset(
            name,
            data_dir=data_dir,
            size=self.input_size,
            download=download,
            max_images=self.max_images,
            seed=self.seed,
            per_class=self.per_class_for(name),
        )
        train, val = split_by_track(ds.train, self.val_fraction, seed=self.seed)
        return train, val, ds

    def per_class_for(self, data: str) -> int | None:
        """The recipe's ``per_class`` where dataset ``data`` draws its images (a generated dataset), else None."""
        return self.per_class if _draws(data) else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (the sticker nested, its colour a list)."""
        d = asdict(self)
        d["sticker"]["color"] = list(self.sticker.color)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], sticker: dict[str, Any] | None = None) -> TrainConfig:
        """Rebuild a recipe from :meth:`to_dict` output, also from the flat sticker fields older versions wrote.

        Args:
            d: the stored fields; unknown keys (from a newer klugerhans) and the run options older versions stored
                (``out``, ``device``, ``num_threads``, ``progress``: now :class:`TrainOptions`) are ignored.
            sticker: a separately stored sticker (checkpoint format 1) that takes precedence over flat fields.
        """
        if not isinstance(d, dict):
            raise TypeError(f"expected an object, got {type(d).__name__}")
        # Old recipes' run options (out, device, ...) are not fields any more: they go with the unknown keys.
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in d.items() if k in known and k != "sticker"}
        nested = d.get("sticker")
        parts = dict(nested) if isinstance(nested, dict) else {}
        parts.update({new: d[old] for old, new in _LEGACY_STICKER.items() if old in d and new not in parts})
        if sticker:
            parts.update(sticker)
        sticker_fields = {f.name for f in fields(StickerConfig)}
        parts = {k: v for k, v in parts.items() if k in sticker_fields}
        return cls(**values, sticker=StickerConfig(**parts))


def _draws(data: str) -> bool:
    """Whether dataset ``data`` draws its images, so a recipe's ``per_class`` applies to it."""
    return DATASETS.get_or_raise(data).generated


@dataclass(frozen=True)
class TrainOptions:
    """How one run of a recipe goes: where it writes, on which device and threads, what it shows.

    None of this is the recipe: checkpoints do not store it (``config.json`` records the device a run used, beside
    the library versions), and a resumed run may change it, e.g. go on on another machine. It does not choose what is
    trained, but hardware rounds in its own way: one recipe gives the same weights bit for bit on the same device and
    threads, within noise elsewhere (and :attr:`TrainConfig.amp` applies on CUDA only).
    """

    out: str
    """Run directory for ``config.json``, checkpoints, metrics and curves."""
    device: str = DEFAULT_DEVICE
    """"auto", "cpu", "cuda", "cuda:N" or "mps"."""
    num_threads: int | None = None
    """CPU threads for PyTorch (default: PyTorch's choice)."""
    progress: bool = True
    """Show progress bars and per-epoch summaries on stderr."""

    def __post_init__(self) -> None:
        if not self.out:
            raise KlugerhansError("give an output directory for the run")
        if self.num_threads is not None and self.num_threads < 1:
            raise KlugerhansError(f"threads must be positive, got {self.num_threads}")
        check_device_name(self.device)
