"""What every LRP rule implements: a :class:`Propagator` per layer, a :class:`Rule` that binds one, the stabilizer.

A propagator is a layer's forward pass that keeps what its backward pass needs; its backward pass maps the relevance
of the layer's outputs to that of its inputs (Bach et al. 2015; Montavon et al. 2019). The rules themselves are in
:mod:`klugerhans.explain.rules` and :mod:`klugerhans.explain.input_rules`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch

from klugerhans.explain.affine import Affine

__all__ = ["Propagator", "Relevance", "Rule", "stabilize"]


def stabilize(z: torch.Tensor, epsilon: float) -> torch.Tensor:
    """``z + epsilon * sign(z)`` with ``sign(0) = +1``: the LRP-epsilon denominator (zennit's stabilizer)."""
    return torch.where(z >= 0, z + epsilon, z - epsilon)


Relevance = torch.Tensor | tuple[torch.Tensor | None, ...]
"""What a propagator's backward returns: the input's relevance, or one per input (None: no relevance)."""


class Propagator(ABC):
    """One layer bound to its rule: a forward pass that saves what the backward pass needs.

    Layers with several inputs (additions, concatenations, products) take them as ``forward(x, *more)`` and return
    one relevance per input from :meth:`backward`.
    """

    @abstractmethod
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """Return the layer output and the context for :meth:`backward`."""

    @abstractmethod
    def backward(self, saved: Any, relevance: torch.Tensor) -> Relevance:
        """Relevance of the layer outputs -> relevance of its inputs (same shape as the input).

        May overwrite ``relevance`` (the engine owns every intermediate relevance tensor): large CPU allocations
        are page-faulted afresh each time, so working in place is measurably faster.
        """


class Rule(ABC):
    """An LRP rule for conv and dense layers."""

    @abstractmethod
    def bind(self, layer: Affine, *, nonnegative_input: bool) -> Propagator:
        """Precompute the modified weights for ``layer``; ``nonnegative_input``: its input is never negative."""
