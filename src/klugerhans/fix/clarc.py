"""Projective Class Artifact Compensation (P-ClArC; Anders et al., "Finding and removing Clever Hans: Using
explanation methods to debug and improve deep models", Information Fusion 2022).

The artefact is a direction (here: a low-dimensional subspace) in the activations the classifier head reads. It is
estimated from pairs: each image of the suspicious class as it is, and the same image with the artefact that LRP
located removed (:mod:`klugerhans.fix.inpaint`); the differences of their penultimate features span the artefact's
subspace ``V`` (their leading singular vectors). P-ClArC then moves every activation's component in ``V`` to that of
the artefact-free reference ``z`` (the mean feature of the cleaned images): ``h' = h - V V^T (h - z)``. The map is
affine and sits right before the first linear layer of the head, so it is folded into that layer's weights and bias:
the repaired model is an ordinary VGG (same checkpoint format, LRP works unchanged).

Optionally the head is then fine-tuned on the projected features (the convolutional layers stay frozen, so nothing
below the projection can re-encode the artefact), which teaches it to recognise the class from what is left.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from klugerhans.errors import KlugerhansError
from klugerhans.models.preprocess import Normalization, to_tensor

__all__ = [
    "ArtefactSubspace",
    "artefact_subspace",
    "fold_projection",
    "penultimate_features",
    "project_features",
    "train_head",
]


@dataclass(frozen=True)
class ArtefactSubspace:
    """The artefact's subspace of the penultimate features and the artefact-free reference point."""

    basis: torch.Tensor
    """(D, k) orthonormal columns spanning the artefact directions."""
    reference: torch.Tensor
    """(D,) mean feature of the images with the artefact removed."""
    energy: float
    """Share of the paired differences' squared norm that the ``k`` directions capture."""


def _head_input_layer(model: nn.Module) -> nn.Linear:
    head = getattr(model, "classifier", None)
    first = head[0] if isinstance(head, nn.Sequential) and len(head) else None
    if not isinstance(first, nn.Linear) or not hasattr(model, "features"):
        raise KlugerhansError("P-ClArC needs a VGG-style model: features -> avgpool -> classifier[0] = Linear")
    return first


@torch.no_grad()
def penultimate_features(
    model: nn.Module, images: np.ndarray, norm: Normalization, batch_size: int = 256
) -> torch.Tensor:
    """(N, S, S, 3) uint8 images -> (N, D) float32 inputs of the head's first linear layer (on the CPU)."""
    _head_input_layer(model)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    for i in range(0, len(images), batch_size):
        x = to_tensor(torch.from_numpy(np.ascontiguousarray(images[i : i + batch_size])).to(device), norm)
        h = model.avgpool(model.features(x))  # type: ignore[operator]
        out.append(torch.flatten(h, 1).float().cpu())
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0, _head_input_layer(model).in_features)


def artefact_subspace(
    with_artefact: torch.Tensor, without: torch.Tensor, energy: float = 0.9, max_dims: int = 8
) -> ArtefactSubspace:
    """Estimate the artefact subspace from paired features (row ``i`` of both: the same image).

    Args:
        with_artefact: (N, D) features of the images as they are.
        without: (N, D) features of the same images with the located artefact removed.
        energy: keep the fewest leading directions that capture this share of the differences' squared norm.
        max_dims: but at most this many.
    """
    if with_artefact.shape != without.shape or with_artefact.ndim != 2 or len(with_artefact) < 2:
        raise KlugerhansError(
            f"need two (N, D) feature sets of the same shape, N >= 2; got {tuple(with_artefact.shape)}"
        )
    if not 0.0 < energy <= 1.0 or max_dims < 1:
        raise KlugerhansError(f"energy must be in (0, 1] and max_dims >= 1, got {energy}, {max_dims}")
    diff = (with_artefact - without).double()
    _, s, vh = torch.linalg.svd(diff, full_matrices=False)
    power = s**2
    total = float(power.sum())
    if total <= 0:
        raise KlugerhansError("removing the located artefact does not change the features: nothing to project out")
    cumulative = torch.cumsum(power, 0) / total
    k = min(int(torch.searchsorted(cumulative, torch.tensor(energy, dtype=cumulative.dtype)).item()) + 1, max_dims)
    k = min(k, len(s))
    return ArtefactSubspace(
        basis=vh[:k].T.float().contiguous(),
        reference=without.double().mean(0).float(),
        energy=float(cumulative[k - 1]),
    )


def project_features(h: torch.Tensor, subspace: ArtefactSubspace) -> torch.Tensor:
    """P-ClArC on (N, D) features: ``h - V V^T (h - z)``."""
    v, z = subspace.basis, subspace.reference
    return h - ((h - z) @ v) @ v.T


@torch.no_grad()
def fold_projection(model: nn.Module, subspace: ArtefactSubspace) -> None:
    """Fold the P-ClArC projection into the head's first linear layer, in place.

    ``W (h - V V^T (h - z)) + b = W (I - V V^T) h + (b + W V V^T z)``.
    """
    layer = _head_input_layer(model)
    w = layer.weight.double()
    v = subspace.basis.double().to(w.device)
    z = subspace.reference.double().to(w.device)
    wv = w @ v
    new_w = w - wv @ v.T
    bias = layer.bias.double() if layer.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
    new_b = bias + wv @ (v.T @ z)
    layer.weight.copy_(new_w.to(layer.weight.dtype))
    if layer.bias is not None:
        layer.bias.copy_(new_b.to(layer.bias.dtype))
    else:
        raise KlugerhansError("the head's first linear layer has no bias to hold the reference point")


def train_head(
    model: nn.Module,
    features: torch.Tensor,
    labels: np.ndarray,
    epochs: int = 10,
    lr: float = 0.01,
    batch_size: int = 256,
    weight_decay: float = 5e-4,
    seed: int = 0,
) -> list[float]:
    """Fine-tune ``model.classifier`` on fixed (N, D) ``features`` (already projected) with SGD + cosine decay.

    Returns:
        The mean training loss of each epoch.
    """
    if len(features) != len(labels) or len(features) == 0:
        raise KlugerhansError(f"need one label per feature row, got {len(features)} rows and {len(labels)} labels")
    head: nn.Module = model.classifier  # type: ignore[assignment]
    device = next(head.parameters()).device
    x_all = features.to(device)
    y_all = torch.as_tensor(np.asarray(labels, dtype=np.int64), device=device)
    params = [p for p in head.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(seed)
    steps = epochs * math.ceil(len(x_all) / batch_size)
    losses: list[float] = []
    step = 0
    head.train()
    torch.manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(x_all), generator=gen).to(device)
        total, count = 0.0, 0
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            for group in opt.param_groups:
                group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / max(1, steps)))
            loss = nn.functional.cross_entropy(head(x_all[idx]), y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
            step += 1
        losses.append(total / max(1, count))
    head.eval()
    return losses
