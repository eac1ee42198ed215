"""Trace a model's forward pass into a graph of layers, op by op, with ``torch.fx``.

``torch.fx.symbolic_trace`` records what ``forward`` does without running it; torch.nn layers (Conv2d, BatchNorm,
ReLU, pooling, ...) stay single calls (their layers: :mod:`klugerhans.explain.leaf_modules`), everything else
(torchvision's blocks, their additions, concatenations, gates and permutations) is traced through to functions and
methods. Each recorded call becomes one :mod:`~klugerhans.explain.layers` layer with private copies of the
parameters; calls neither module knows become
:class:`~klugerhans.explain.layers.Opaque` layers that compute exactly what the model computes, so that the explainer
can name them (or fall back to the gradient) only where relevance has to flow through them.

Eval-mode semantics throughout: dropout and stochastic depth are the identity, BatchNorm uses running statistics.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from klugerhans.errors import KlugerhansError
from klugerhans.explain.affine import pair
from klugerhans.explain.layers import (
    Add,
    AvgPool,
    Concat,
    Elementwise,
    Flatten,
    Layer,
    LayerNorm,
    MaxPool,
    Multiply,
    Opaque,
    Reshape,
)
from klugerhans.explain.leaf_modules import (
    ACTIVATION_FUNCTIONS,
    adaptive_pool,
    batch_norm_affine,
    flatten_layer,
    leaf_types,
    module_layer,
    own_copy,
)
from klugerhans.explain.modules import module_rule_for

__all__ = ["INPUT", "RawNode", "batch_norm_affine", "trace"]

INPUT = -1
"""Index of the model input among a node's inputs."""


@dataclass(eq=False)
class RawNode:
    """One traced call: its layer, the indices of the nodes (or :data:`INPUT`) it reads, and where it is."""

    layer: Layer
    inputs: list[int]
    name: str
    """Module path (``layer1.0.conv1``) or, for a function, the path of the module it was called in plus its name."""
    module: nn.Module | None = None
    """The BatchNorm module of a BatchNorm node (merged into a neighbour by the canonizer), else None."""


_IDENTITY_CALLS = {"dropout", "stochastic_depth", "contiguous", "clone", "detach"}
_GATES = {"sigmoid", "hardsigmoid"}


class _Tracer(fx.Tracer):
    def __init__(self) -> None:
        super().__init__()
        self.extra_leaves = leaf_types()

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if isinstance(m, self.extra_leaves) or module_rule_for(m) is not None:
            return True
        return super().is_leaf_module(m, module_qualified_name)


def _spatial(dims: Any) -> bool:
    """Whether ``dims`` are the two spatial axes of (N, C, H, W) input."""
    return isinstance(dims, list | tuple) and sorted(int(d) % 4 for d in dims) == [2, 3]


def _call_name(node: fx.Node) -> str:
    target = node.target
    return target if isinstance(target, str) else getattr(target, "__name__", repr(target))


def _arg(node: fx.Node, index: int, key: str, default: Any = None) -> Any:
    args: Any = node.args
    if len(args) > index:
        return args[index]
    return node.kwargs.get(key, default)


