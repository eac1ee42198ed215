"""Checkpoints: safetensors weights with a JSON description, validated before anything is loaded.

A checkpoint is one ``.safetensors`` file. Its header metadata holds, under the key ``"klugerhans"``, a
:class:`~klugerhans.models.meta.CheckpointMeta` as JSON: the architecture, the input normalisation, the class names,
the training recipe (:class:`~klugerhans.models.recipe.TrainConfig`, with its sticker), where the data came from and
the metrics. :func:`load_classifier` reads one into a :class:`~klugerhans.models.classifier.Classifier`.
Loading never unpickles anything: the header is parsed as JSON and checked (format, metadata, tensor names, shapes
and dtypes against the architecture it claims, file length) before any tensor is read.

``CheckpointMeta``, ``FORMAT_VERSION``, ``Classifier``, ``classifier_from_model`` and ``to_jsonable`` lived here and
are still importable from here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as save_safetensors
from torch import nn

from klugerhans.errors import CheckpointError
from klugerhans.io import atomic_write_bytes
from klugerhans.io import to_jsonable as to_jsonable
from klugerhans.models.architectures import on_meta
from klugerhans.models.classifier import Classifier, classifier_from_model
from klugerhans.models.config import create_model, format_arch
from klugerhans.models.distributed import resolve_device
from klugerhans.models.meta import FORMAT_VERSION as FORMAT_VERSION
from klugerhans.models.meta import CheckpointMeta

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


def strip_prefixes(name: str) -> str:
    """A state_dict key without the wrappers' prefixes: DistributedDataParallel's ``module.``, torch.compile's
    ``_orig_mod.``."""
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
        tensors[strip_prefixes(name)] = t.contiguous()
    data = save_safetensors(tensors, metadata={METADATA_KEY: meta.to_json()})
    atomic_write_bytes(path, data)
    return Path(path)


def read_header(path: Path) -> dict[str, Any]:
    """Parse and sanity-check a safetensors header without reading tensor data (one-line errors for truncated or
    malformed files)."""
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
    header = read_header(p)
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
