"""LRP for transformers: AttnLRP's rules outside the attention, CP-LRP inside, in the gradient x input form.

A transformer's tokens pass through operations a CNN engine has no layer for (attention, token selection, position
embeddings, window shifts), so :class:`AttnLRP` does not trace the model: it runs the model's own forward pass with
every nonlinear step replaced by a function of the same value whose *gradient* carries its LRP rule, and reads the
relevance off as gradient x input (the "efficient" form of Achtibat et al. 2024, "AttnLRP: Attention-Aware
Layer-Wise Relevance Propagation for Transformers", ICML; what LXT does). Linear steps need no rule: for them
gradient x input is LRP-0 (biases, position embeddings and the class token absorb their share). The rules:

- **dense and conv modules**: the composite's rules (:mod:`klugerhans.explain.rules`), each wrapped so that its
  backward turns the output relevance (output x gradient) into input relevance and divides by the input;
- **LayerNorm** (every ``F.layer_norm`` call): the standard deviation is held constant (AttnLRP's identity rule on
  the normalisation); centring and the affine part are linear;
- **GELU, SiLU** and the other smooth activations: the identity rule (AttnLRP eq. 9), relevance passes unchanged;
- **attention**: CP-LRP (Ali et al. 2022, "XAI for Transformers: Better Explanations through Conservative
  Propagation"): the attention weights are constants, relevance flows through the values only. Queries and keys
  reach ``F.scaled_dot_product_attention`` detached and every softmax output is a constant, which covers
  torchvision's ``MultiheadAttention`` and Swin and timm's attention modules.

The model is copied once (its weights are read then) and the copy's dense and conv modules are bound to their rules;
the function replacements are active only during a forward pass and change no value, only gradients.
"""

from __future__ import annotations

import contextlib
import copy
import threading
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from klugerhans.defaults import DEFAULT_FALLBACK
from klugerhans.errors import KlugerhansError
from klugerhans.explain.composites import Composite, Fallback
from klugerhans.explain.core import Propagator, Rule, stabilize
from klugerhans.explain.explanation import Engine, Explanation, Init, Target, resolve_targets
from klugerhans.explain.layers import Affine
from klugerhans.explain.modules import module_rule_for

__all__ = ["ATTENTION_MODULES", "AttnLRP", "has_attention"]

ATTENTION_MODULES: tuple[type[nn.Module], ...] = (nn.MultiheadAttention,)
"""Module types that make a model a transformer for :class:`~klugerhans.explain.lrp.LRP` (so it is explained by
:class:`AttnLRP`); besides these, any module whose class name contains ``Attention`` (Swin's, MaxViT's, timm's)."""
TINY = 1e-10
"""Keeps gradient x input's divisions by activations finite (LXT's value)."""
_LOCK = threading.RLock()


def has_attention(model: nn.Module) -> bool:
    """Whether ``model`` contains an attention module (see :data:`ATTENTION_MODULES`)."""
    return any(isinstance(m, ATTENTION_MODULES) or "Attention" in type(m).__name__ for m in model.modules())


class _State:
    """What the rule-bound modules of a model copy read during one forward pass (set under :data:`_LOCK`): the
    propagator of each module (the explainer's composite), the input tensor, and where the relevance of rules that
    read the input directly goes."""

    def __init__(self) -> None:
        self.propagators: dict[str, Propagator] = {}
        self.root: torch.Tensor | None = None
        self.sink: list[torch.Tensor] = []


class _RuleFunction(torch.autograd.Function):
    """A dense or conv layer whose backward applies its LRP rule: gradient in, (relevance / input) out."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, propagator: Propagator, sink: list[torch.Tensor] | None) -> torch.Tensor:
        y, saved = propagator.forward(x)
        ctx.propagator, ctx.saved, ctx.sink = propagator, saved, sink
        ctx.save_for_backward(x, y)
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        x, y = ctx.saved_tensors
        relevance = ctx.propagator.backward(ctx.saved, grad * y)
        assert isinstance(relevance, torch.Tensor)
        if ctx.sink is not None:
            # the model input itself: kept as is, since input-space rules (box, flat) give relevance where x is 0
            ctx.sink.append(relevance)
            return torch.zeros_like(x), None, None
        return relevance / stabilize(x, TINY), None, None


class _IdentityRule(torch.autograd.Function):
    """An elementwise nonlinearity that passes relevance unchanged: gradient x output / input."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, function: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        y = function(x)
        ctx.save_for_backward(y / (x + TINY))
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (ratio,) = ctx.saved_tensors
        return grad * ratio, None


def _rule_forward(name: str, state: _State, x: torch.Tensor) -> torch.Tensor:
    return _RuleFunction.apply(x, state.propagators[name], state.sink if x is state.root else None)


_TARGETS: dict[str, tuple[Any, str]] = {
    "layer_norm": (F, "layer_norm"),
    "gelu": (F, "gelu"),
    "silu": (F, "silu"),
    "softmax": (F, "softmax"),
    "torch.softmax": (torch, "softmax"),
    "Tensor.softmax": (torch.Tensor, "softmax"),
    "scaled_dot_product_attention": (F, "scaled_dot_product_attention"),
}
"""The functions :func:`attention_rules` replaces: name -> (owner, attribute)."""
_ORIGINAL: dict[str, Callable[..., Any]] = {name: getattr(owner, attr) for name, (owner, attr) in _TARGETS.items()}


def _layer_norm(
    x: torch.Tensor,
    normalized_shape: Any,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    eps: float = 1e-5,
) -> torch.Tensor:
    dims = tuple(range(-len(tuple(normalized_shape)), 0))
    centred = x - x.mean(dims, keepdim=True)
    std = (centred.pow(2).mean(dims, keepdim=True) + eps).sqrt()
    y = centred / std.detach()
    if weight is not None:
        y = y * weight
    return y if bias is None else y + bias