class _Converter:
    """Turns fx nodes into :class:`RawNode` s; get_attr nodes become constants, tensors become node indices."""

    def __init__(self, root: fx.GraphModule, model: nn.Module):
        self.root = root
        self.model = model
        """The traced model itself (the graph module keeps only the submodules it calls)."""
        self.nodes: list[RawNode] = []
        self.index: dict[fx.Node, int] = {}
        self.constants: dict[fx.Node, Any] = {}
        self.gates: set[int] = set()

    def is_tensor(self, arg: Any) -> bool:
        return isinstance(arg, fx.Node) and arg not in self.constants

    def where(self, node: fx.Node) -> str:
        stack = node.meta.get("nn_module_stack") or {}
        path = next(reversed(stack)) if stack else ""
        return f"{path}.{node.name}" if path else node.name

    def add(self, node: fx.Node, layer: Layer | None, inputs: list[fx.Node], name: str, module: Any = None) -> None:
        for arg in inputs:
            if arg not in self.index:
                raise KlugerhansError(f"{name!r}: its input {arg.name!r} is not a tensor this explainer can follow")
        ids = [self.index[arg] for arg in inputs]
        if layer is None:  # the identity: the node is its input
            self.index[node] = ids[0]
            return
        self.nodes.append(RawNode(layer, ids, name, module))
        self.index[node] = len(self.nodes) - 1

    def convert(self, node: fx.Node) -> None:
        if node.op == "get_attr":
            value = self.root
            for part in str(node.target).split("."):
                value = getattr(value, part)
            self.constants[node] = own_copy(value) if isinstance(value, torch.Tensor) else value
            return
        if node.op == "call_module":
            name = str(node.target)
            module = self.root.get_submodule(name)
            inputs: list[Any] = [a for a in node.args if self.is_tensor(a)]
            if len(inputs) != 1 or node.kwargs:
                self.add(node, Opaque(self._call(node), type(module).__name__), inputs, name)
                return
            layer = module_layer(name, module)
            self.add(node, layer, inputs, name, module if isinstance(layer, Elementwise) else None)
            if isinstance(layer, Elementwise) and layer.kind in _GATES:
                self.gates.add(self.index[node])
            return
        self._function(node)

    def _call(self, node: fx.Node) -> Callable[..., torch.Tensor]:
        """The node's own call with its tensor inputs as positional arguments (for Opaque layers)."""
        tensors = [a for a in node.all_input_nodes if self.is_tensor(a)]
        constants = self.constants

        def substitute(values: tuple[torch.Tensor, ...]) -> tuple[Any, Any]:
            lookup = dict(zip(tensors, values, strict=True))
            mapped = fx.node.map_arg((node.args, node.kwargs), lambda n: lookup[n] if n in lookup else constants[n])
            return mapped[0], mapped[1]

        if node.op == "call_module":
            module = self.root.get_submodule(str(node.target))

            def call_module(*values: torch.Tensor) -> torch.Tensor:
                args, kwargs = substitute(values)
                return module(*args, **kwargs)

            return call_module
        if node.op == "call_method":
            method = str(node.target)

            def call_method(*values: torch.Tensor) -> torch.Tensor:
                args, kwargs = substitute(values)
                return getattr(args[0], method)(*args[1:], **kwargs)

            return call_method
        function = node.target
        assert callable(function)

        def call_function(*values: torch.Tensor) -> torch.Tensor:
            args, kwargs = substitute(values)
            return function(*args, **kwargs)

        return call_function

    def _opaque(self, node: fx.Node, name: str) -> None:
        inputs: list[Any] = [a for a in node.all_input_nodes if self.is_tensor(a)]
        self.add(node, Opaque(self._call(node), f"{node.op} {_call_name(node)}"), inputs, name)

    def _function(self, node: fx.Node) -> None:
        call, name = _call_name(node), self.where(node)
        args: Any = node.args
        kwargs: Any = node.kwargs
        tensors: list[Any] = [a for a in args if self.is_tensor(a)]
        consts = [self.constants[a] if isinstance(a, fx.Node) else a for a in args if not self.is_tensor(a)]
        first: Any = args[0] if args else None
        if call in _IDENTITY_CALLS and self.is_tensor(first):
            self.add(node, None, [first], name)
        elif call in ("add", "iadd") and not node.kwargs and tensors and len(consts) <= 1:
            constant = consts[0] if consts else None
            if constant is not None and not isinstance(constant, int | float | torch.Tensor):
                self._opaque(node, name)
            else:
                self.add(node, Add(constant), tensors, name)
        elif call in ("mul", "imul") and not node.kwargs and tensors and len(args) == 2:
            self._multiply(node, tensors, consts, name)
        elif call in ("truediv", "div") and not node.kwargs and len(args) == 2 and tensors == [first]:
            divisor = consts[0]
            if isinstance(divisor, int | float) and divisor != 0:
                self.add(node, Multiply(0, 1.0 / divisor), tensors, name)
            else:
                self._opaque(node, name)
        elif call in ("cat", "concat") and isinstance(first, list | tuple) and all(map(self.is_tensor, first)):
            self.add(node, Concat(int(_arg(node, 1, "dim", 0))), list(first), name)
        elif call == "flatten" and self.is_tensor(first):
            start, end = int(_arg(node, 1, "start_dim", 0)), int(_arg(node, 2, "end_dim", -1))
            self.add(node, flatten_layer(start, end), [first], name)
        elif call in ("view", "reshape") and self.is_tensor(first) and len(tensors) == 1:
            shape = args[1] if len(args) == 2 and isinstance(args[1], list | tuple) else args[1:]
            self.add(node, Reshape(partial(torch.reshape, shape=tuple(shape))), [first], name)
        elif call == "permute" and self.is_tensor(first) and len(tensors) == 1:
            dims = args[1] if len(args) == 2 and isinstance(args[1], list | tuple) else args[1:]
            dims = tuple(int(d) for d in dims)
            self.add(node, Reshape(partial(torch.permute, dims=dims), dims), [first], name)
        elif call in ("squeeze", "unsqueeze") and self.is_tensor(first) and len(tensors) == 1 and not node.kwargs:
            fn = getattr(torch, call)
            function = partial(fn, dim=args[1]) if len(args) > 1 else fn
            self.add(node, Reshape(function), [first], name)
        elif call == "relu" and self.is_tensor(first) and len(tensors) == 1:
            self.add(node, Elementwise("relu"), [first], name)
        elif call in ACTIVATION_FUNCTIONS and self.is_tensor(first) and len(tensors) == 1 and len(args) == 1:
            self.add(node, Elementwise(call, function=ACTIVATION_FUNCTIONS[call]), [first], name)
            if call in _GATES:
                self.gates.add(self.index[node])
        elif call == "gelu" and self.is_tensor(first) and len(args) == 1:
            approximate = str(kwargs.get("approximate", "none"))
            self.add(node, Elementwise("gelu", function=partial(F.gelu, approximate=approximate)), [first], name)
        elif (
            call == "batch_norm"
            and self.is_tensor(first)
            and isinstance(self.owner(node), nn.BatchNorm1d | nn.BatchNorm2d)
        ):
            self._batch_norm(node, first, name)
        elif (
            call == "max_pool2d" and self.is_tensor(first) and len(tensors) == 1 and not _arg(node, 6, "return_indices")
        ):
            kernel = pair(_arg(node, 1, "kernel_size"))
            stride, padding = pair(_arg(node, 2, "stride", None) or kernel), pair(_arg(node, 3, "padding", 0))
            dilation, ceil = pair(_arg(node, 4, "dilation", 1)), bool(_arg(node, 5, "ceil_mode", False))
            self.add(node, MaxPool(kernel, stride, padding, dilation, ceil_mode=ceil), [first], name)
        elif call == "avg_pool2d" and self.is_tensor(first) and len(tensors) == 1:
            self._avg_pool(node, first, name)
        elif call == "mean" and self.is_tensor(first) and len(tensors) == 1 and _spatial(_arg(node, 1, "dim")):
            self._global_mean(node, first, bool(_arg(node, 2, "keepdim", False)), name)
        elif call == "adaptive_avg_pool2d" and self.is_tensor(first) and len(tensors) == 1:
            self.add(node, adaptive_pool(name, _arg(node, 1, "output_size")), [first], name)
        elif call == "layer_norm" and self.is_tensor(first) and len(tensors) == 1:
            shape = _arg(node, 1, "normalized_shape")
            weight, bias = self.constants.get(_arg(node, 2, "weight")), self.constants.get(_arg(node, 3, "bias"))
            eps = float(_arg(node, 4, "eps", 1e-5))
            self.add(node, LayerNorm(tuple(shape), weight, bias, eps), [first], name)
        else:
            self._opaque(node, name)

    def owner(self, node: fx.Node) -> nn.Module | None:
        """The innermost module whose forward made this call (None at the top level)."""
        stack = node.meta.get("nn_module_stack") or {}
        if not stack:
            return None
        key, value = next(reversed(stack.items()))
        try:
            return self.model.get_submodule(value[0] if isinstance(value, tuple) else key)
        except AttributeError:
            return None

    def _batch_norm(self, node: fx.Node, first: fx.Node, name: str) -> None:
        """``F.batch_norm`` inside a BatchNorm subclass (timm's BatchNormAct2d): the module's eval-mode affine map,
        merged into a neighbour by the canonizer like the module itself."""
        module = self.owner(node)
        assert isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d)
        if _arg(node, 5, "training", False):
            self._opaque(node, name)
            return
        scale, shift = batch_norm_affine(name, module)
        self.add(node, Elementwise("batchnorm", scale, shift), [first], name, module)

    def _avg_pool(self, node: fx.Node, first: fx.Node, name: str) -> None:
        kernel = pair(_arg(node, 1, "kernel_size"))
        stride = pair(_arg(node, 2, "stride", None) or kernel)
        padding = pair(_arg(node, 3, "padding", 0))
        ceil, count_pad = bool(_arg(node, 4, "ceil_mode", False)), bool(_arg(node, 5, "count_include_pad", True))
        if _arg(node, 6, "divisor_override", None) is not None:
            self._opaque(node, name)
            return
        self.add(
            node, AvgPool(None, kernel, stride, padding, ceil_mode=ceil, count_include_pad=count_pad), [first], name
        )

    def _global_mean(self, node: fx.Node, first: fx.Node, keepdim: bool, name: str) -> None:
        """``x.mean((2, 3))``: global average pooling, then the two unit axes dropped unless ``keepdim``."""
        self.add(node, AvgPool(output_size=(1, 1)), [first], name)
        if not keepdim:
            self.nodes.append(RawNode(Flatten(1), [self.index[node]], name))
            self.index[node] = len(self.nodes) - 1

    def _multiply(self, node: fx.Node, tensors: list[Any], consts: list[Any], name: str) -> None:
        if len(tensors) == 1:
            constant = consts[0]
            if isinstance(constant, int | float | torch.Tensor):
                self.add(node, Multiply(0, constant), tensors, name)
                return
        elif len(tensors) == 2:
            gate = [self.index.get(t) in self.gates for t in tensors]
            if gate.count(True) == 1:
                self.add(node, Multiply(gate.index(False)), tensors, name)
                return
        self._opaque(node, name)

    def mark_shape_gates(self) -> None:
        """A reshaped gate is still a gate."""
        last = self.nodes[-1]
        if isinstance(last.layer, Reshape | Flatten) and last.inputs and last.inputs[0] in self.gates:
            self.gates.add(len(self.nodes) - 1)


