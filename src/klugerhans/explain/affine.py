"""The conv and dense layer of a canonized network, ``y = W * x + b``, and how rules stack several weight sets in it.

LRP rules (:mod:`klugerhans.explain.rules`) compute each layer once per modified weight set (Montavon et al. 2019,
"Layer-wise relevance propagation: an overview"); :class:`Affine` runs them all through one convolution by stacking
the weights (or the inputs) along the channel axis, group by group for grouped convolutions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.nn.grad import conv2d_input

from klugerhans.errors import KlugerhansError

__all__ = ["Affine", "pair"]


def pair(value: int | tuple[int, ...]) -> tuple[int, int]:
    """A conv or pooling size given as one number or a 1- or 2-tuple, as (height, width)."""
    if isinstance(value, int):
        return (value, value)
    if len(value) == 1:
        return (value[0], value[0])
    return (int(value[0]), int(value[1]))


@dataclass(frozen=True, eq=False)
class Affine:
    """A conv or dense layer with any adjacent BatchNorm merged in: ``y = W * x + b``.

    ``weight`` is (C_out, C_in / groups, kh, kw) for a convolution and (C_out, C_in) for a dense layer, which acts on
    the last axis (also of (N, H, W, C) input, as in ConvNeXt). The ``stack_*``/``split_*`` methods let rules run
    several weight sets (or several inputs) through one convolution, also for grouped convolutions.
    """

    weight: torch.Tensor
    """Merged weight, a private copy of the model's."""
    bias: torch.Tensor
    """(C_out,) merged bias (zeros where the layer had none)."""
    name: str
    """Name of the original module in the model, for error messages."""
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1

    @classmethod
    def of_module(cls, name: str, m: torch.nn.Module, copy: bool = True) -> Affine | None:
        """The layer of an ``nn.Conv2d`` (zero padding given as numbers) or ``nn.Linear``; None for anything else.

        ``copy``: private copies of the weights (False: the module's own tensors, detached).
        """

        def own(t: torch.Tensor) -> torch.Tensor:
            return t.detach().clone() if copy else t.detach()

        if isinstance(m, torch.nn.Conv2d) and m.padding_mode == "zeros" and not isinstance(m.padding, str):
            bias = torch.zeros_like(m.weight[:, 0, 0, 0]) if m.bias is None else own(m.bias)
            stride, padding, dilation = pair(m.stride), pair(m.padding), pair(m.dilation)
            return cls(own(m.weight), bias, name, stride, padding, dilation, m.groups)
        if isinstance(m, torch.nn.Linear):
            bias = torch.zeros_like(m.weight[:, 0]) if m.bias is None else own(m.bias)
            return cls(own(m.weight), bias, name)
        return None

    @property
    def is_conv(self) -> bool:
        return self.weight.ndim == 4

    @property
    def channel_dim(self) -> int:
        """Axis of the channels/features: 1 for a convolution, -1 for a dense layer."""
        return 1 if self.is_conv else -1

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a one-line error when ``x`` cannot enter this layer (wrong channels or input size)."""
        expected = self.weight.shape[1] * self.groups
        if self.is_conv and (x.ndim != 4 or x.shape[1] != expected):
            raise KlugerhansError(
                f"layer {self.name!r} expects (N, {expected}, H, W) input, got {tuple(x.shape)}: "
                "pass images with the channel count the model was built for"
            )
        if not self.is_conv and x.shape[-1] != expected:
            raise KlugerhansError(
                f"layer {self.name!r} expects {expected} input features, got {x.shape[-1]}: "
                "is the image size the one the model was trained on?"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The layer itself: ``F(x, W, b)``."""
        return self.apply(x, self.weight, self.bias)

    def apply(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """The layer's operation with other (modified) ``weight`` and ``bias`` (None: no bias)."""
        if self.is_conv:
            return F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)
        return F.linear(x, weight, bias)

    def transpose(
        self, s: torch.Tensor, input_shape: Sequence[int], weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``G(s, W)``: the vector-Jacobian product of ``x -> F(x, W)``, i.e. ``sum_j w_ij s_j`` for every input i.

        ``input_shape`` gives the size of the input (a strided convolution maps several sizes onto one).
        """
        weight = self.weight if weight is None else weight
        if not self.is_conv:
            return s @ weight
        # the convolution's input-gradient kernel (what autograd runs), faster on CPU than conv_transpose2d
        size = (s.shape[0], weight.shape[1] * self.groups, *input_shape[2:])
        return conv2d_input(size, weight, s, self.stride, self.padding, self.dilation, self.groups)

    # Several weight sets in one call. Without groups these are plain concatenations along the channel axis; a
    # grouped convolution needs the copies interleaved group by group, (G, K, C / G), so each group sees its own.

    def _grouped(self) -> bool:
        return self.is_conv and self.groups > 1

    def stack_out(self, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
        """Weights (or biases) of K layers stacked so that one ``apply`` computes all K outputs."""
        if not self._grouped():
            return torch.cat(list(tensors))
        k, g = len(tensors), self.groups
        stacked = torch.stack(list(tensors)).unflatten(1, (g, -1)).transpose(0, 1)
        return stacked.reshape(k * tensors[0].shape[0], *tensors[0].shape[1:]).contiguous()

    def _interleave(self, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
        # K tensors side by side along channels; grouped layers keep each group's K parts together.
        if not self._grouped():
            return torch.cat(list(tensors), dim=self.channel_dim)
        parts = [t.unflatten(1, (self.groups, -1)) for t in tensors]
        return torch.stack(parts, dim=2).flatten(1, 3)

    def _deinterleave(self, x: torch.Tensor, k: int) -> list[torch.Tensor]:
        # The inverse of _interleave.
        if not self._grouped():
            size = x.shape[self.channel_dim] // k
            return [x.narrow(self.channel_dim, i * size, size) for i in range(k)]
        parts = x.unflatten(1, (self.groups, k, -1))
        return [parts[:, :, i].flatten(1, 2) for i in range(k)]

    def split_out(self, y: torch.Tensor, k: int) -> list[torch.Tensor]:
        """The K outputs of an ``apply`` with :meth:`stack_out` weights, each (N, C_out, ...)."""
        return self._deinterleave(y, k)

    def merge_out(self, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
        """K output-shaped tensors in the layout of :meth:`stack_out` (for :meth:`transpose`)."""
        return tensors[0] if len(tensors) == 1 else self._interleave(tensors)

    def stack_in(self, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
        """K inputs stacked along channels, to meet :meth:`stack_in_weights` weights."""
        return self._interleave(tensors)

    def stack_in_weights(self, weights: Sequence[torch.Tensor]) -> torch.Tensor:
        """Weights for :meth:`stack_in` inputs: input k meets weight k."""
        return torch.cat(list(weights), dim=1)

    def split_in(self, x: torch.Tensor, k: int) -> list[torch.Tensor]:
        """Undo :meth:`stack_in`: the K input-shaped parts of ``x``."""
        return self._deinterleave(x, k)
