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

Residual additions get the same ``Norm`` rule as average pooling (zennit gives it to the ``Sum`` module of its
``ResNetCanonizer``). ReLU & co., dropout and (lone) BatchNorm/LayerNorm pass relevance through unchanged; max
pooling passes it to each window's maximum (its gradient); see :mod:`klugerhans.explain.propagators`. "First layer"
is the first conv or dense layer in forward order (for ``epsilon_gamma_box`` the first convolution), the same on
every architecture. Add your own with :func:`register_composite`.

A composite is a map from layer type to rule, and its factory declares what it needs of the caller: a factory that
takes ``norm`` needs the input's bounds (``epsilon_gamma_box``), and :func:`get_composite` hands the model's
normalisation only to such factories, so that no caller tests a composite's name. The engine knows no dataset: the
bounds come from the caller (``norm=`` with ``mean``/``std``, or ``low``/``high``), never from a default.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import torch

from klugerhans.defaults import DEFAULT_COMPOSITE, DEFAULT_FALLBACK
from klugerhans.errors import KlugerhansError
from klugerhans.explain.canonizers import INPUT, Node, relevance_path
from klugerhans.explain.layers import (
    Add,
    Affine,
    AvgPool,
    Concat,
    Custom,
    Elementwise,
    Flatten,
    Layer,
    MaxPool,
    Multiply,
    Opaque,
    Reshape,
)
from klugerhans.explain.propagators import ForwardPropagator, GradientPropagator, propagator_for
from klugerhans.explain.rules import AlphaBeta, Epsilon, Flat, Gamma, Norm, Propagator, Rule, ZBox, ZPlus
from klugerhans.registry import Registry

__all__ = [
    "COMPOSITES",
    "DEFAULT_COMPOSITE",
    "Binding",
    "Composite",
    "Fallback",
    "InputNorm",
    "NormLike",
    "box_bounds",
    "get_composite",
    "register_composite",
]

Fallback = Literal["error", "gradient"]
"""What to do with an operation without an LRP rule on the relevance path: raise, or propagate by gradient x input."""


class InputNorm(Protocol):
    """The model's input normalisation, ``x = (pixel - mean) / std`` per channel on the 0..1 pixel scale.

    Any object with ``mean`` and ``std`` sequences fits (``klugerhans.models.Normalization`` does), so the engine
    takes a checkpoint's normalisation without importing the models layer.
    """

    @property
    def mean(self) -> Sequence[float]: ...

    @property
    def std(self) -> Sequence[float]: ...


NormLike = InputNorm | tuple[Sequence[float], Sequence[float]]
"""An :class:`InputNorm` or a plain ``(mean, std)`` pair."""


@dataclass(frozen=True)
class Binding:
    """A composite bound to a canonized graph: one propagator per node."""

    propagators: tuple[Propagator, ...]
    fallback_ops: tuple[str, ...]
    """Names of the operations on the relevance path that have no LRP rule and use :class:`GradientPropagator`."""
    rule_share: float
    """Share of the operations on the relevance path with an LRP rule or treatment (1.0 without fallbacks)."""


def _forward_of(layer: Layer) -> Any:
    return layer.function if isinstance(layer, Opaque) else layer.forward


def _output_sign(layer: Layer, inputs: list[bool]) -> bool:
    """Whether the layer's output is never negative, given which of its inputs never are."""
    if isinstance(layer, Elementwise):
        sign = layer.output_nonnegative
        return inputs[0] if sign is None else sign
    if isinstance(layer, MaxPool | AvgPool | Concat | Flatten | Reshape):
        return all(inputs)
    if isinstance(layer, Add | Multiply):
        constant = layer.constant
        nonnegative_constant = constant is None or bool(torch.as_tensor(constant).min() >= 0)
        return all(inputs) and nonnegative_constant
    return False


