"""LRP rules for the input layer, where the ReLU argument of the other rules does not hold: z^B, w^2 and flat.

The input (pixels, normalised) can be negative and carries no relevance of its own, so these rules either use its
known bounds (:class:`ZBox`, Montavon et al. 2017) or ignore its values and spread relevance by the weights alone
(:class:`WSquare`) or uniformly over each receptive field (:class:`Flat`, Lapuschkin et al. 2019). Same definitions,
defaults and stabilizer as zennit 0.5 (see :mod:`klugerhans.explain.rules`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from klugerhans.errors import KlugerhansError
from klugerhans.explain.affine import Affine
from klugerhans.explain.core import Propagator, Rule, stabilize

__all__ = ["Flat", "WSquare", "ZBox"]


class _BoxPropagator(Propagator):
    def __init__(self, layer: Affine, low: torch.Tensor, high: torch.Tensor, stabilizer: float):
        w, b = layer.weight, layer.bias
        self.layer, self.stabilizer = layer, stabilizer
        self.low, self.high = low.to(w), high.to(w)
        # z = F(x, W, b) - F(low, W+, b+) - F(high, W-, b-): stack [x, low, high] against [W, -W+, -W-].
        self.weight = layer.stack_in_weights([w, -w.clamp(min=0), -w.clamp(max=0)]).contiguous()
        self.bias = b - b.clamp(min=0) - b.clamp(max=0)

    def _bound(self, bound: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        view = (1, -1) + (1,) * (x.ndim - 2) if bound.numel() == x.shape[1] and x.ndim > 2 else (1, *bound.shape)
        return bound.reshape(view).expand_as(x)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, Any]:
        self.layer.check_input(x)
        if self.low.numel() not in (1, x.shape[1]):
            raise KlugerhansError(f"ZBox bounds have {self.low.numel()} values, the input has {x.shape[1]} channels")
        stacked = self.layer.stack_in([x, self._bound(self.low, x), self._bound(self.high, x)])
        y = self.layer.forward(x)
        return y, (stacked, self.layer.apply(stacked, self.weight, self.bias))

    def backward(self, saved: Any, relevance: torch.Tensor) -> torch.Tensor:
        stacked, z = saved
        g = self.layer.transpose(relevance.div_(stabilize(z, self.stabilizer)), stacked.shape, self.weight)
        if self.layer.groups > 1:
            parts = zip(self.layer.split_in(stacked, 3), self.layer.split_in(g, 3), strict=True)
            return torch.stack([a * b for a, b in parts]).sum(0)
        dim = self.layer.channel_dim % stacked.ndim
        return (stacked * g).unflatten(dim, (3, stacked.shape[dim] // 3)).sum(dim)


def _as_bound(value: float | Sequence[float] | torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(value, dtype=torch.float64).flatten()


@dataclass(frozen=True)
class ZBox(Rule):
    """LRP-z^B (Montavon et al. 2017) for the input layer, whose values are bounded by ``low <= x <= high``.

    ``R_i = sum_j (x_i w_ij - l_i w_ij^+ - h_i w_ij^-) / sum_i' (...) R_j``. ``low``/``high`` are a scalar or one value
    per input channel, in the model's (normalised) input space.
    """

    low: float | Sequence[float] | torch.Tensor
    high: float | Sequence[float] | torch.Tensor
    stabilizer: float = 1e-6

    def __post_init__(self) -> None:
        low, high = _as_bound(self.low), _as_bound(self.high)
        if low.shape != high.shape or not bool((low <= high).all()):
            raise KlugerhansError("ZBox needs low <= high with one value or one per channel each")

    def bind(self, layer: Affine, *, nonnegative_input: bool) -> Propagator:
        return _BoxPropagator(layer, _as_bound(self.low), _as_bound(self.high), self.stabilizer)


class _InputFreePropagator(Propagator):
    """``R_in = G(R / stabilize(F(1, V, c)), V)``: the input values do not matter, only the connectivity."""

    def __init__(self, layer: Affine, weight: torch.Tensor, bias: torch.Tensor, stabilizer: float):
        self.layer, self.weight, self.bias, self.stabilizer = layer, weight.contiguous(), bias, stabilizer
        self._denominators: dict[tuple[int, ...], torch.Tensor] = {}

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, Any]:
        self.layer.check_input(x)
        return self.layer.forward(x), x.shape

    def backward(self, saved: Any, relevance: torch.Tensor) -> torch.Tensor:
        shape = tuple(saved[1:])
        z = self._denominators.get(shape)
        if z is None:  # depends on the input size only (padding): compute once per size
            ones = torch.ones((1, *shape), dtype=self.weight.dtype, device=self.weight.device)
            z = stabilize(self.layer.apply(ones, self.weight, self.bias), self.stabilizer)
            self._denominators[shape] = z
        return self.layer.transpose(relevance.div_(z), saved, self.weight)


@dataclass(frozen=True)
class WSquare(Rule):
    """LRP-w^2 (Montavon et al. 2017): ``R_i = sum_j w_ij^2 / sum_i' w_i'j^2 R_j`` (zennit also squares the bias)."""

    stabilizer: float = 1e-6

    def bind(self, layer: Affine, *, nonnegative_input: bool) -> Propagator:
        return _InputFreePropagator(layer, layer.weight**2, layer.bias**2, self.stabilizer)


class _FlatPropagator(_InputFreePropagator):
    """Flat for convolutions: all weights are one, so ``G`` sums over output channels first (3x cheaper)."""

    def backward(self, saved: Any, relevance: torch.Tensor) -> torch.Tensor:
        if not self.layer.is_conv or self.layer.groups > 1:
            return super().backward(saved, relevance)
        shape = tuple(saved[1:])
        z = self._denominators.get(shape)
        if z is None:  # the receptive-field size of each output (times C_in); the same for every output channel
            ones = torch.ones((1, 1, *shape[1:]), dtype=self.weight.dtype, device=self.weight.device)
            z = stabilize(self.layer.apply(ones, self.weight[:1, :1] * shape[0]), self.stabilizer)
            self._denominators[shape] = z
        s = relevance.sum(1, keepdim=True).div_(z)
        single = self.layer.transpose(s, (saved[0], 1, *saved[2:]), self.weight[:1, :1])
        return single.expand(saved).contiguous()


@dataclass(frozen=True)
class Flat(Rule):
    """LRP-flat (Lapuschkin et al. 2019): relevance spread uniformly over each output's receptive field."""

    stabilizer: float = 1e-6

    def bind(self, layer: Affine, *, nonnegative_input: bool) -> Propagator:
        return _FlatPropagator(layer, torch.ones_like(layer.weight), torch.zeros_like(layer.bias), self.stabilizer)
