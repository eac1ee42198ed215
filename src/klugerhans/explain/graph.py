"""The LRP engine: canonize once, then explain batch after batch with explicit per-layer formulas.

Layer-wise Relevance Propagation (Bach et al. 2015) starts from the output relevance and redistributes it layer by
layer down to the pixels. :class:`GraphLRP` does this without hooks on the user's model: it traces the model into a
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

from typing import Any

import torch
from torch import nn

from klugerhans.defaults import DEFAULT_FALLBACK
from klugerhans.errors import KlugerhansError
from klugerhans.explain.canonizers import INPUT, canonize, relevance_path
from klugerhans.explain.composites import Binding, Composite, Fallback
from klugerhans.explain.explanation import Engine, Explanation, Init, Target, resolve_targets
from klugerhans.explain.layers import Affine, Opaque

__all__ = ["GraphLRP"]


class GraphLRP(Engine):
    """The traced engine for CNNs and any model ``torch.fx`` traces into supported operations (see the module).

    Arguments as :class:`~klugerhans.explain.lrp.LRP`; build it through ``LRP(model, ...)``.
    """

    def __init__(
        self, model: nn.Module, composite: Composite, init: Init = "logit", fallback: Fallback = DEFAULT_FALLBACK
    ):
        self.composite = composite
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
        targets = resolve_targets(target, logits)
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
