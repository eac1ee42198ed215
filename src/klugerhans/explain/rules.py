"""LRP rules: how relevance flows from a layer's outputs ``j`` back to its inputs ``i``.

Each rule is written as a direct formula (Bach et al. 2015, "On pixel-wise explanations for non-linear classifier
decisions by layer-wise relevance propagation"; Montavon et al. 2019, "Layer-wise relevance propagation: an
overview"), with the same definitions, defaults and stabilizer as zennit 0.5 so that heatmaps agree with it. With
``F(x, W, b)`` the layer and ``G(s, W)_i = sum_j w_ij s_j`` its transpose (one ``conv_transpose2d``), a rule is::

    z = F(modified inputs, modified weights)      # once per layer, in the forward pass
    R_in = input * G(R / stabilize(z), modified weights)

``stabilize(z) = z + eps * sign(z)`` with ``sign(0) = +1``. For inputs known to be non-negative (everything after a
ReLU) the negative-input terms vanish and are skipped, and the modified weights are stacked next to the real weights
so one convolution gives the layer output and every ``z`` at once. Modified weights are computed once per layer in
:meth:`Rule.bind`, not per batch.

The interface (:class:`Propagator`, :class:`Rule`, :func:`stabilize`) is in :mod:`klugerhans.explain.core` and the
input-layer rules (:class:`ZBox`, :class:`WSquare`, :class:`Flat`) in :mod:`klugerhans.explain.input_rules`; both
are re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from klugerhans.errors import KlugerhansError
from klugerhans.explain.affine import Affine
from klugerhans.explain.core import Propagator, Relevance, Rule, stabilize
from klugerhans.explain.input_rules import Flat, WSquare, ZBox
from klugerhans.explain.layers import Add, AvgPool

__all__ = [
    "LRP0",
    "AlphaBeta",
    "Epsilon",
    "Flat",
    "Gamma",
    "Norm",
    "Propagator",
    "Relevance",
    "Rule",
    "WSquare",
    "ZBox",
    "ZPlus",
    "stabilize",
]


# ---------------------------------------------------------------------------------------------------- epsilon


class _EpsilonPropagator(Propagator):
    def __init__(self, layer: Affine, epsilon: float):
        self.layer, self.epsilon = layer, epsilon

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, Any]:
        self.layer.check_input(x)
        z = self.layer.forward(x)
        return z, (x, z)

    def backward(self, saved: Any, relevance: torch.Tensor) -> torch.Tensor:
        x, z = saved
        if self.epsilon == 0:
            # LRP-0 leaves 0/0 undefined; a neuron without input contribution passes no relevance.
            s = torch.where(z == 0, torch.zeros_like(z), relevance / torch.where(z == 0, torch.ones_like(z), z))
        else:
            s = relevance.div_(stabilize(z, self.epsilon))
        return self.layer.transpose(s, x.shape).mul_(x)


@dataclass(frozen=True)
class Epsilon(Rule):
    """LRP-epsilon (Bach et al. 2015): ``R_i = sum_j a_i w_ij / (z_j + eps sign(z_j)) R_j``, ``z_j`` incl. bias."""

    epsilon: float = 1e-6
    """Added to the denominator with its sign; absorbs weak or contradictory contributions."""

    def __post_init__(self) -> None:
        if not self.epsilon >= 0:
            raise KlugerhansError(f"epsilon must be >= 0, got {self.epsilon}")

    def bind(self, layer: Affine, *, nonnegative_input: bool) -> Propagator:
        return _EpsilonPropagator(layer, self.epsilon)


@dataclass(frozen=True)
class LRP0(Rule):
    """LRP-0 (Bach et al. 2015): ``R_i = sum_j a_i w_ij / z_j R_j``; zero where ``z_j = 0``. Exactly conservative."""

    def bind(self, layer: Affine, *, nonnegative_input: bool) -> Propagator:
        return _EpsilonPropagator(layer, 0.0)


# ------------------------------------------------------------------------------------- sign-split rules


Weigh = Callable[[torch.Tensor, list[torch.Tensor], torch.Tensor], list[torch.Tensor]]
"""``(R, [z_k], layer output) -> [s_k]``: the relevance messages divided by each term's denominator."""


