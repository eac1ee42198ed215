"""The user's own classifier: a torchvision, timm or klugerhans architecture with weights trained elsewhere.

``load_user_model("resnet18", "model.pt")`` reads a state_dict (safetensors, or ``torch.save`` output read with
``torch.load(weights_only=True)``: nothing in the file is executed), unwraps the usual containers
(``{"state_dict": ...}``, ``{"model": ...}``, ``module.``/``_orig_mod.`` prefixes), reads the number of classes
from the shape of the architecture's final classification layer, checks every tensor against the architecture and
returns a :class:`~klugerhans.models.checkpoint.Classifier` without a training recipe. ``save_checkpoint`` of that
classifier converts the weights into a klugerhans checkpoint once.
"""

from __future__ import annotations

import os
import pickle
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from klugerhans.errors import CheckpointError, KlugerhansError
from klugerhans.models.architectures import classifier_layer, on_meta, parse_arch
from klugerhans.models.checkpoint import METADATA_KEY, read_header, strip_prefixes
from klugerhans.models.classifier import Classifier, classifier_from_model
from klugerhans.models.config import ModelConfig, create_model, format_arch, model_spec
from klugerhans.models.distributed import resolve_device
from klugerhans.models.meta import CheckpointMeta
from klugerhans.models.preprocess import IMAGENET, Normalization

DEFAULT_IMAGE_SIZE = 224
"""Input side of weights whose training size is not known (ImageNet's evaluation crop), for an architecture of any
size; one made for fixed sizes gets its first."""
WRAPPER_KEYS: tuple[str, ...] = ("state_dict", "model", "model_state_dict", "net")
"""Keys under which training scripts commonly nest the state_dict in a ``torch.save``d dict."""
_SAVE_HINT = "save the weights with torch.save(model.state_dict(), PATH) and pass that file"


def _head(path: Path, n: int = 9) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(n)


