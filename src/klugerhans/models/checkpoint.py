"""Checkpoints: safetensors weights with a JSON description, validated before anything is loaded.

A checkpoint is one ``.safetensors`` file. Its header metadata holds, under the key ``"klugerhans"``, a
:class:`CheckpointMeta` as JSON: the architecture, the input normalisation, the class names, the training recipe
(:class:`~klugerhans.models.recipe.TrainConfig`, with its sticker), where the data came from and the metrics.
Loading never unpickles anything: the header is parsed as JSON and checked (format, metadata, tensor names, shapes
and dtypes against the architecture it claims, file length) before any tensor is read.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as save_safetensors
from torch import nn

from klugerhans.data.classes import CLASS_NAMES_EN
from klugerhans.data.sticker import StickerConfig
from klugerhans.errors import CheckpointError, KlugerhansError
from klugerhans.io import atomic_write_bytes
from klugerhans.models.architectures import on_meta
from klugerhans.models.config import ModelConfig, create_model, format_arch
from klugerhans.models.distributed import resolve_device
from klugerhans.models.preprocess import Normalization, ResizeMode, make_preprocess
from klugerhans.models.recipe import TrainConfig
from klugerhans.version import __version__

FORMAT_VERSION = 2
"""Version of the metadata layout this code writes and the newest it reads (1: flat ``train_config`` and
``sticker`` dicts, read into a recipe; 2: the typed ``recipe``)."""
METADATA_KEY = "klugerhans"
"""Key of the JSON description in the safetensors header metadata."""
RELEASED_WEIGHTS: tuple[str, ...] = ("manipulated", "control")
"""Names of weights that may ship inside the package (``klugerhans/weights/<name>.safetensors``)."""
RUN_CHECKPOINTS: tuple[str, ...] = ("best.safetensors", "last.safetensors")
"""Files looked for, in order, when a run directory is given."""
_MAX_HEADER = 100_000_000
# safetensors dtype codes accepted for floating-point tensors (fp16/bf16 for small released files).
_FLOAT_CODES = {"F32", "F16", "BF16"}
_INT_CODES = {torch.int64: "I64", torch.int32: "I32"}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def to_jsonable(obj: Any) -> Any:
    """Convert NumPy/torch scalars and arrays, tuples and non-finite floats (-> None) into plain JSON values."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray | torch.Tensor):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return to_jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


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


def _strip_prefixes(name: str) -> str:
    # DistributedDataParallel wraps the model as "module.", torch.compile as "_orig_mod.".
    for prefix in ("module.", "_orig_mod."):
        while name.startswith(prefix):
            name = name[len(prefix) :]
    return name


def save_checkpoint(
    path: str | os.PathLike[str], model: nn.Module, meta: CheckpointMeta, dtype: torch.dtype | None = None
) -> Path:
    """Write ``model``'s weights and ``meta`` to a safetensors file, atomically.

    Args:
        path: target ``.safetensors`` file (parent folders are created).
        model: the classifier, possibly wrapped in DistributedDataParallel.
        meta: its description.
        dtype: cast floating-point tensors to this dtype (``torch.float16`` halves released weights).
    """
    tensors: dict[str, torch.Tensor] = {}
    for name, tensor in model.state_dict().items():
        t = tensor.detach().cpu()
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        tensors[_strip_prefixes(name)] = t.contiguous()
    data = save_safetensors(tensors, metadata={METADATA_KEY: meta.to_json()})
    atomic_write_bytes(path, data)
    return Path(path)