@dataclass(frozen=True, kw_only=True)
class Composite:
    """A rule for every layer type; :meth:`bind` applies it to a canonized graph.

    All fields are keyword-only: ``Composite(conv=ZPlus(), linear=Epsilon(), first=Flat())``.
    """

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
    sum: Norm = field(default_factory=Norm)
    """Rule for additions (residual connections)."""
    name: str = "custom"
    """Registry name, for reports."""

    def assign(self, nodes: Sequence[Node]) -> list[Rule | Norm | None]:
        """The rule of each node (None: a fixed treatment, see :mod:`klugerhans.explain.propagators`)."""
        rules: list[Rule | Norm | None] = []
        first_pending = self.first is not None
        for node in nodes:
            layer = node.layer
            if isinstance(layer, Affine):
                rule = self.conv if layer.is_conv else self.linear
                if self.first is not None and first_pending and (layer.is_conv or not self.first_conv_only):
                    rule, first_pending = self.first, False
                rules.append(rule)
            else:
                rules.append(self.pool if isinstance(layer, AvgPool) else self.sum if isinstance(layer, Add) else None)
        return rules

    def bind(self, nodes: Sequence[Node], *, fallback: Fallback = DEFAULT_FALLBACK) -> Binding:
        """One propagator per node of a canonized graph (see :func:`klugerhans.explain.canonizers.canonize`).

        Args:
            nodes: the graph.
            fallback: ``"error"`` raises for an operation without an LRP rule on the relevance path; ``"gradient"``
                propagates relevance through it as gradient x input (see :class:`GradientPropagator`).

        Raises:
            KlugerhansError: an operation on the relevance path has no rule and ``fallback`` is ``"error"``.
        """
        if fallback not in ("error", "gradient"):
            raise KlugerhansError(f"fallback must be 'error' or 'gradient', got {fallback!r}")
        path = relevance_path(nodes)
        plan: list[Propagator] = []
        signs: list[bool] = []  # whether each node's output is never negative; the network input may be
        fallbacks: list[str] = []
        for node, rule, on in zip(nodes, self.assign(nodes), path, strict=True):
            layer = node.layer
            inputs = [False if j == INPUT else signs[j] for j in node.inputs]
            signs.append(_output_sign(layer, inputs))
            unsupported = isinstance(layer, Opaque) or (isinstance(layer, Elementwise) and not layer.passes_relevance)
            if not on:
                plan.append(ForwardPropagator(_forward_of(layer)))
            elif unsupported:
                what = layer.description if isinstance(layer, Opaque) else getattr(layer, "kind", "?")
                if fallback == "error":
                    raise KlugerhansError(
                        f"no LRP rule for {what} at {node.name!r}: pass fallback='gradient' (--fallback gradient) to "
                        "propagate relevance through it as gradient x input"
                    )
                fallbacks.append(node.name)
                plan.append(GradientPropagator(Opaque(_forward_of(layer), what)))
            elif isinstance(layer, Custom):
                propagator = layer.propagator(layer.module)
                assert isinstance(propagator, Propagator)
                plan.append(propagator)
            elif isinstance(layer, Affine):
                assert isinstance(rule, Rule)
                plan.append(rule.bind(layer, nonnegative_input=inputs[0]))
            elif isinstance(layer, AvgPool | Add):
                assert isinstance(rule, Norm)
                plan.append(rule.bind(layer))
            else:
                plan.append(propagator_for(layer))
        share = 1.0 - len(fallbacks) / max(sum(path), 1)
        return Binding(tuple(plan), tuple(fallbacks), share)


COMPOSITES: Registry[Callable[..., Composite]] = Registry("composite")
"""Composite factories by name; ``COMPOSITES[name](**options)`` builds one."""
register_composite = COMPOSITES.register


def get_composite(composite: str | Composite, **options: Any) -> Composite:
    """Return ``composite`` itself, or build the registered composite of that name with ``options``.

    ``norm`` (the model's input normalisation, :data:`NormLike`) may always be given: a composite whose rules need
    the input's bounds declares it by taking ``norm`` in its factory (``epsilon_gamma_box``); the others never see it.
    """
    if isinstance(composite, Composite):
        if set(options) - {"norm"}:
            raise KlugerhansError("options can only be given with a composite name, not a Composite")
        return composite
    factory = COMPOSITES.get_or_raise(composite)
    if "norm" in options and "norm" not in inspect.signature(factory).parameters:
        options = {k: v for k, v in options.items() if k != "norm"}
    try:
        return factory(**options)
    except TypeError as err:
        raise KlugerhansError(f"bad options for composite {composite!r}: {err}") from None


