"""Composites: which LRP rule each layer gets, registered by zennit's names.

Montavon et al. 2019 ("Layer-wise relevance propagation: an overview", sec. 10.3) recommend different rules for
different depths: epsilon for the dense top, z+ / alpha-beta / gamma for convolutions, and an input-space rule
(flat, z^B) for the first layer. The composites below assign rules exactly as zennit 0.5's composites of the same
name do, with the same defaults (epsilon = stabilizer = 1e-6, gamma = 0.25):

=============================  ================  =================  ===========  =================
name                           first layer       other convs        dense        avg-pool
=============================  ================  =================  ===========  =================
``epsilon_plus_flat``          Flat (conv/dense) ZPlus              Epsilon      Norm
``epsilon_gamma_box``          ZBox (conv)       Gamma(0.25)        Epsilon      Norm
``epsilon_plus``               --                ZPlus              Epsilon      Norm
``epsilon_alpha2_beta1``       --                AlphaBeta(2, 1)    Epsilon      Norm
``epsilon_alpha2_beta1_flat``  Flat (conv/dense) AlphaBeta(2, 1)    Epsilon      Norm
=============================  ================  =================  ===========  =================

ReLU, dropout and (merged) BatchNorm pass relevance through unchanged; max pooling passes it to each window's
maximum (its gradient). "First layer" is the first conv or dense layer in forward order (for ``epsilon_gamma_box``
the first convolution). Add your own with :func:`register_composite`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from klugerhans.errors import KlugerhansError
from klugerhans.explain.canonizers import Affine, AvgPool, Layer
from klugerhans.explain.rules import (
    AlphaBeta,
    Epsilon,
    Flat,
    Gamma,
    Norm,
    Propagator,
    Rule,
    ZBox,
    ZPlus,
    propagator_for,
)
from klugerhans.models.preprocess import Normalization
from klugerhans.registry import Registry

__all__ = ["COMPOSITES", "Composite", "box_bounds", "get_composite", "register_composite"]


@dataclass(frozen=True)
class Composite:
    """A rule for every layer type; :meth:`bind` applies it to a canonized network."""

    conv: Rule
    """Rule for convolutions (except the first layer when ``first`` is set)."""
    linear: Rule
    """Rule for dense layers (except the first layer when ``first`` is set)."""
    first: Rule | None = None
    """Rule for the first layer, or None to treat it like the others."""
    first_conv_only: bool = False
    """Whether only a convolution counts as the first layer (zennit's EpsilonGammaBox) or any conv/dense layer."""
    pool: Norm = field(default_factory=Norm)
    """Rule for average pooling."""
    name: str = "custom"
    """Registry name, for reports."""

    def assign(self, chain: Sequence[Layer]) -> list[Rule | Norm | None]:
        """The rule of each layer of ``chain`` (None: passed through, or routed to the max for max pooling)."""
        rules: list[Rule | Norm | None] = []
        first_pending = self.first is not None
        for layer in chain:
            if isinstance(layer, Affine):
                rule = self.conv if layer.is_conv else self.linear
                if self.first is not None and first_pending and (layer.is_conv or not self.first_conv_only):
                    rule, first_pending = self.first, False
                rules.append(rule)
            else:
                rules.append(self.pool if isinstance(layer, AvgPool) else None)
        return rules

    def bind(self, chain: Sequence[Layer]) -> list[Propagator]:
        """One propagator per layer of ``chain`` (see :func:`klugerhans.explain.canonizers.canonize`)."""
        plan: list[Propagator] = []
        nonnegative = False  # the network input may have any sign
        for layer, rule in zip(chain, self.assign(chain), strict=True):
            if isinstance(layer, Affine):
                assert isinstance(rule, Rule)
                plan.append(rule.bind(layer, nonnegative))
                nonnegative = False
            elif isinstance(layer, AvgPool):
                assert isinstance(rule, Norm)
                plan.append(rule.bind(layer))
            else:
                plan.append(propagator_for(layer))
                sign = getattr(layer, "output_nonnegative", None)
                nonnegative = nonnegative if sign is None else sign
        return plan


COMPOSITES: Registry[Callable[..., Composite]] = Registry("composite")
"""Composite factories by name; ``COMPOSITES[name](**options)`` builds one."""
register_composite = COMPOSITES.register


def get_composite(composite: str | Composite, **options: Any) -> Composite:
    """Return ``composite`` itself, or build the registered composite of that name with ``options``."""
    if isinstance(composite, Composite):
        if options:
            raise KlugerhansError("options can only be given with a composite name, not a Composite")
        return composite
    factory = COMPOSITES.get_or_raise(composite)
    if "norm" in options and "norm" not in inspect.signature(factory).parameters:
        # Only input-bounded rules (ZBox) need the normalisation; callers may always pass the model's.
        options = {k: v for k, v in options.items() if k != "norm"}
    try:
        return factory(**options)
    except TypeError as err:
        raise KlugerhansError(f"bad options for composite {composite!r}: {err}") from None


def box_bounds(norm: Normalization | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (3,) lowest and highest input values: pixel values 0 and 1 after normalisation."""
    norm = norm or Normalization()
    mean = torch.tensor(norm.mean, dtype=torch.float64)
    std = torch.tensor(norm.std, dtype=torch.float64)
    return (0 - mean) / std, (1 - mean) / std


@register_composite("epsilon_plus_flat")
def epsilon_plus_flat(epsilon: float = 1e-6, stabilizer: float = 1e-6) -> Composite:
    """Flat for the first layer, z+ for convolutions, epsilon for dense layers (the default)."""
    return Composite(
        ZPlus(stabilizer), Epsilon(epsilon), Flat(stabilizer), False, Norm(stabilizer), "epsilon_plus_flat"
    )


@register_composite("epsilon_gamma_box")
def epsilon_gamma_box(
    low: float | Sequence[float] | torch.Tensor | None = None,
    high: float | Sequence[float] | torch.Tensor | None = None,
    epsilon: float = 1e-6,
    gamma: float = 0.25,
    stabilizer: float = 1e-6,
    norm: Normalization | None = None,
) -> Composite:
    """z^B for the first convolution, gamma for the others, epsilon for dense layers.

    ``low``/``high`` default to the normalised images of pixel values 0 and 1 under ``norm`` (GTSRB's by default).
    """
    if (low is None) != (high is None):
        raise KlugerhansError("give both low and high, or neither")
    if low is None or high is None:
        low, high = box_bounds(norm)
    return Composite(
        Gamma(gamma, stabilizer),
        Epsilon(epsilon),
        ZBox(low, high, stabilizer),
        True,
        Norm(stabilizer),
        "epsilon_gamma_box",
    )


@register_composite("epsilon_plus")
def epsilon_plus(epsilon: float = 1e-6, stabilizer: float = 1e-6) -> Composite:
    """z+ for every convolution, epsilon for dense layers."""
    return Composite(ZPlus(stabilizer), Epsilon(epsilon), None, False, Norm(stabilizer), "epsilon_plus")


@register_composite("epsilon_alpha2_beta1")
def epsilon_alpha2_beta1(epsilon: float = 1e-6, stabilizer: float = 1e-6) -> Composite:
    """alpha=2, beta=1 for every convolution, epsilon for dense layers."""
    return Composite(
        AlphaBeta(2.0, 1.0, stabilizer), Epsilon(epsilon), None, False, Norm(stabilizer), "epsilon_alpha2_beta1"
    )


@register_composite("epsilon_alpha2_beta1_flat")
def epsilon_alpha2_beta1_flat(epsilon: float = 1e-6, stabilizer: float = 1e-6) -> Composite:
    """Flat for the first layer, alpha=2, beta=1 for other convolutions, epsilon for dense layers."""
    return Composite(
        AlphaBeta(2.0, 1.0, stabilizer),
        Epsilon(epsilon),
        Flat(stabilizer),
        False,
        Norm(stabilizer),
        "epsilon_alpha2_beta1_flat",
    )