def read_weights(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], CheckpointMeta | None]:
    """Read a state_dict from a ``.safetensors`` file or a ``torch.save`` file, never unpickling code.

    Returns:
        ``(state_dict, meta)``: CPU tensors under their plain names (wrappers and prefixes removed) and, for a
        klugerhans checkpoint, its description (None otherwise).

    Raises:
        CheckpointError: a missing or unreadable file, a pickled module or other Python objects, no tensors.
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: no such weights file; check the path")
    meta: CheckpointMeta | None = None
    if _head(p)[8:9] == b"{":  # safetensors: an 8-byte header length, then the JSON header
        header = read_header(p)  # one-line errors for truncated or malformed files
        raw = header.get("__metadata__") or {}
        if isinstance(raw, dict) and METADATA_KEY in raw:
            meta = CheckpointMeta.from_json(raw[METADATA_KEY], source=str(p))
        try:
            obj: Any = load_file(p)
        except (SafetensorError, OSError, ValueError, RuntimeError) as err:
            raise CheckpointError(f"{p}: cannot read the tensors ({str(err).splitlines()[0]})") from None
    else:
        try:
            with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": the refusal below says enough
                warnings.simplefilter("ignore")
                obj = torch.load(p, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as err:
            pickled = "Unsupported global" in str(err) or "Unsupported class" in str(err) or _head(p, 1) == b"\x80"
            if not pickled:
                raise CheckpointError(f"{p}: cannot read weights (not a torch.save file); {_SAVE_HINT}") from None
            raise CheckpointError(
                f"{p}: holds pickled Python objects (a whole model saved with torch.save(model)?), which klugerhans "
                f"never unpickles; {_SAVE_HINT}"
            ) from None
        except Exception as err:  # any format error: a damaged or foreign file
            raise CheckpointError(f"{p}: cannot read weights ({type(err).__name__}); {_SAVE_HINT}") from None
    return _unwrap(obj, p), meta


def _unwrap(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, Mapping) and not all(isinstance(v, torch.Tensor) for v in obj.values()):
        nested = [obj[k] for k in WRAPPER_KEYS if isinstance(obj.get(k), Mapping)]
        obj = nested[0] if nested else obj
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f"{path}: holds no state_dict ({type(obj).__name__}); {_SAVE_HINT}")
    bad = [str(k) for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{path}: entry {bad[0]!r} is not a tensor, so this is no state_dict; {_SAVE_HINT}")
    return {strip_prefixes(str(k)): v for k, v in obj.items()}


def _check_fit(path: Path, state: dict[str, torch.Tensor], config: ModelConfig) -> None:
    """One line naming the first missing, unexpected or mis-shaped tensor."""
    expected = on_meta(lambda: create_model(config)).state_dict()
    name = format_arch(config.family, config.arch)
    for key, ref in expected.items():
        if key not in state:
            raise CheckpointError(f"{path}: weights do not fit {name}: tensor {key} is missing; give the right --arch")
        if tuple(state[key].shape) != tuple(ref.shape):
            raise CheckpointError(
                f"{path}: weights do not fit {name}: tensor {key} has shape {tuple(state[key].shape)}, "
                f"{name} expects {tuple(ref.shape)}; give the right --arch"
            )
    extra = sorted(set(state) - set(expected))
    if extra:
        raise CheckpointError(
            f"{path}: weights do not fit {name}: unexpected tensor {extra[0]} ({len(extra)} in all); "
            "give the right --arch"
        )


def load_user_model(
    arch: str,
    weights: str | os.PathLike[str],
    *,
    image_size: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    class_names: Sequence[str] | None = None,
    device: str = "cpu",
) -> Classifier:
    """Load the user's own classifier: an architecture by name and a state_dict file.

    Args:
        arch: ``"resnet18"`` (torchvision), ``"timm:NAME"`` or ``"klugerhans:vgg11_bn"`` (see ``parse_arch``).
        weights: ``.safetensors``, or ``.pt``/``.pth`` from ``torch.save(model.state_dict(), PATH)``.
        image_size: input side S (default: the size stored with the weights, else 224).
        mean, std: RGB normalisation on the 0..1 scale (default: the stored one, else ImageNet's).
        class_names: one per output (default: the stored ones, else "class 0".."class C-1").
        device: ``cpu``, ``cuda``, ``cuda:N``, ``mps`` or ``auto``.

    Returns:
        A :class:`Classifier` ((N, 3, S, S) -> (N, C)) whose ``meta.recipe`` is None and whose ``preprocess``
        resizes like torchvision's evaluation transforms (short side to S, centre crop) for foreign families.

    Raises:
        KlugerhansError: an unknown architecture, an input size it cannot run, unreadable or pickled weights,
            weights of another architecture, a wrong number of class names, non-finite weights.
    """
    fields = parse_arch(arch)
    spec = model_spec(fields["family"], fields["arch"])
    path = Path(weights)
    state, stored = read_weights(path)
    state = {k: v for k, v in state.items() if not k.startswith(spec.skip_keys)}
    same = stored is not None and (stored.model.family, stored.model.arch) == (fields["family"], fields["arch"])
    size = image_size or (stored.model.input_size if same and stored else None)
    if spec.read_config is not None:
        probe = spec.read_config(state, fields["arch"], size)
    else:
        default = spec.input_sizes[0] if spec.input_sizes else DEFAULT_IMAGE_SIZE
        probe = ModelConfig(family=fields["family"], arch=fields["arch"], input_size=size or default, num_classes=2)
    layer = classifier_layer(on_meta(lambda: create_model(probe)).eval(), probe.input_size)
    key = f"{layer}.weight"
    if key not in state:
        raise CheckpointError(
            f"{path}: no tensor {key} (the classification layer of {arch}); give the --arch these weights belong to"
        )
    config = ModelConfig(**{**probe.to_dict(), "num_classes": int(state[key].shape[0])})  # type: ignore[arg-type]
    _check_fit(path, state, config)
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{path}: tensor {name} holds NaN or infinite values; these weights are broken")
    names = _class_names(class_names, stored, config.num_classes)
    try:
        norm = Normalization(
            tuple(mean or (stored.normalization.mean if same and stored else IMAGENET[0])),  # type: ignore[arg-type]
            tuple(std or (stored.normalization.std if same and stored else IMAGENET[1])),  # type: ignore[arg-type]
        )
    except KlugerhansError as err:
        raise KlugerhansError(f"invalid --mean/--std: {err}") from None
    model = create_model(config)
    model.load_state_dict(state, strict=True)
    meta = CheckpointMeta(model=config, normalization=norm, class_names=names, data={"weights": str(path)})
    return classifier_from_model(model, meta, resolve_device(device))


def _class_names(given: Sequence[str] | None, stored: CheckpointMeta | None, n: int) -> tuple[str, ...]:
    if given is not None:
        if len(given) != n:
            raise KlugerhansError(f"got {len(given)} class names for a model with {n} classes; give {n}")
        return tuple(str(name) for name in given)
    if stored is not None and len(stored.class_names) == n:
        return stored.class_names
    return tuple(f"class {i}" for i in range(n))