class _SignSplitPropagator(Propagator):
    """Rules of the form ``z_k = F(x+, P_k, c_k) + F(x-, N_k, 0)`` and ``R_in = x+ G(s, P) + x- G(s, N)``.

    ZPlus, AlphaBeta and Gamma are such rules, with ``k`` = 1 or 2 terms. Positive and negative inputs are stacked
    along channels so one convolution computes every term; after a ReLU the negative half is dropped and the terms
    are stacked with the real weight instead, so the forward pass computes them for free.
    """

    def __init__(self, layer: Affine, nonnegative: bool, terms: Sequence[tuple[Any, Any, Any]], weigh: Weigh):
        self.layer, self.nonnegative, self.weigh = layer, nonnegative, weigh
        self.count = len(terms)
        if nonnegative:
            self.fused_weight = layer.stack_out([layer.weight] + [p for p, _, _ in terms]).contiguous()
            self.fused_bias = layer.stack_out([layer.bias] + [c for _, _, c in terms]).contiguous()
            self.back_weight = layer.stack_out([p for p, _, _ in terms]).contiguous()
        else:
            self.back_weight = layer.stack_out([layer.stack_in_weights([p, n]) for p, n, _ in terms]).contiguous()
            self.fused_bias = layer.stack_out([c for _, _, c in terms]).contiguous()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, Any]:
        self.layer.check_input(x)
        if self.nonnegative:
            parts = self.layer.split_out(self.layer.apply(x, self.fused_weight, self.fused_bias), self.count + 1)
            return parts[0], (x, parts)
        y = self.layer.forward(x)
        split = self.layer.stack_in([x.clamp(min=0), x.clamp(max=0)])
        return y, (split, y, self.layer.apply(split, self.back_weight, self.fused_bias))

    def backward(self, saved: Any, relevance: torch.Tensor) -> torch.Tensor:
        if self.nonnegative:
            x, parts = saved
            y, zs = parts[0], parts[1:]
        else:
            x, y, stacked = saved
            zs = self.layer.split_out(stacked, self.count)
        s = self.layer.merge_out(self.weigh(relevance, zs, y))
        g = self.layer.transpose(s, x.shape, self.back_weight)
        if self.nonnegative:
            return g.mul_(x)
        (xp, xn), (gp, gn) = self.layer.split_in(x, 2), self.layer.split_in(g, 2)
        return xp * gp + xn * gn


@dataclass(frozen=True)
class ZPlus(Rule):
    """LRP-z+ (Montavon et al. 2017): ``R_i = sum_j a_i w_ij^+ / sum_i' a_i' w_i'j^+ R_j``.

    For negative inputs the negative weights play the part of the positive ones (zennit's generalisation, equal to
    AlphaBeta(1, 0)); the positive part of the bias enters the denominator.
    """

    stabilizer: float = 1e-6

    def bind(self, layer: Affine, *, nonnegative_input: bool) -> Propagator:
        w, b = layer.weight, layer.bias
        terms = [(w.clamp(min=0), w.clamp(max=0), b.clamp(min=0))]
        weigh = self._weigh_nonnegative if nonnegative_input else self._weigh
        return _SignSplitPropagator(layer, nonnegative_input, terms, weigh)

    def _weigh(self, relevance: torch.Tensor, zs: list[torch.Tensor], y: torch.Tensor) -> list[torch.Tensor]:
        return [relevance.div_(stabilize(zs[0], self.stabilizer))]

    def _weigh_nonnegative(
        self, relevance: torch.Tensor, zs: list[torch.Tensor], y: torch.Tensor
    ) -> list[torch.Tensor]:
        # non-negative inputs, weights and bias: z >= 0 (or -0.0), where the stabilizer adds +eps
        return [relevance.div_(zs[0] + self.stabilizer)]