def _identity(name: str, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    options = {**kwargs, "inplace": False} if "inplace" in kwargs else kwargs

    def function(t: torch.Tensor) -> torch.Tensor:
        return _ORIGINAL[name](t, *args, **options)

    return _IdentityRule.apply(x, function) if x.requires_grad else function(x)


def _constant(name: str, *args: Any, **kwargs: Any) -> torch.Tensor:
    return _ORIGINAL[name](*args, **kwargs).detach()


def _constant_tensor_softmax(self: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    return _ORIGINAL["Tensor.softmax"](self, *args, **kwargs).detach()


def _conservative_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *args: Any, **kw: Any) -> Any:
    return _ORIGINAL["scaled_dot_product_attention"](query.detach(), key.detach(), value, *args, **kw)


_REPLACEMENTS: dict[str, Callable[..., Any]] = {
    "layer_norm": _layer_norm,
    "gelu": partial(_identity, "gelu"),
    "silu": partial(_identity, "silu"),
    "softmax": partial(_constant, "softmax"),
    "torch.softmax": partial(_constant, "torch.softmax"),
    "Tensor.softmax": _constant_tensor_softmax,  # a function, so that it binds as a method
    "scaled_dot_product_attention": _conservative_attention,
}


@contextlib.contextmanager
def attention_rules() -> Iterator[None]:
    """Within: the functions of :data:`_TARGETS` carry their LRP rules in their gradients (values unchanged)."""
    with _LOCK:
        for name, (owner, attr) in _TARGETS.items():
            setattr(owner, attr, _REPLACEMENTS[name])
        try:
            yield
        finally:
            for name, (owner, attr) in _TARGETS.items():
                setattr(owner, attr, _ORIGINAL[name])


class AttnLRP(Engine):
    """The engine for models with attention (ViT, DeiT, Swin, ...): arguments as :class:`~klugerhans.explain.lrp.LRP`,
    which builds one when the model has an attention module (:func:`has_attention`).

    The composite's conv and dense rules apply to ``nn.Conv2d`` and ``nn.Linear`` modules, its first-layer rule to
    the first of them (the patch embedding); the rest is described in :mod:`klugerhans.explain.attention`.
    Relevance conserves where the rules do: with biases, the class token and the position embeddings at zero, the
    input relevance sums to the logit.
    """

    def __init__(
        self, model: nn.Module, composite: Composite, init: Init = "logit", fallback: Fallback = DEFAULT_FALLBACK
    ):
        self.composite, self.init, self.fallback = composite, init, fallback
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        first = next(iter(self.model.parameters()), None)
        if first is None:
            raise KlugerhansError("the model has no parameters to explain")
        self.device, self.dtype = first.device, first.dtype
        self._state = _State()
        self._layers: dict[str, Affine] = {}
        self._custom: dict[str, Propagator] = {}
        for name, m in self.model.named_modules():
            custom = module_rule_for(m)
            if custom is not None:  # its propagator computes an unpatched twin (same parameters)
                self._custom[name] = custom.propagator(copy.copy(m))
            elif (layer := Affine.of_module(name, m, copy=False)) is not None:
                self._layers[name] = layer
            else:
                continue
            m.forward = partial(_rule_forward, name, self._state)
        self._bind()

    def _bind(self) -> None:
        """Each dense and conv module's rule, in module order (the first is the input's: the patch embedding)."""
        rules = self.composite
        pending = rules.first is not None
        self._propagators: dict[str, Propagator] = dict(self._custom)
        for name, layer in self._layers.items():
            rule: Rule = rules.conv if layer.is_conv else rules.linear
            if pending and rules.first is not None and (layer.is_conv or not rules.first_conv_only):
                rule, pending = rules.first, False
            self._propagators[name] = rule.bind(layer, nonnegative_input=False)
        self.fallback_ops: tuple[str, ...] = ()
        self.rule_share = 1.0

    def coverage(self) -> dict[str, Any]:
        """As :meth:`LRP.coverage`; ``n_ops`` counts the dense and conv modules with a rule."""
        return {"lrp_rule_share": 1.0, "n_ops": len(self._layers) + len(self._custom), "fallback_ops": []}

    def explain(self, x: torch.Tensor, target: Target = None) -> Explanation:
        if not isinstance(x, torch.Tensor) or x.ndim < 2 or not x.is_floating_point():
            raise KlugerhansError(
                "input must be a float tensor of shape (N, 3, H, W), normalised like the training data"
            )
        h = x.detach().to(self.device, self.dtype).requires_grad_(True)
        state, sink = self._state, list[torch.Tensor]()
        try:
            with _LOCK, torch.enable_grad(), attention_rules():
                state.propagators, state.root, state.sink = self._propagators, h, sink
                logits = self.model(h)
        except (RuntimeError, ValueError, AssertionError) as err:
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise KlugerhansError(f"the model cannot take input of shape {tuple(x.shape)}: {reason}") from None
        finally:
            state.root = None
        if not isinstance(logits, torch.Tensor) or logits.ndim != 2:
            raise KlugerhansError("the model must output (N, classes) logits")
        targets = resolve_targets(target, logits)
        chosen = logits.gather(1, targets[:, None])
        seed = torch.ones_like(chosen) if self.init == "logit" else 1 / stabilize(chosen.detach(), TINY)
        (grad,) = torch.autograd.grad(chosen, h, grad_outputs=seed, allow_unused=True)
        relevance = h.detach() * grad if grad is not None else torch.zeros_like(h)
        for part in sink:
            relevance = relevance + part
        return Explanation(relevance.to(x.device), logits.detach().to(x.device), targets.to(x.device))