def box_bounds(norm: NormLike) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel lowest and highest input values: pixel values 0 and 1 after normalisation.

    Args:
        norm: the model's input normalisation: an object with ``mean`` and ``std``, or a ``(mean, std)`` pair.

    Returns:
        ``(low, high)``, float64 tensors shaped like ``mean``.
    """
    mean_std = norm if isinstance(norm, tuple) else (norm.mean, norm.std)
    mean = torch.tensor(mean_std[0], dtype=torch.float64)
    std = torch.tensor(mean_std[1], dtype=torch.float64)
    return (0 - mean) / std, (1 - mean) / std


def _epsilon_composite(
    name: str, conv: Rule, epsilon: float, stabilizer: float, first: Rule | None = None
) -> Composite:
    # The shared frame of zennit's named composites: epsilon on dense layers, Norm on pooling and sums.
    return Composite(
        conv=conv, linear=Epsilon(epsilon), first=first, pool=Norm(stabilizer), sum=Norm(stabilizer), name=name
    )


@register_composite("epsilon_plus_flat")
def epsilon_plus_flat(epsilon: float = 1e-6, stabilizer: float = 1e-6) -> Composite:
    """Flat for the first layer, z+ for convolutions, epsilon for dense layers (the default)."""
    return _epsilon_composite("epsilon_plus_flat", ZPlus(stabilizer), epsilon, stabilizer, first=Flat(stabilizer))


@register_composite("epsilon_gamma_box")
def epsilon_gamma_box(
    low: float | Sequence[float] | torch.Tensor | None = None,
    high: float | Sequence[float] | torch.Tensor | None = None,
    epsilon: float = 1e-6,
    gamma: float = 0.25,
    stabilizer: float = 1e-6,
    norm: NormLike | None = None,
) -> Composite:
    """z^B for the first convolution, gamma for the others, epsilon for dense layers.

    The box rule needs the input's bounds: ``low``/``high`` as given, or else the normalised images of pixel values
    0 and 1 under ``norm`` (taking ``norm`` declares the need; :func:`get_composite` passes the model's).

    Raises:
        KlugerhansError: only one of ``low``/``high``, or neither of them nor ``norm``.
    """
    if (low is None) != (high is None):
        raise KlugerhansError("give both low and high, or neither")
    if low is None or high is None:
        if norm is None:
            raise KlugerhansError(
                "epsilon_gamma_box needs the input's bounds: pass norm= (the model's normalisation) or low=/high="
            )
        low, high = box_bounds(norm)
    return Composite(
        conv=Gamma(gamma, stabilizer),
        linear=Epsilon(epsilon),
        first=ZBox(low, high, stabilizer),
        first_conv_only=True,
        pool=Norm(stabilizer),
        sum=Norm(stabilizer),
        name="epsilon_gamma_box",
    )


@register_composite("epsilon_plus")
def epsilon_plus(epsilon: float = 1e-6, stabilizer: float = 1e-6) -> Composite:
    """z+ for every convolution, epsilon for dense layers."""
    return _epsilon_composite("epsilon_plus", ZPlus(stabilizer), epsilon, stabilizer)


@register_composite("epsilon_alpha2_beta1")
def epsilon_alpha2_beta1(epsilon: float = 1e-6, stabilizer: float = 1e-6) -> Composite:
    """alpha=2, beta=1 for every convolution, epsilon for dense layers."""
    return _epsilon_composite("epsilon_alpha2_beta1", AlphaBeta(2.0, 1.0, stabilizer), epsilon, stabilizer)


@register_composite("epsilon_alpha2_beta1_flat")
def epsilon_alpha2_beta1_flat(epsilon: float = 1e-6, stabilizer: float = 1e-6) -> Composite:
    """Flat for the first layer, alpha=2, beta=1 for other convolutions, epsilon for dense layers."""
    conv = AlphaBeta(2.0, 1.0, stabilizer)
    return _epsilon_composite("epsilon_alpha2_beta1_flat", conv, epsilon, stabilizer, first=Flat(stabilizer))
