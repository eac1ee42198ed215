"""Shared helpers of the explain tests: random BatchNorm statistics and zennit as the reference.

Imported by name (``from lrp_reference import ...``): a unique module name, unlike ``conftest``, which several test
folders have.
"""

from __future__ import annotations

import torch
from torch import nn
from zennit.attribution import Gradient
from zennit.canonizers import CompositeCanonizer, SequentialMergeBatchNorm
from zennit.composites import COMPOSITES as ZENNIT_COMPOSITES
from zennit.torchvision import ResNetBasicBlockCanonizer, ResNetBottleneckCanonizer, VGGCanonizer

COMPOSITE_NAMES = (
    "epsilon_plus_flat",
    "epsilon_gamma_box",
    "epsilon_plus",
    "epsilon_alpha2_beta1",
    "epsilon_alpha2_beta1_flat",
)


def run_graph(nodes, x: torch.Tensor) -> torch.Tensor:
    """Run a canonized graph node by node (each layer's plain forward pass)."""
    values: list[torch.Tensor] = []
    for node in nodes:
        layer = node.layer
        forward = layer.function if hasattr(layer, "function") and not hasattr(layer, "forward") else layer.forward
        values.append(forward(*[x if j == -1 else values[j] for j in node.inputs]))
    return values[-1]


def randomize(model: nn.Module, seed: int) -> nn.Module:
    """Random BatchNorm statistics/affines and biases, as a trained model has (init leaves them trivial)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
                m.running_mean.normal_(0, 0.5, generator=gen)
                m.running_var.uniform_(0.3, 3.0, generator=gen)
                m.weight.uniform_(0.5, 1.5, generator=gen)
                m.bias.normal_(0, 0.3, generator=gen)
            elif isinstance(m, nn.Conv2d | nn.Linear) and m.bias is not None:
                m.bias.normal_(0, 0.05, generator=gen)
    return model.eval()


class ExactVGGCanonizer(VGGCanonizer):
    """zennit 0.5.1's VGG canonizer, but leaving each merged BatchNorm an exact identity.

    zennit 0.5.1 resets a merged BatchNorm to mean 0 / var 1 but keeps its eps, so it still computes
    ``x / sqrt(1 + eps)`` (about 5e-6 per layer, a few 1e-5 of relevance in VGG11-BN): a quirk, not LRP.
    zennit fixed it later (chr5tphr/zennit#240: var = eps = 0.5); this subclass does the same.
    """

    def register(self, linears: list[nn.Module], batch_norm: nn.Module) -> None:
        super().register(linears, batch_norm)
        self._eps = batch_norm.eps
        batch_norm.running_var.data = torch.full_like(batch_norm.running_var, 0.5)
        batch_norm.eps = 0.5

    def remove(self) -> None:
        super().remove()
        self.batch_norm.eps = self._eps


class ExactMergeBatchNorm(ExactVGGCanonizer, SequentialMergeBatchNorm):
    """zennit's SequentialMergeBatchNorm with the exact-identity fix of :class:`ExactVGGCanonizer`."""


def exact_resnet_canonizer() -> CompositeCanonizer:
    """zennit's ResNetCanonizer (merged BatchNorms, a ``Sum`` module with the Norm rule per block), exact BatchNorms."""
    return CompositeCanonizer((ExactMergeBatchNorm(), ResNetBottleneckCanonizer(), ResNetBasicBlockCanonizer()))


def zennit_relevance(
    model: nn.Module,
    x: torch.Tensor,
    composite: str,
    targets: torch.Tensor,
    canonizer: object = None,
    **options: object,
) -> torch.Tensor:
    """zennit's heatmap with output relevance ``onehot(targets) * logits`` (our default ``init="logit"``).

    ``canonizer``: zennit canonizer (default: the exact VGG one).
    """
    comp = ZENNIT_COMPOSITES[composite](canonizers=[canonizer or ExactVGGCanonizer()], **options)

    def start(out: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(out).scatter_(1, targets[:, None], 1.0) * out

    with Gradient(model, comp) as attributor:
        _, relevance = attributor(x, start)
    return relevance
