"""Fixed treatments of the layers no composite assigns a rule to: how relevance passes structure and activations.

Activations and lone normalisations pass relevance through unchanged (zennit's ``Pass`` rule; for LayerNorm the
identity rule of AttnLRP, Achtibat et al. 2024); max pooling routes each window's relevance to its maximum (the
gradient, as zennit does); layout changes (flatten, view, permute) and concatenations move relevance back to where
each value came from; products with a gate or a constant give all relevance to the signal. Operations without any
rule either raise, or with ``fallback="gradient"`` get :class:`GradientPropagator`.
"""

from __future__ import annotations

from typing import Any

import torch

from klugerhans.explain.core import Propagator, stabilize
from klugerhans.explain.layers import (
    Concat,
    Elementwise,
    Flatten,
    Layer,
    LayerNorm,
    MaxPool,
    Multiply,
    Opaque,
    Reshape,
)

__all__ = ["ForwardPropagator", "GradientPropagator", "propagator_for"]


class _PassPropagator(Propagator):
    """Elementwise layers (ReLU & co., dropout, lone BatchNorm, LayerNorm) pass relevance unchanged (``Pass``)."""

    def __init__(self, layer: Elementwise | LayerNorm):
        self.layer = layer

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, Any]:
        return self.layer.forward(x), None

    def backward(self, saved: Any, relevance: torch.Tensor) -> torch.Tensor:
        return relevance


class _MaxPoolPropagator(Propagator):
    """Max pooling passes each window's relevance to its maximum: the gradient, as zennit (no rule) does."""

    def __init__(self, layer: MaxPool):
        self.layer = layer

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, Any]:
        y, index = self.layer.forward_with_indices(x)
        return y, (x.shape, index)

    def backward(self, saved: Any, relevance: torch.Tensor) -> torch.Tensor:
        shape, index = saved
        flat = relevance.new_zeros(shape[0], shape[1], shape[2] * shape[3])
        # scatter_add, not scatter: overlapping windows may pick the same input twice
        flat.scatter_add_(2, index.flatten(2), relevance.flatten(2))
        return flat.view(shape)


class _FlattenPropagator(Propagator):
    def __init__(self, layer: Flatten):
        self.layer = layer

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, Any]:
        return torch.flatten(x, self.layer.start_dim), x.shape

    def backward(self, saved: Any, relevance: torch.Tensor) -> torch.Tensor:
        return relevance.reshape(saved)


class _ReshapePropagator(Propagator):
    def __init__(self, layer: Reshape):
        self.layer = layer

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, Any]:
        return self.layer.forward(x), x.shape

    def backward(self, saved: Any, relevance: torch.Tensor) -> torch.Tensor:
        return self.layer.inverse(relevance, saved)


class _ConcatPropagator(Propagator):
    """Concatenation: each input gets the relevance of the channels it contributed."""

    def __init__(self, layer: Concat):
        self.layer = layer

    def forward(self, x: torch.Tensor, *more: torch.Tensor) -> tuple[torch.Tensor, Any]:
        xs = (x, *more)
        return self.layer.forward(*xs), [t.shape[self.layer.dim] for t in xs]

    def backward(self, saved: Any, relevance: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(relevance.split(saved, self.layer.dim))


class _MultiplyPropagator(Propagator):
    """A product with a constant or a gate: the signal gets all relevance, the gate none."""

    def __init__(self, layer: Multiply):
        self.layer = layer

    def forward(self, x: torch.Tensor, *more: torch.Tensor) -> tuple[torch.Tensor, Any]:
        xs = (x, *more)
        return self.layer.forward(*xs), [t.shape for t in xs]

    def backward(self, saved: Any, relevance: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        shape = saved[self.layer.signal]
        r = relevance if relevance.shape == shape else relevance.sum_to_size(shape)
        return tuple(r if k == self.layer.signal else None for k in range(len(saved)))


class ForwardPropagator(Propagator):
    """Any layer where no relevance flows (e.g. inside a squeeze-and-excitation gate): forward pass only."""

    def __init__(self, function: Any):
        self.function = function

    def forward(self, x: torch.Tensor, *more: torch.Tensor) -> tuple[torch.Tensor, Any]:
        return self.function(x, *more), None

    def backward(self, saved: Any, relevance: torch.Tensor) -> torch.Tensor:
        raise AssertionError("no relevance flows through this layer")


class GradientPropagator(Propagator):
    """Fallback for an operation without an LRP rule: ``R_k = x_k * d<y, R / stabilize(y)>/dx_k`` (gradient x input).

    The epsilon rule's formula, with autograd's vector-Jacobian product in place of the transposed weights; exact
    LRP-epsilon for linear operations, a gradient x input heuristic for others.
    """

    def __init__(self, layer: Opaque, stabilizer: float = 1e-6):
        self.layer, self.stabilizer = layer, stabilizer

    def forward(self, x: torch.Tensor, *more: torch.Tensor) -> tuple[torch.Tensor, Any]:
        xs = (x, *more)
        y = self.layer.function(*(t.clone() for t in xs))  # the model's own code might work in place
        return y, (xs, y)

    def backward(self, saved: Any, relevance: torch.Tensor) -> tuple[torch.Tensor, ...]:
        xs, y = saved
        with torch.enable_grad():
            leaves = [t.detach().clone().requires_grad_() for t in xs]
            out = self.layer.function(*leaves)
            grads = torch.autograd.grad(out, leaves, relevance / stabilize(y, self.stabilizer), allow_unused=True)
        return tuple(x * g if g is not None else torch.zeros_like(x) for x, g in zip(xs, grads, strict=True))


def propagator_for(layer: Layer) -> Propagator:
    """The fixed treatment of layers no composite assigns a rule to (not conv/dense, average pooling or sums)."""
    if isinstance(layer, MaxPool):
        return _MaxPoolPropagator(layer)
    if isinstance(layer, Flatten):
        return _FlattenPropagator(layer)
    if isinstance(layer, Reshape):
        return _ReshapePropagator(layer)
    if isinstance(layer, Concat):
        return _ConcatPropagator(layer)
    if isinstance(layer, Multiply):
        return _MultiplyPropagator(layer)
    if isinstance(layer, Elementwise | LayerNorm):
        return _PassPropagator(layer)
    raise TypeError(f"no fixed treatment for {type(layer).__name__}")
