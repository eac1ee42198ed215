"""The LRP engine: canonize once, then explain batch after batch with explicit per-layer formulas.

Layer-wise Relevance Propagation (Bach et al. 2015) starts from the output relevance and redistributes it layer by
layer down to the pixels. :class:`LRP` does this without hooks on the user's model: it traces the model into a
canonized graph (:func:`~klugerhans.explain.canonizers.canonize`), binds every node to its rule once
(:meth:`~klugerhans.explain.composites.Composite.bind`), runs one forward pass that keeps the inputs (and the
rules' denominators) of every node, and propagates relevance back op by op in reverse order with transposed
convolutions/matrix products under ``torch.no_grad``; where the graph branches, the relevance of all consumers
adds up. The model itself is never touched (parameters, buffers, mode, hooks, ``requires_grad``).

Output relevance: by default the target logit, ``R_out = onehot(target) * logits``, so that the input relevance
sums to the logit where rules conserve (Bach et al. 2015). zennit's ``Gradient(model, composite)(x, onehot)`` starts
from ``onehot`` instead; ``init="one"`` gives that (heatmaps differ by the factor ``logit``, so also in sign when
the logit is negative); ``attributor(x, lambda out: onehot * out)`` in zennit equals our default.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from klugerhans.errors import KlugerhansError
from klugerhans.explain.canonizers import INPUT, canonize, relevance_path
from klugerhans.explain.composites import Binding, Composite, Fallback, get_composite
from klugerhans.explain.layers import Affine, Opaque
from klugerhans.models.preprocess import Normalization, to_tensor

__all__ = ["LRP", "Explanation", "Target", "compute_heatmaps", "coverage_line", "explain_dataset"]

Target = int | Sequence[int] | np.ndarray | torch.Tensor | None
"""Class to explain: None = the predicted class, an int for all images, or one class id per image."""
Init = Literal["logit", "one"]


@dataclass(frozen=True)
class Explanation:
    """Heatmaps of a batch together with what they explain."""

    relevance: torch.Tensor
    """(N, 3, H, W) input relevance ((N, h, w) from :func:`explain_dataset` with summed channels)."""
    logits: torch.Tensor
    """(N, C) model output (computed by the canonized network, equal to ``model.eval()(x)`` up to rounding)."""
    targets: torch.Tensor
    """(N,) int64 explained class per image."""

    def __len__(self) -> int:
        return len(self.targets)


def _resolve_targets(target: Target, logits: torch.Tensor) -> torch.Tensor:
    n, classes = logits.shape
    if target is None:
        return logits.argmax(1)
    if isinstance(target, int | np.integer):
        t = torch.full((n,), int(target), dtype=torch.long, device=logits.device)
    else:
        t = torch.as_tensor(np.asarray(target) if not isinstance(target, torch.Tensor) else target)
        if t.dtype.is_floating_point or t.dtype == torch.bool or t.shape != (n,):
            raise KlugerhansError(
                f"targets must be {n} integer class ids (one per image), got {t.dtype} {tuple(t.shape)}"
            )
        t = t.to(device=logits.device, dtype=torch.long)
    if n and (int(t.min()) < 0 or int(t.max()) >= classes):
        raise KlugerhansError(f"target classes must be in 0..{classes - 1}, got {int(t.min())}..{int(t.max())}")
    return t


class LRP:
    """Explain a model's decisions with a composite of LRP rules; reusable across batches.

    Args:
        model: a klugerhans VGG, a torchvision CNN (VGG, ResNet, ResNeXt, DenseNet, MobileNet, EfficientNet, RegNet,
            ConvNeXt, ...) or any model ``torch.fx`` can trace into supported operations; read once here (later
            changes to its weights are not seen) and never modified. Always explained in eval mode.
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
        model: nn.Module,
        composite: str | Composite = "epsilon_plus_flat",
        *,
        init: Init = "logit",
        fallback: Fallback = "error",
        **options: object,
    ):
        if init not in ("logit", "one"):
            raise KlugerhansError(f"init must be 'logit' or 'one', got {init!r}")
        self.composite = get_composite(composite, **options)
        self.init = init
        self.fallback: Fallback = fallback
        self.graph = canonize(model)
        self._bind()
        first = next(node.layer for node in self.graph if isinstance(node.layer, Affine))
        assert isinstance(first, Affine)
        self.device, self.dtype = first.weight.device, first.weight.dtype

    def _bind(self) -> None:
        binding: Binding = self.composite.bind(self.graph, fallback=self.fallback)
        self._plan = binding.propagators
        self.fallback_ops = binding.fallback_ops
        """Operations on the relevance path propagated by gradient x input (``fallback="gradient"``)."""
        self.rule_share = binding.rule_share
        """Share of the operations on the relevance path that have an LRP rule (1.0 without fallbacks)."""
        inputs = [node.inputs for node in self.graph]
        last_use: dict[int, int] = {}
        for i, ids in enumerate(inputs):
            for j in ids:
                last_use[j] = i
        self._inputs = inputs
        self._free_after = [[j for j in ids if last_use[j] == i and j != INPUT] for i, ids in enumerate(inputs)]

    def coverage(self) -> dict[str, Any]:
        """How much of the model the LRP rules cover, for reports (JSON-ready).

        Returns:
            ``lrp_rule_share`` (:attr:`rule_share`), ``n_ops`` (operations on the relevance path) and
            ``fallback_ops``: one ``{"op": ..., "module": ...}`` per operation propagated by the gradient fallback.
        """
        names = set(self.fallback_ops)
        ops = []
        for node in self.graph:
            if node.name in names:
                layer = node.layer
                what = layer.description if isinstance(layer, Opaque) else getattr(layer, "kind", "?")
                ops.append({"op": what.split()[-1] if isinstance(layer, Opaque) else what, "module": node.name})
        return {
            "lrp_rule_share": float(self.rule_share),
            "n_ops": int(sum(relevance_path(self.graph))),
            "fallback_ops": ops,
        }

    def with_composite(self, composite: str | Composite, **options: object) -> LRP:
        """A new explainer with another composite that shares this one's canonized network (no re-canonizing)."""
        other = LRP.__new__(LRP)
        other.__dict__.update(self.__dict__)
        other.composite = get_composite(composite, **options)
        other._bind()
        return other

    @torch.no_grad()
    def explain(self, x: torch.Tensor, target: Target = None) -> Explanation:
        """Explain one batch: ``x`` (N, 3, H, W) normalised -> :class:`Explanation` on ``x``'s device."""
        if not isinstance(x, torch.Tensor) or x.ndim < 2 or not x.is_floating_point():
            raise KlugerhansError(
                "input must be a float tensor of shape (N, 3, H, W), normalised like the training data"
            )
        h = x.detach().to(self.device, self.dtype)
        values: list[torch.Tensor | None] = []
        saved: list[object] = []
        try:
            for step, ids, free in zip(self._plan, self._inputs, self._free_after, strict=True):
                args = [h if j == INPUT else values[j] for j in ids]
                out, context = step.forward(*args)  # type: ignore[arg-type]
                values.append(out)
                saved.append(context)
                for j in free:  # the engine keeps no output longer than its last consumer needs it
                    values[j] = None
        except RuntimeError as err:  # e.g. an image too small for the poolings; the layer checks catch the rest
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise KlugerhansError(f"the model cannot take input of shape {tuple(x.shape)}: {reason}") from None
        logits = values[-1]
        assert logits is not None
        del values
        if logits.ndim != 2:
            raise KlugerhansError(f"the model must output (N, classes) logits, got {tuple(logits.shape)}")
        targets = _resolve_targets(target, logits)
        index = targets[:, None]
        start = logits.gather(1, index) if self.init == "logit" else torch.ones_like(index, dtype=logits.dtype)
        relevance = self._backward(saved, torch.zeros_like(logits).scatter_(1, index, start))
        if relevance is None:  # no path from the output to the input
            relevance = torch.zeros_like(h)
        return Explanation(relevance.to(x.device), logits.to(x.device), targets.to(x.device))

    def _backward(self, saved: list[object], start: torch.Tensor) -> torch.Tensor | None:
        """Propagate ``start`` (the output relevance) back through the graph; the relevance of the model input."""
        pending: list[torch.Tensor | None] = [None] * len(self._plan)
        pending[-1] = start
        result = None
        for i in range(len(self._plan) - 1, -1, -1):
            relevance, context = pending[i], saved.pop()  # pop: free each node's tensors once used
            pending[i] = None
            if relevance is None:  # no relevance reaches this node (a gate)
                continue
            out = self._plan[i].backward(context, relevance)
            for j, r in zip(self._inputs[i], (out,) if isinstance(out, torch.Tensor) else out, strict=True):
                if r is None:
                    continue
                if j == INPUT:
                    result = r if result is None else result + r
                else:
                    previous = pending[j]
                    pending[j] = r if previous is None else previous + r
        return result

    def explain_batches(
        self, x: torch.Tensor, target: Target = None, batch_size: int = 64
    ) -> Iterator[tuple[slice, Explanation]]:
        """Yield ``(rows, explanation)`` for consecutive batches of ``x``."""
        if batch_size < 1:
            raise KlugerhansError(f"batch size must be >= 1, got {batch_size}")
        targets = None if target is None or isinstance(target, int | np.integer) else torch.as_tensor(target)
        if targets is not None and len(targets) != len(x):
            raise KlugerhansError(f"got {len(targets)} targets for {len(x)} images")
        for start in range(0, len(x), batch_size):
            rows = slice(start, min(start + batch_size, len(x)))
            batch_target = target if targets is None else targets[rows]
            yield rows, self.explain(x[rows], batch_target)

    def __call__(self, x: torch.Tensor, target: Target = None, batch_size: int = 64) -> Explanation:
        """Explain all of ``x`` in batches of ``batch_size``; see :meth:`explain`."""
        parts = [expl for _, expl in self.explain_batches(x, target, batch_size)]
        if not parts:
            raise KlugerhansError("no images to explain")
        return Explanation(*(torch.cat([getattr(p, f) for p in parts]) for f in ("relevance", "logits", "targets")))


def coverage_line(coverage: dict[str, Any]) -> str:
    """One line for a report: "LRP rules covered X of Y operations; gradient fallback for: op (module), ..."."""
    n = coverage["n_ops"]
    ops = coverage["fallback_ops"]
    line = f"LRP rules covered {n - len(ops)} of {n} operations"
    if ops:
        line += "; gradient fallback for: " + ", ".join(f"{o['op']} ({o['module']})" for o in ops)
    return line


def _explainer(model: nn.Module | LRP, composite: str | Composite | None, options: dict[str, object]) -> LRP:
    if isinstance(model, LRP):
        if composite is not None or options:
            raise KlugerhansError("pass the composite when building the LRP explainer, not again here")
        return model
    return LRP(model, composite or "epsilon_plus_flat", **options)  # type: ignore[arg-type]


def compute_heatmaps(
    model: nn.Module | LRP,
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
    model: nn.Module | LRP,
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
