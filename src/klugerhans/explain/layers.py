"""Layer types of a canonized network: the operations LRP propagates relevance through, one treatment each.

:func:`klugerhans.explain.canonizers.canonize` turns a model into a graph of these; :mod:`klugerhans.explain.rules`
binds conv/dense layers, average pooling and additions to LRP rules (Bach et al. 2015; Montavon et al. 2019) and
:mod:`klugerhans.explain.propagators` gives every other layer its fixed treatment. Every layer computes its
eval-mode forward pass from private copies of the model's parameters. The conv/dense layer, :class:`Affine`, has a
module of its own (:mod:`klugerhans.explain.affine`) and is re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass

import torch
import torch.nn.functional as F

from klugerhans.explain.affine import Affine, pair

__all__ = [
    "PASS_ACTIVATIONS",
    "Add",
    "Affine",
    "AvgPool",
    "Concat",
    "Custom",
    "Elementwise",
    "Flatten",
    "Layer",
    "LayerNorm",
    "MaxPool",
    "Multiply",
    "Opaque",
    "Reshape",
    "pair",
]


@dataclass(frozen=True, eq=False)
class MaxPool:
    """2-D max pooling; relevance is routed to the maximum of each window (its gradient)."""

    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    _: KW_ONLY
    ceil_mode: bool = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)

    def forward_with_indices(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return F.max_pool2d(
            x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode, return_indices=True
        )


@dataclass(frozen=True, eq=False)
class AvgPool:
    """2-D average pooling (fixed window, or adaptive to ``output_size``)."""

    output_size: tuple[int, int] | None = None
    """Set for adaptive pooling, else None."""
    kernel_size: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    _: KW_ONLY
    ceil_mode: bool = False
    count_include_pad: bool = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.output_size is not None:
            return F.adaptive_avg_pool2d(x, self.output_size)
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad)

    def is_identity(self, x: torch.Tensor) -> bool:
        """True when pooling ``x`` copies it (VGG's adaptive pool at its native input size)."""
        return self.output_size is not None and tuple(x.shape[2:]) == self.output_size

    def _axis_matrix(self, size: int, axis: int, like: torch.Tensor) -> torch.Tensor:
        """(out, in) weights of the pooling along one axis: pool the unit vectors with the 1-D version."""
        eye = torch.eye(size, dtype=like.dtype, device=like.device)[:, None, :]
        if self.output_size is not None:
            pooled = F.adaptive_avg_pool1d(eye, self.output_size[axis])
        else:
            k, st, p = self.kernel_size[axis], self.stride[axis], self.padding[axis]
            pooled = F.avg_pool1d(eye, k, st, p, self.ceil_mode, self.count_include_pad)
        return pooled[:, 0, :].T

    def transpose(self, s: torch.Tensor, input_shape: Sequence[int]) -> torch.Tensor:
        """``sum_j p_ij s_j``: the pooling's vector-Jacobian product.

        2-D average pooling is separable (rectangular windows; the divisor is the product of per-axis counts), so
        ``x -> P_h x P_w^T`` with one small matrix per axis; no autograd needed.
        """
        rows = self._axis_matrix(input_shape[2], 0, s)
        cols = self._axis_matrix(input_shape[3], 1, s)
        return torch.einsum("Hh,ncHW,Ww->nchw", rows, s, cols)


@dataclass(frozen=True, eq=False)
class Flatten:
    """``torch.flatten(x, start_dim)``, explicit or implied before a dense layer (as in VGG's forward)."""

    start_dim: int = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(x, self.start_dim)


PASS_ACTIVATIONS = frozenset({"relu", "relu6", "leaky_relu", "silu", "gelu", "hardswish", "mish", "identity"})
"""Elementwise nonlinearities LRP passes relevance through unchanged (zennit's ``Pass``): the identity rule."""

_NONNEGATIVE = frozenset({"relu", "relu6", "sigmoid", "hardsigmoid"})


@dataclass(frozen=True, eq=False)
class Elementwise:
    """An elementwise layer: an activation, dropout/identity, or a BatchNorm merged into no conv/dense layer.

    Activations in :data:`PASS_ACTIVATIONS` and lone BatchNorms pass relevance through unchanged (zennit's ``Pass``
    rule). Sigmoid-like activations have no such rule: they are allowed where no relevance flows (gates).
    """

    kind: str
    """"relu", "relu6", "silu", "gelu", "hardswish", "sigmoid", "hardsigmoid", "tanh", ..., "identity" or
    "batchnorm"."""
    scale: torch.Tensor | None = None
    """Per-channel scale of an unmerged eval-mode BatchNorm."""
    shift: torch.Tensor | None = None
    """Per-channel shift of an unmerged eval-mode BatchNorm."""
    function: Callable[[torch.Tensor], torch.Tensor] | None = None
    """The activation (None for "relu", "identity" and "batchnorm")."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "relu":
            return torch.relu(x)
        if self.kind == "batchnorm" and self.scale is not None and self.shift is not None:
            view = (1, -1) + (1,) * (x.ndim - 2)
            return x * self.scale.view(view) + self.shift.view(view)
        if self.function is not None:
            return self.function(x)
        return x

    @property
    def passes_relevance(self) -> bool:
        """Whether LRP may pass relevance through this layer unchanged."""
        return self.kind in PASS_ACTIVATIONS or self.kind == "batchnorm"

    @property
    def output_nonnegative(self) -> bool | None:
        """True if the output is never negative, None if it is as signed as the input, False if it can be."""
        if self.kind == "identity":
            return None
        return self.kind in _NONNEGATIVE


@dataclass(frozen=True, eq=False)
class LayerNorm:
    """Layer normalisation over the last axes, ``(x - mean) / std * weight + bias``.

    AttnLRP (Achtibat et al. 2024, "AttnLRP: attention-aware layer-wise relevance propagation for transformers")
    treats the standard deviation as a constant, which makes the layer linear; relevance then passes through the
    identity part unchanged (their identity rule for normalisation layers).
    """

    normalized_shape: tuple[int, ...]
    weight: torch.Tensor | None
    bias: torch.Tensor | None
    eps: float

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)


@dataclass(frozen=True, eq=False)
class Add:
    """A sum of tensors (a residual connection) plus an optional constant, split by zennit's ``Norm`` rule."""

    constant: torch.Tensor | float | None = None
    """A summand that is no input (a bias); it absorbs its share of the relevance."""

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out if self.constant is None else out + self.constant


@dataclass(frozen=True, eq=False)
class Concat:
    """``torch.cat(xs, dim)`` (DenseNet): each input gets the relevance of its own channels."""

    dim: int = 1

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return torch.cat(xs, self.dim)


@dataclass(frozen=True, eq=False)
class Multiply:
    """A product with a constant (layer scale) or with a gate computed from the signal (squeeze-and-excitation).

    Relevance flows through the signal only: the constant or the gate is held fixed, which makes the product linear
    in the signal (the literature's treatment of gates, e.g. Arras et al. 2017 for LSTMs, and of SE blocks).
    """

    signal: int = 0
    """Which input carries the signal; any other input is a gate (it gets no relevance)."""
    constant: torch.Tensor | float | None = None
    """A constant factor, or None."""

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        out = xs[0]
        for x in xs[1:]:
            out = out * x
        return out if self.constant is None else out * self.constant


@dataclass(frozen=True, eq=False)
class Reshape:
    """A layout change: view/reshape/squeeze/unsqueeze (undone by reshaping) or a permutation (undone by inverting)."""

    function: Callable[[torch.Tensor], torch.Tensor]
    permutation: tuple[int, ...] | None = None
    """Set for ``permute``; None for shape changes that keep the element order."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.function(x)

    def inverse(self, r: torch.Tensor, input_shape: Sequence[int]) -> torch.Tensor:
        if self.permutation is None:
            return r.reshape(input_shape)
        dims = [d % len(self.permutation) for d in self.permutation]
        return r.permute(*[dims.index(i) for i in range(len(dims))])


@dataclass(frozen=True, eq=False)
class Custom:
    """A module with a rule of its own (:mod:`klugerhans.explain.modules`): computed by the module itself."""

    module: torch.nn.Module
    propagator: Callable[[torch.nn.Module], object]
    """Builds the module's :class:`~klugerhans.explain.core.Propagator`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)


@dataclass(frozen=True, eq=False)
class Opaque:
    """An operation without an LRP rule here: computed as in the model; relevance only with ``fallback="gradient"``."""

    function: Callable[..., torch.Tensor]
    description: str
    """What it is, e.g. ``"call_function sin"``, for messages."""


Layer = (
    Affine | MaxPool | AvgPool | Flatten | Reshape | Elementwise | LayerNorm | Add | Concat | Multiply | Custom | Opaque
)
"""One operation of the canonical graph."""