@dataclass(frozen=True)
class AlphaBeta(Rule):
    """LRP-alpha-beta (Bach et al. 2015): ``R_i = sum_j (alpha z_ij^+ / z_j^+ - beta z_ij^- / z_j^-) R_j``.

    ``z_ij^+`` are the positive contributions ``a_i w_ij > 0`` (bias: its positive part), ``z_ij^-`` the negative
    ones. Requires ``alpha - beta = 1`` so relevance is conserved.
    """

    alpha: float = 2.0
    beta: float = 1.0
    stabilizer: float = 1e-6

    def __post_init__(self) -> None:
        if self.alpha < 0 or self.beta < 0 or abs(self.alpha - self.beta - 1) > 1e-9:
            raise KlugerhansError(
                f"AlphaBeta needs alpha, beta >= 0 and alpha - beta = 1, got {self.alpha}, {self.beta}"
            )

    def bind(self, layer: Affine, *, nonnegative_input: bool) -> Propagator:
        w, b = layer.weight, layer.bias
        pos, neg = w.clamp(min=0), w.clamp(max=0)
        terms = [(pos, neg, b.clamp(min=0)), (neg, pos, b.clamp(max=0))]
        return _SignSplitPropagator(layer, nonnegative_input, terms, self._weigh)

    def _weigh(self, relevance: torch.Tensor, zs: list[torch.Tensor], y: torch.Tensor) -> list[torch.Tensor]:
        return [
            relevance * (self.alpha / stabilize(zs[0], self.stabilizer)),
            relevance * (-self.beta / stabilize(zs[1], self.stabilizer)),
        ]


@dataclass(frozen=True)
class Gamma(Rule):
    """Generalised LRP-gamma (Montavon et al. 2019; Andéol et al. 2021): favour positive contributions.

    For outputs ``z_j > 0``: ``R_i = sum_j a_i (w_ij + gamma w_ij^+) / sum_i' a_i' (w_i'j + gamma w_i'j^+) R_j``
    (the bias is modified the same way); negative outputs use ``gamma w^-``, and negative inputs swap the roles.
    """

    gamma: float = 0.25
    stabilizer: float = 1e-6

    def __post_init__(self) -> None:
        if not self.gamma >= 0:
            raise KlugerhansError(f"gamma must be >= 0, got {self.gamma}")

    def bind(self, layer: Affine, *, nonnegative_input: bool) -> Propagator:
        w, b, g = layer.weight, layer.bias, self.gamma
        up, down = w + g * w.clamp(min=0), w + g * w.clamp(max=0)
        terms = [(up, down, b + g * b.clamp(min=0)), (down, up, b + g * b.clamp(max=0))]
        return _SignSplitPropagator(layer, nonnegative_input, terms, self._weigh)

    def _weigh(self, relevance: torch.Tensor, zs: list[torch.Tensor], y: torch.Tensor) -> list[torch.Tensor]:
        return [
            relevance * (y > 0) / stabilize(zs[0], self.stabilizer),
            relevance * (y < 0) / stabilize(zs[1], self.stabilizer),
        ]


# --------------------------------------------------------------------------------------- other layers


class _NormPropagator(Propagator):
    def __init__(self, layer: AvgPool, stabilizer: float):
        self.layer, self.stabilizer = layer, stabilizer

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, Any]:
        y = self.layer.forward(x)
        return y, (x, y)

    def backward(self, saved: Any, relevance: torch.Tensor) -> torch.Tensor:
        x, y = saved
        s = relevance / stabilize(y, self.stabilizer)
        if self.layer.is_identity(x):
            return x * s
        return x * self.layer.transpose(s, x.shape)


class _SumPropagator(Propagator):
    """``R_k = x_k R / stabilize(sum_k x_k)``: each summand's share (zennit's ResNetCanonizer with its Sum rule)."""

    def __init__(self, layer: Add, stabilizer: float):
        self.layer, self.stabilizer = layer, stabilizer

    def forward(self, x: torch.Tensor, *more: torch.Tensor) -> tuple[torch.Tensor, Any]:
        xs = (x, *more)
        y = self.layer.forward(*xs)
        return y, (xs, y)

    def backward(self, saved: Any, relevance: torch.Tensor) -> tuple[torch.Tensor, ...]:
        xs, y = saved
        s = relevance.div_(stabilize(y, self.stabilizer))
        return tuple(r if r.shape == x.shape else r.sum_to_size(x.shape) for x in xs for r in (x * s,))


@dataclass(frozen=True)
class Norm:
    """Average pooling and sums as sums over inputs: ``R_i = sum_j a_i p_ij / (z_j + eps sign z_j) R_j``.

    zennit's ``Norm`` rule, which it gives to average pooling and (through its ResNetCanonizer's ``Sum`` module) to
    residual additions: each summand gets relevance in proportion to its contribution (Bach et al. 2015).
    """

    stabilizer: float = 1e-6

    def bind(self, layer: AvgPool | Add) -> Propagator:
        if isinstance(layer, Add):
            return _SumPropagator(layer, self.stabilizer)
        return _NormPropagator(layer, self.stabilizer)
