"""What every LRP engine returns and the one verb they share: :class:`Explanation`, :meth:`Explainer.attribute`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from klugerhans.errors import KlugerhansError

__all__ = ["Engine", "Explainer", "Explanation", "Init", "Target", "resolve_targets"]

Target = int | Sequence[int] | np.ndarray | torch.Tensor | None
"""Class to explain: None = the predicted class, an int for all images, or one class id per image."""
Init = Literal["logit", "one"]


@dataclass(frozen=True)
class Explanation:
    """Heatmaps of a batch together with what they explain."""

    relevance: torch.Tensor
    """(N, 3, H, W) input relevance ((N, h, w) from ``klugerhans.heatmaps.explain_dataset`` with summed channels)."""
    logits: torch.Tensor
    """(N, C) model output (computed by the canonized network, equal to ``model.eval()(x)`` up to rounding)."""
    targets: torch.Tensor
    """(N,) int64 explained class per image."""

    def __len__(self) -> int:
        return len(self.targets)


def resolve_targets(target: Target, logits: torch.Tensor) -> torch.Tensor:
    """(N,) int64 class ids on ``logits``' device: ``target`` checked against (N, C) ``logits``."""
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


def per_image_targets(target: Target, n: int) -> torch.Tensor | None:
    """``target`` as an (N,) tensor to slice batch by batch, or None where one target (None: the predicted class, or
    an int) serves every image; a one-line error when the count is not ``n``."""
    if target is None or isinstance(target, int | np.integer):
        return None
    targets = torch.as_tensor(target)
    if len(targets) != n:
        raise KlugerhansError(f"got {len(targets)} targets for {n} images")
    return targets


class Explainer(ABC):
    """An LRP engine bound to one model and composite; :meth:`attribute` gives the relevance of any number of images."""

    device: torch.device
    """Where the engine computes (the model's device)."""
    dtype: torch.dtype
    fallback_ops: tuple[str, ...]
    """Operations on the relevance path propagated by gradient x input (``fallback="gradient"``)."""
    rule_share: float
    """Share of the operations on the relevance path that have an LRP rule (1.0 without fallbacks)."""

    @abstractmethod
    def explain(self, x: torch.Tensor, target: Target = None) -> Explanation:
        """The engine's step, one batch: ``x`` (N, 3, H, W) normalised -> :class:`Explanation` on ``x``'s device.

        Engines implement it; callers use :meth:`attribute`.
        """

    @abstractmethod
    def coverage(self) -> dict[str, Any]:
        """How much of the model the LRP rules cover, for reports (JSON-ready): ``lrp_rule_share``, ``n_ops`` and
        ``fallback_ops`` (one ``{"op": ..., "module": ...}`` per operation propagated by the gradient fallback)."""

    def attribute(self, x: torch.Tensor, target: Target = None, batch_size: int | None = None) -> Explanation:
        """The input relevance of ``x`` for ``target``: the one entry point every caller of the engine uses.

        Args:
            x: (N, 3, H, W) inputs, already normalised as the model expects.
            target: None = the predicted class, an int for all images, or (N,) class ids.
            batch_size: images per forward/backward pass; None = all of ``x`` in one.

        Returns:
            :class:`Explanation` on ``x``'s device.

        Raises:
            KlugerhansError: bad targets, a batch size below 1, or no images in batches.
        """
        if batch_size is None:
            return self.explain(x, target)
        if batch_size < 1:
            raise KlugerhansError(f"batch size must be >= 1, got {batch_size}")
        targets = per_image_targets(target, len(x))
        parts = []
        for start in range(0, len(x), batch_size):
            rows = slice(start, min(start + batch_size, len(x)))
            parts.append(self.explain(x[rows], target if targets is None else targets[rows]))
        if not parts:
            raise KlugerhansError("no images to explain")
        return Explanation(*(torch.cat([getattr(p, f) for p in parts]) for f in ("relevance", "logits", "targets")))


class Engine(Explainer):
    """An explainer that prepares the model once and binds a composite's rules to it (graph, attention)."""

    composite: Any
    """The rules in use (a :class:`~klugerhans.explain.composites.Composite`)."""

    @abstractmethod
    def _bind(self) -> None:
        """Bind :attr:`composite`'s rules to what the engine prepared from the model."""

    def with_composite(self, composite: Any) -> Engine:
        """The same prepared model with another (built) composite; this engine is unchanged."""
        other = object.__new__(type(self))
        other.__dict__.update(self.__dict__)
        other.composite = composite
        other._bind()
        return other
