"""The one entry point of LRP: ``LRP(model, composite).attribute(x, target)``; it picks the engine the model needs.

Layer-wise Relevance Propagation (Bach et al. 2015) starts from the output relevance and redistributes it layer by
layer down to the pixels, each layer by its rule (a composite says which: :mod:`klugerhans.explain.composites`).
Two engines do it, behind one interface (:class:`~klugerhans.explain.explanation.Explainer`):

- :class:`~klugerhans.explain.graph.GraphLRP` for CNNs (our VGG, torchvision's ResNets, DenseNets, ConvNeXts, ...):
  traces the model once into a canonized graph and propagates with explicit per-layer formulas (equal to zennit);
- :class:`~klugerhans.explain.attention.AttnLRP` for transformers (any model with an attention module: ViT, DeiT,
  Swin, ...): AttnLRP's rules and CP-LRP inside the attention, in gradient x input form (equal to LXT).

Output relevance: by default the target logit, ``R_out = onehot(target) * logits``, so that the input relevance
sums to the logit where rules conserve (Bach et al. 2015). zennit's ``Gradient(model, composite)(x, onehot)`` starts
from ``onehot`` instead; ``init="one"`` gives that (heatmaps differ by the factor ``logit``, so also in sign when
the logit is negative); ``attributor(x, lambda out: onehot * out)`` in zennit equals our default.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from klugerhans.defaults import DEFAULT_FALLBACK
from klugerhans.errors import KlugerhansError
from klugerhans.explain.attention import AttnLRP, has_attention
from klugerhans.explain.composites import DEFAULT_COMPOSITE, Composite, Fallback, get_composite
from klugerhans.explain.explanation import Engine, Explainer, Explanation, Init, Target
from klugerhans.explain.graph import GraphLRP

__all__ = ["LRP", "Explanation", "Target", "as_explainer", "compute_heatmaps", "coverage_line"]


class LRP(Explainer):
    """Explain a model's decisions with a composite of LRP rules; reusable across batches.

    Args:
        model: a klugerhans VGG, a torchvision CNN (VGG, ResNet, ResNeXt, DenseNet, MobileNet, EfficientNet, RegNet,
            ConvNeXt, ...), any model ``torch.fx`` can trace into supported operations, or a transformer
            (torchvision's ViT and Swin, timm's ViT, DeiT and Swin); read once here (later changes to its weights are
            not seen) and never modified. Always explained in eval mode.
        composite: a registered composite name (see :mod:`klugerhans.explain.composites`) or a ``Composite``.
        init: output relevance, ``"logit"`` (``onehot * logits``, default) or ``"one"`` (``onehot``, as zennit's
            ``attributor(x, onehot)``).
        fallback: ``"error"`` (default) refuses a model with an operation on the relevance path that has no LRP
            rule, naming it; ``"gradient"`` propagates through such operations as gradient x input and lists them
            in :attr:`fallback_ops` (:attr:`rule_share`: the share of operations with an LRP rule).
        **options: options of the named composite, e.g. ``epsilon=1e-3``, ``low=..., high=...``, or ``norm=`` (the
            model's input normalisation: a ``(mean, std)`` pair or an object with ``mean``/``std``), which reaches
            only the composites that need the input's bounds.

    Example:
        >>> lrp = LRP(model, "epsilon_gamma_box", norm=(mean, std))
        >>> expl = lrp.attribute(x)  # x: (N, 3, S, S) normalised; expl.relevance: (N, 3, S, S)
    """

    def __init__(
        self,
        model: nn.Module | Engine,
        composite: str | Composite = DEFAULT_COMPOSITE,
        *,
        init: Init = "logit",
        fallback: Fallback = DEFAULT_FALLBACK,
        **options: object,
    ):
        if isinstance(model, Engine):  # with_composite: an engine already built
            self.engine = model
        else:
            if init not in ("logit", "one"):
                raise KlugerhansError(f"init must be 'logit' or 'one', got {init!r}")
            engine = AttnLRP if has_attention(model) else GraphLRP
            self.engine = engine(model, get_composite(composite, **options), init, fallback)
        self.device, self.dtype = self.engine.device, self.engine.dtype
        self.fallback_ops, self.rule_share = self.engine.fallback_ops, self.engine.rule_share

    @property
    def composite(self) -> Composite:
        """The rules in use."""
        composite: Composite = self.engine.composite
        return composite

    def explain(self, x: torch.Tensor, target: Target = None) -> Explanation:
        """The engine's step, one batch; callers use :meth:`attribute`."""
        return self.engine.explain(x, target)

    def coverage(self) -> dict[str, Any]:
        """How much of the model the LRP rules cover, for reports (JSON-ready).

        Returns:
            ``lrp_rule_share`` (:attr:`rule_share`), ``n_ops`` (operations on the relevance path) and
            ``fallback_ops``: one ``{"op": ..., "module": ...}`` per operation propagated by the gradient fallback.
        """
        return self.engine.coverage()

    def with_composite(self, composite: str | Composite, **options: object) -> LRP:
        """A new explainer with another composite that shares this one's prepared model (no re-tracing)."""
        return LRP(self.engine.with_composite(get_composite(composite, **options)))


def coverage_line(coverage: dict[str, Any]) -> str:
    """One line for a report: "LRP rules covered X of Y operations; gradient fallback for: op (module), ..."."""
    n = coverage["n_ops"]
    ops = coverage["fallback_ops"]
    line = f"LRP rules covered {n - len(ops)} of {n} operations"
    if ops:
        line += "; gradient fallback for: " + ", ".join(f"{o['op']} ({o['module']})" for o in ops)
    return line


def as_explainer(
    model: nn.Module | Explainer, composite: str | Composite | None = None, **options: object
) -> Explainer:
    """``model`` itself if it is an explainer already (then without a composite or options), else ``LRP(model, ...)``.

    Raises:
        KlugerhansError: an explainer together with a composite or options.
    """
    if isinstance(model, Explainer):
        if composite is not None or options:
            raise KlugerhansError("pass the composite when building the LRP explainer, not again here")
        return model
    return LRP(model, composite or DEFAULT_COMPOSITE, **options)  # type: ignore[arg-type]


def compute_heatmaps(
    model: nn.Module | Explainer,
    x: torch.Tensor,
    target: Target = None,
    composite: str | Composite | None = None,
    batch_size: int = 64,
    **options: object,
) -> Explanation:
    """LRP heatmaps of normalised images: ``LRP(model, composite, **options).attribute(x, target, batch_size)``.

    Args:
        model: the classifier (or an :class:`LRP` explainer to reuse its canonized copy).
        x: (N, 3, H, W) normalised images, on any device (computed on the model's).
        target: class to explain: None = predicted, an int, or (N,) class ids.
        composite: rule composite name or ``Composite``; default ``"epsilon_plus_flat"``.
        batch_size: images per forward/backward pass.
        **options: composite options (``epsilon``, ``low``/``high`` or ``norm``, ...), ``init`` and ``fallback``.

    Returns:
        :class:`Explanation` with relevance (N, 3, H, W), logits (N, C) and targets (N,), on ``x``'s device.
    """
    return as_explainer(model, composite, **options).attribute(x, target, batch_size)
