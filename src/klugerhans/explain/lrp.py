"""The one entry point of LRP: ``LRP(model, composite)`` picks the engine the model needs.

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

from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from klugerhans.errors import KlugerhansError
from klugerhans.explain.attention import AttnLRP, has_attention
from klugerhans.explain.composites import Composite, Fallback, get_composite
from klugerhans.explain.explanation import Engine, Explainer, Explanation, Init, Target
from klugerhans.explain.graph import GraphLRP
from klugerhans.models.preprocess import Normalization, to_tensor

__all__ = ["LRP", "Explanation", "Target", "compute_heatmaps", "coverage_line", "explain_dataset"]


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
        **options: options of the named composite, e.g. ``epsilon=1e-3`` or ``low=..., high=...``.

    Example:
        >>> lrp = LRP(model, "epsilon_plus_flat")
        >>> expl = lrp(x)  # x: (N, 3, S, S) normalised; expl.relevance: (N, 3, S, S)
    """

    def __init__(
        self,
        model: nn.Module | Engine,
        composite: str | Composite = "epsilon_plus_flat",
        *,
        init: Init = "logit",
        fallback: Fallback = "error",
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
        """Explain one batch: ``x`` (N, 3, H, W) normalised -> :class:`Explanation` on ``x``'s device."""
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


def _explainer(
    model: nn.Module | Explainer, composite: str | Composite | None, options: dict[str, object]
) -> Explainer:
    if isinstance(model, Explainer):
        if composite is not None or options:
            raise KlugerhansError("pass the composite when building the LRP explainer, not again here")
        return model
    return LRP(model, composite or "epsilon_plus_flat", **options)  # type: ignore[arg-type]


def compute_heatmaps(
    model: nn.Module | Explainer,
    x: torch.Tensor,
    target: Target = None,
    composite: str | Composite | None = None,
    batch_size: int = 64,
    **options: object,
) -> Explanation:
    """LRP heatmaps for a batch of images (Bach et al. 2015).

    Args:
        model: the classifier (or an :class:`LRP` explainer to reuse its canonized copy).
        x: (N, 3, H, W) normalised images, on any device (computed on the model's).
        target: class to explain: None = predicted, an int, or (N,) class ids.
        composite: rule composite name or ``Composite``; default ``"epsilon_plus_flat"``.
        batch_size: images per forward/backward pass.
        **options: composite options (``epsilon``, ``low``/``high``, ...), ``init`` and ``fallback``.

    Returns:
        :class:`Explanation` with relevance (N, 3, H, W), logits (N, C) and targets (N,), on ``x``'s device.
    """
    return _explainer(model, composite, options)(x, target, batch_size)


def _pool_sum(relevance: torch.Tensor, pool: int) -> torch.Tensor:
    """Sum relevance over ``pool x pool`` blocks (keeps the total relevance)."""
    if pool == 1:
        return relevance
    if relevance.shape[-1] % pool or relevance.shape[-2] % pool:
        raise KlugerhansError(f"pool {pool} does not divide the heatmap size {tuple(relevance.shape[-2:])}")
    squeeze = relevance.ndim == 3
    pooled = F.avg_pool2d(relevance[:, None] if squeeze else relevance, pool) * pool**2
    return pooled[:, 0] if squeeze else pooled


def explain_dataset(
    model: nn.Module | Explainer,
    images: np.ndarray | torch.Tensor,
    targets: Target = None,
    composite: str | Composite | None = None,
    batch_size: int = 64,
    norm: Normalization | None = None,
    channels: Literal["sum", "keep"] = "sum",
    pool: int = 1,
    progress: bool = False,
    **options: object,
) -> Explanation:
    """Explain a whole dataset batch by batch; memory holds one batch plus the (reduced) heatmaps kept.

    Args:
        model: the classifier or an :class:`LRP` explainer.
        images: (N, S, S, 3) uint8 RGB (normalised per batch with ``norm``) or (N, 3, S, S) normalised floats.
        targets: None (predicted class), an int, or (N,) class ids, e.g. ``data.labels``.
        composite: rule composite; default ``"epsilon_plus_flat"``.
        batch_size: images per pass.
        norm: normalisation of uint8 images (the checkpoint's); GTSRB's default if None.
        channels: ``"sum"`` keeps (N, S, S) maps summed over colour channels, ``"keep"`` (N, 3, S, S).
        pool: sum relevance over ``pool x pool`` blocks to keep smaller maps (S must be divisible).
        progress: show a tqdm progress bar.
        **options: composite options and ``init``.

    Returns:
        :class:`Explanation` on the CPU, relevance as float32.
    """
    if channels not in ("sum", "keep"):
        raise KlugerhansError(f"channels must be 'sum' or 'keep', got {channels!r}")
    if pool < 1:
        raise KlugerhansError(f"pool must be >= 1, got {pool}")
    raw = isinstance(images, np.ndarray)
    if raw and (images.ndim != 4 or images.shape[3] != 3 or images.dtype != np.uint8):
        raise KlugerhansError(f"images must be (N, S, S, 3) uint8 RGB, got {images.shape} {images.dtype}")
    explainer = _explainer(model, composite, {**options, **({"norm": norm} if norm is not None else {})})
    n = len(images)
    if n == 0:
        raise KlugerhansError("no images to explain")
    all_targets = None if targets is None or isinstance(targets, int | np.integer) else torch.as_tensor(targets)
    if all_targets is not None and len(all_targets) != n:
        raise KlugerhansError(f"got {len(all_targets)} targets for {n} images")
    if batch_size < 1:
        raise KlugerhansError(f"batch size must be >= 1, got {batch_size}")
    starts = range(0, n, batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="LRP", unit="batch")
    relevance = logits = None
    kept_targets = torch.empty(n, dtype=torch.long)
    for start in starts:
        rows = slice(start, min(start + batch_size, n))
        batch = to_tensor(images[rows], norm) if raw else images[rows]
        batch_targets = targets if all_targets is None else all_targets[rows]
        expl = explainer.explain(batch.to(explainer.device), batch_targets)  # type: ignore[union-attr]
        r = expl.relevance.sum(1) if channels == "sum" else expl.relevance
        r = _pool_sum(r, pool).float().cpu()
        if relevance is None or logits is None:
            relevance = torch.empty((n, *r.shape[1:]), dtype=torch.float32)
            logits = torch.empty((n, expl.logits.shape[1]), dtype=expl.logits.dtype)
        relevance[rows] = r
        logits[rows] = expl.logits.cpu()
        kept_targets[rows] = expl.targets.cpu()
    assert relevance is not None and logits is not None
    return Explanation(relevance, logits, kept_targets)