def trace(model: nn.Module) -> tuple[list[RawNode], int]:
    """Trace ``model`` into raw nodes in forward order; returns them and the index of the output node.

    Raises:
        KlugerhansError: the forward pass cannot be traced (data-dependent control flow), takes more than one input
            or returns more than one tensor.
    """
    try:
        graph = _Tracer().trace(model)
    except Exception as err:  # fx raises many kinds of errors (TraceError, TypeError, NotImplementedError, ...)
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise KlugerhansError(
            f"cannot trace the forward pass of {type(model).__name__} with torch.fx ({reason}): LRP here needs a "
            "model without data-dependent control flow"
        ) from None
    root = fx.GraphModule(model, graph)
    converter = _Converter(root, model)
    output: Any = None
    for node in graph.nodes:
        if node.op == "placeholder":
            if converter.index:
                raise KlugerhansError(f"{type(model).__name__} takes several inputs: LRP here explains one image batch")
            converter.index[node] = INPUT
        elif node.op == "output":
            output = node.args[0]
        else:
            before = len(converter.nodes)
            converter.convert(node)
            if len(converter.nodes) > before:
                converter.mark_shape_gates()
    if not isinstance(output, fx.Node) or output not in converter.index:
        raise KlugerhansError(f"{type(model).__name__} must return one tensor of logits")
    out = converter.index[output]
    if out == INPUT:
        raise KlugerhansError("the model has no conv or linear layer to explain")
    return converter.nodes, out