def _read_header(path: Path) -> dict[str, Any]:
    """Parse and sanity-check a safetensors header without reading tensor data."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        prefix = fh.read(8)
        if len(prefix) < 8:
            raise CheckpointError(f"{path}: not a safetensors file (only {size} bytes); give a klugerhans checkpoint")
        n = int.from_bytes(prefix, "little")
        head = fh.read(min(n, size - 8, _MAX_HEADER))
    if not head.startswith(b"{") or n > _MAX_HEADER:
        raise CheckpointError(
            f"{path}: not a safetensors file; klugerhans only loads .safetensors checkpoints "
            "(pickled .pt/.pth files are refused because loading them can run code)"
        )
    if n > size - 8:
        raise CheckpointError(f"{path}: the file is truncated (header cut off); copy or download it again")
    try:
        header = json.loads(head)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CheckpointError(
            f"{path}: not a safetensors file (unreadable header); give a klugerhans checkpoint"
        ) from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: not a safetensors file (unreadable header); give a klugerhans checkpoint")
    end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            end = max(end, int(info["data_offsets"][1]))
        except (KeyError, IndexError, TypeError, ValueError):
            raise CheckpointError(f"{path}: malformed safetensors entry {name!r}; the file is damaged") from None
    if 8 + n + end > size:
        raise CheckpointError(
            f"{path}: the file is truncated ({size} of {8 + n + end} bytes); copy or download it again"
        )
    return header


def _check_tensors(path: Path, header: dict[str, Any], meta: CheckpointMeta) -> None:
    """Compare tensor names, shapes and dtypes in ``header`` with the architecture ``meta`` describes."""
    expected = on_meta(lambda: create_model(meta.model)).state_dict()
    stored = {k: v for k, v in header.items() if k != "__metadata__"}
    m = meta.model
    width = f"width {m.width}, " if m.spec.width else ""
    arch = f"{format_arch(m.family, m.arch)} ({width}{m.num_classes} classes)"
    missing = sorted(set(expected) - set(stored))
    extra = sorted(set(stored) - set(expected))
    if missing or extra:
        what = f"missing {missing[:3]}" if missing else f"unexpected {extra[:3]}"
        raise CheckpointError(f"{path}: tensors do not match {arch}: {what}; the file is damaged or not ours")
    for name, ref in expected.items():
        info = stored[name]
        shape = tuple(info.get("shape", ()))
        if shape != tuple(ref.shape):
            raise CheckpointError(
                f"{path}: tensor {name} has shape {shape} but {arch} expects {tuple(ref.shape)}; "
                "the metadata does not describe these weights"
            )
        code = info.get("dtype")
        allowed = _FLOAT_CODES if ref.is_floating_point() else {_INT_CODES.get(ref.dtype, "I64")}
        if code not in allowed:
            raise CheckpointError(
                f"{path}: tensor {name} is stored as {code}, expected one of {', '.join(sorted(allowed))}"
            )


def read_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], CheckpointMeta]:
    """Read and validate a checkpoint file.

    Returns:
        ``(state_dict, meta)``: CPU tensors as stored (float16 stays float16) and the description.

    Raises:
        CheckpointError: not a file, not safetensors, truncated, missing/invalid metadata, or tensors that do
            not match the architecture the metadata claims.
    """
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"{p}: no such checkpoint file; check the path")
    if not p.is_file():
        raise CheckpointError(f"{p}: not a file; give a .safetensors checkpoint or a training run directory")
    header = _read_header(p)
    raw = header.get("__metadata__", {}) or {}
    if not isinstance(raw, dict) or METADATA_KEY not in raw:
        raise CheckpointError(f"{p}: a safetensors file without klugerhans metadata; train one with `klugerhans train`")
    meta = CheckpointMeta.from_json(raw[METADATA_KEY], source=str(p))
    _check_tensors(p, header, meta)
    try:
        state = load_file(p)
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{p}: cannot read the tensors ({str(err).splitlines()[0]})") from None
    # NaN weights would give NaN probabilities everywhere downstream; refuse them here, where the cause is known.
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(
                f"{p}: tensor {name} holds NaN or infinite values (a diverged training run?); "
                "train again, e.g. with a lower --lr"
            )
    return state, meta


def resolve_checkpoint(name_or_path: str | os.PathLike[str]) -> Path:
    """Find the checkpoint file for a path, a run directory (best, else last) or a released-weights name."""
    p = Path(name_or_path)
    if p.is_dir():
        for name in RUN_CHECKPOINTS:
            if (p / name).is_file():
                return p / name
        raise CheckpointError(
            f"{p}: directory has no {' or '.join(RUN_CHECKPOINTS)}; give a run directory of `klugerhans train` "
            "or a .safetensors file"
        )
    if p.exists() or str(name_or_path) not in RELEASED_WEIGHTS:
        if not p.exists():
            raise CheckpointError(
                f"{p}: no such checkpoint; give a .safetensors file, a run directory or one of "
                f"{', '.join(RELEASED_WEIGHTS)}"
            )
        return p
    released = resources.files("klugerhans") / "weights" / f"{name_or_path}.safetensors"
    if not released.is_file():
        raise CheckpointError(
            f"no released weights {str(name_or_path)!r} in this install; train one with `klugerhans train` "
            "and pass --checkpoint RUN_DIR"
        )
    return Path(str(released))


@dataclass
class Classifier:
    """A loaded classifier ready for inference, with the preprocessing it was trained with."""

    model: nn.Module
    """The network in eval mode, float32, on ``device``; (N, 3, S, S) -> (N, C) logits."""
    meta: CheckpointMeta
    """The checkpoint's description."""
    preprocess: Callable[[Image.Image], torch.Tensor]
    """PIL image -> (3, S, S) normalised tensor, exactly as in training."""
    device: torch.device
    """Where the model runs."""
    input_size: int
    """Side S of the input in pixels."""

    @property
    def class_names(self) -> tuple[str, ...]:
        """English class names indexed by output unit."""
        return self.meta.class_names

    @torch.no_grad()
    def logits(self, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """(N, 3, S, S) normalised inputs -> (N, C) float32 logits on the CPU, computed in batches."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise KlugerhansError(f"expected inputs of shape (N, 3, S, S), got {tuple(x.shape)}")
        out = [
            self.model(x[i : i + batch_size].to(self.device, torch.float32)).float().cpu()
            for i in range(0, len(x), max(1, batch_size))
        ]
        if not out:
            return torch.empty(0, self.meta.model.num_classes)
        return torch.cat(out)

    def probabilities(self, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """(N, 3, S, S) normalised inputs -> (N, C) class probabilities on the CPU."""
        return torch.softmax(self.logits(x, batch_size), dim=1)


def classifier_from_model(model: nn.Module, meta: CheckpointMeta, device: torch.device | str = "cpu") -> Classifier:
    """Wrap an in-memory model (e.g. one just trained) as a :class:`Classifier`; sets eval mode and float32."""
    dev = torch.device(device)
    model = model.to(device=dev, dtype=torch.float32).eval()
    return Classifier(
        model=model,
        meta=meta,
        preprocess=make_preprocess(meta.model.input_size, meta.normalization, meta.resize),
        device=dev,
        input_size=meta.model.input_size,
    )


def load_classifier(name_or_path: str | os.PathLike[str] = "manipulated", device: str = "cpu") -> Classifier:
    """Load a classifier from a ``.safetensors`` file, a run directory or a released-weights name.

    Args:
        name_or_path: file, run directory (its ``best.safetensors``, else ``last.safetensors``), or
            ``"manipulated"``/``"control"`` for weights shipped with the package.
        device: ``cpu``, ``cuda``, ``cuda:N``, ``mps`` or ``auto``.
    """
    path = resolve_checkpoint(name_or_path)
    state, meta = read_checkpoint(path)
    model = create_model(meta.model)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:  # pragma: no cover - _check_tensors catches mismatches first
        raise CheckpointError(f"{path}: weights do not fit the architecture ({str(err).splitlines()[0]})") from None
    return classifier_from_model(model, meta, resolve_device(device))


def load_model(
    name_or_path: str | os.PathLike[str] = "manipulated", device: str = "cpu"
) -> tuple[nn.Module, Callable[[Image.Image], torch.Tensor]]:
    """Load a trained classifier and its preprocessing: ``model, preprocess = klugerhans.load_model()``.

    Returns:
        ``(model, preprocess)``: the network in eval mode ((N, 3, S, S) -> (N, 43) logits) and a function
        PIL image -> (3, S, S) tensor that prepares images exactly as in training.
    """
    clf = load_classifier(name_or_path, device)
    return clf.model, clf.preprocess
