"""Canonical form of a network for LRP: a graph of layers with every BatchNorm merged into a conv/linear layer.

LRP rules are defined for affine layers followed by ReLUs (Montavon et al. 2019, "Layer-wise relevance
propagation: an overview", sec. 10.2). A BatchNorm right after a conv or linear layer is an affine map too, so it
is folded into that layer's weight and bias, exactly as zennit's ``SequentialMergeBatchNorm`` / ``VGGCanonizer`` /
``ResNetCanonizer`` do (``W' = W * g / sqrt(var + eps)``, ``b' = (b - mean) * g / sqrt(var + eps) + beta``). The
BatchNorm then disappears; zennit 0.5.1 instead leaves it computing ``x / sqrt(1 + eps)`` (fixed upstream in
chr5tphr/zennit#240), so its heatmaps of BatchNorm networks differ from ours by a few 1e-5 of the largest relevance.
A BatchNorm whose only consumer is a dense layer or an unpadded convolution is folded into that layer instead
(``W' = W * scale``, ``b' = b + W shift``); any other BatchNorm (DenseNet's, before a ReLU) stays a layer that passes
relevance through unchanged (zennit's ``Pass`` rule for BatchNorm).

The graph comes from tracing the model's forward pass (:mod:`klugerhans.explain.trace`), so any torchvision CNN
works: residual additions, concatenations, squeeze-and-excitation gates and layout changes are layers of their own.

:func:`canonize` never touches the user's model: it copies the (merged) parameters into new tensors, so the model's
parameters, buffers, train/eval mode, hooks and ``requires_grad`` flags stay exactly as they were. The graph always
has eval-mode semantics (BatchNorm running statistics, no dropout), whatever mode the model is in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from klugerhans.errors import KlugerhansError
from klugerhans.explain.layers import Affine, Elementwise, Layer, Multiply
from klugerhans.explain.leaf_modules import batch_norm_affine
from klugerhans.explain.trace import INPUT, RawNode, trace

__all__ = ["INPUT", "Node", "canonize", "relevance_path"]


@dataclass(frozen=True, eq=False)
class Node:
    """One operation of the canonical graph."""

    layer: Layer
    inputs: tuple[int, ...]
    """Indices of the nodes it reads, in order; :data:`INPUT` (-1) is the model input."""
    name: str
    """Module path in the model (or the module a function was called in plus the call), for messages."""


def _merge(layer: Affine, bn_name: str, bn: nn.BatchNorm1d | nn.BatchNorm2d) -> Affine:
    """Fold an eval-mode BatchNorm into the preceding layer (same formula as zennit's MergeBatchNorm)."""
    mean = bn.running_mean
    if not isinstance(mean, torch.Tensor) or mean.shape[0] != layer.weight.shape[0]:
        raise KlugerhansError(f"layer {bn_name!r}: BatchNorm does not match the layer before it")
    scale, _ = batch_norm_affine(bn_name, bn)
    beta = bn.bias.detach() if isinstance(bn.bias, torch.Tensor) else torch.zeros_like(scale)
    weight = layer.weight * scale.view((-1,) + (1,) * (layer.weight.ndim - 1))
    bias = (layer.bias - mean.detach()) * scale + beta
    return Affine(weight, bias, layer.name, layer.stride, layer.padding, layer.dilation, layer.groups)


def _merge_before(layer: Affine, norm: Elementwise) -> Affine | None:
    """Fold a BatchNorm into the layer after it, where that is exact (no padding, no groups); else None."""
    if norm.scale is None or norm.shift is None or layer.groups != 1 or layer.padding != (0, 0):
        return None
    if layer.weight.shape[1] != norm.scale.shape[0]:
        return None
    view = (1, -1) + (1,) * (layer.weight.ndim - 2)
    weight = layer.weight * norm.scale.view(view)
    bias = layer.bias + (layer.weight * norm.shift.view(view)).flatten(1).sum(1)
    return Affine(weight, bias, layer.name, layer.stride, layer.padding, layer.dilation, layer.groups)


def _consumers(nodes: list[RawNode], output: int) -> list[list[int]]:
    users: list[list[int]] = [[] for _ in nodes]
    for i, node in enumerate(nodes):
        for j in node.inputs:
            if j != INPUT:
                users[j].append(i)
    users[output].append(len(nodes))  # the model output counts as a consumer
    return users


def _merge_batch_norms(nodes: list[RawNode], output: int) -> dict[int, int]:
    """Merge BatchNorms into their conv/linear neighbours in place; returns {removed node: node it became}."""
    users = _consumers(nodes, output)
    alias: dict[int, int] = {}
    with torch.no_grad():
        for i, node in enumerate(nodes):
            layer = node.layer
            bn = node.module
            if not (isinstance(layer, Elementwise) and isinstance(bn, nn.BatchNorm1d | nn.BatchNorm2d)):
                continue
            (source,) = node.inputs
            before = nodes[source].layer if source != INPUT else None
            is_1d = isinstance(bn, nn.BatchNorm1d)
            if isinstance(before, Affine) and users[source] == [i] and before.is_conv != is_1d:
                nodes[source].layer = _merge(before, node.name, bn)
                alias[i] = source
                continue
            if len(users[i]) == 1 and users[i][0] < len(nodes):
                after = nodes[users[i][0]]
                if isinstance(after.layer, Affine) and after.layer.is_conv != is_1d:
                    merged = _merge_before(after.layer, layer)
                    if merged is not None:
                        after.layer = merged
                        alias[i] = source
    return alias


def canonize(model: nn.Module) -> tuple[Node, ...]:
    """Return ``model`` as a graph of layers in forward order, BatchNorms merged into adjacent conv/linear layers.

    Args:
        model: any network whose forward pass ``torch.fx`` can trace (torchvision CNNs, klugerhans' VGG,
            ``nn.Sequential``); it is only read, never modified.

    Returns:
        The nodes in forward order; the last one computes the output. Running each node's layer on the outputs of
        its inputs computes the model's eval-mode output.

    Raises:
        KlugerhansError: the model cannot be traced, has no conv/linear layer, or has a BatchNorm that cannot be
            canonized.
    """
    raw, output = trace(model)
    alias = _merge_batch_norms(raw, output)

    def resolve(j: int) -> int:
        while j in alias:
            j = alias[j]
        return j

    keep = [i for i in range(len(raw)) if i not in alias]
    position = {old: new for new, old in enumerate(keep)}
    position[INPUT] = INPUT
    nodes = []
    for old in keep:
        node = raw[old]
        nodes.append(Node(node.layer, tuple(position[resolve(j)] for j in node.inputs), node.name))
    out = position[resolve(output)]
    if out != len(nodes) - 1:  # computations after the output (unused): drop them
        nodes = nodes[: out + 1]
    if not any(isinstance(node.layer, Affine) for node in nodes):
        raise KlugerhansError("the model has no conv or linear layer to explain")
    return tuple(nodes)


def relevance_path(nodes: Sequence[Node]) -> list[bool]:
    """Which nodes relevance flows through on its way from the output to the input.

    Everything the output depends on, except what only feeds gates (the sigmoid branch of a squeeze-and-excitation
    block): a gate multiplies the signal but gets no relevance itself.
    """
    on = [False] * len(nodes)
    on[-1] = True
    for i in range(len(nodes) - 1, -1, -1):
        if not on[i]:
            continue
        layer = nodes[i].layer
        for k, j in enumerate(nodes[i].inputs):
            if j != INPUT and not (isinstance(layer, Multiply) and k != layer.signal):
                on[j] = True
    return on
