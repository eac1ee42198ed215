"""The layer of each ``torch.nn`` module that the tracer keeps as one call (a leaf module).

Conv, dense, BatchNorm, activation, pooling, flatten and LayerNorm modules become their
:mod:`~klugerhans.explain.layers` layer with private copies of the parameters; dropout and the identity become
nothing; a module with a rule of its own (:mod:`klugerhans.explain.modules`) stays itself; any other module is an
:class:`~klugerhans.explain.layers.Opaque` layer. Eval-mode semantics: BatchNorm uses its running statistics.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from klugerhans.errors import KlugerhansError
from klugerhans.explain.affine import Affine, pair
from klugerhans.explain.layers import AvgPool, Custom, Elementwise, Flatten, Layer, LayerNorm, MaxPool, Opaque, Reshape
from klugerhans.explain.modules import module_rule_for

__all__ = [
    "ACTIVATION_FUNCTIONS",
    "adaptive_pool",
    "batch_norm_affine",
    "flatten_layer",
    "leaf_types",
    "module_layer",
    "own_copy",
]


_ACTIVATION_MODULES: dict[type[nn.Module], str] = {
    nn.ReLU6: "relu6",
    nn.SiLU: "silu",
    nn.Hardswish: "hardswish",
    nn.Mish: "mish",
    nn.Sigmoid: "sigmoid",
    nn.Hardsigmoid: "hardsigmoid",
    nn.Tanh: "tanh",
}
ACTIVATION_FUNCTIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu6": F.relu6,
    "silu": F.silu,
    "hardswish": F.hardswish,
    "mish": F.mish,
    "sigmoid": torch.sigmoid,
    "hardsigmoid": F.hardsigmoid,
    "tanh": torch.tanh,
}
_IDENTITY_MODULES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout, nn.Identity)


def leaf_types() -> tuple[type[nn.Module], ...]:
    """Modules the tracer keeps whole besides torch.nn's own (imported late: torchvision is heavy)."""
    from torchvision.ops import StochasticDepth

    return (StochasticDepth,)


def own_copy(tensor: torch.Tensor) -> torch.Tensor:
    """A private copy of a model's parameter, out of autograd."""
    return tensor.detach().clone()


def batch_norm_affine(name: str, bn: nn.BatchNorm1d | nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode BatchNorm as ``x * scale + shift`` per channel."""
    mean, var = bn.running_mean, bn.running_var
    if mean is None or var is None:
        raise KlugerhansError(f"layer {name!r}: BatchNorm without running statistics cannot be canonized")
    mean, var = mean.detach(), var.detach()
    gamma = bn.weight.detach() if bn.weight is not None else torch.ones_like(mean)
    beta = bn.bias.detach() if bn.bias is not None else torch.zeros_like(mean)
    scale = gamma / (var + bn.eps) ** 0.5
    return scale, beta - mean * scale


def module_layer(name: str, m: nn.Module) -> Layer | None:
    """The layer of a leaf module; None for the identity (dropout in eval mode)."""
    custom = module_rule_for(m)
    if custom is not None:
        return Custom(m, custom.propagator)
    affine = Affine.of_module(name, m)
    if affine is not None:
        return affine
    if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
        scale, shift = batch_norm_affine(name, m)
        return Elementwise("batchnorm", scale, shift)
    if isinstance(m, nn.ReLU):
        return Elementwise("relu")
    if type(m) in _ACTIVATION_MODULES:  # our own out-of-place functions: the model's may work in place
        kind = _ACTIVATION_MODULES[type(m)]
        return Elementwise(kind, function=ACTIVATION_FUNCTIONS[kind])
    if isinstance(m, nn.GELU):
        return Elementwise("gelu", function=partial(F.gelu, approximate=m.approximate))
    if isinstance(m, nn.LeakyReLU):
        return Elementwise("leaky_relu", function=partial(F.leaky_relu, negative_slope=m.negative_slope))
    if isinstance(m, _IDENTITY_MODULES + leaf_types()):
        return None
    if isinstance(m, nn.MaxPool2d) and not m.return_indices:
        window: Any = m.stride or m.kernel_size
        kernel, step, padding, dilation = pair(m.kernel_size), pair(window), pair(m.padding), pair(m.dilation)
        return MaxPool(kernel, step, padding, dilation, ceil_mode=m.ceil_mode)
    if isinstance(m, nn.AdaptiveAvgPool2d):
        return adaptive_pool(name, m.output_size)
    if isinstance(m, nn.AvgPool2d) and m.divisor_override is None:
        kernel, stride, padding = pair(m.kernel_size), pair(m.stride or m.kernel_size), pair(m.padding)
        return AvgPool(None, kernel, stride, padding, ceil_mode=m.ceil_mode, count_include_pad=m.count_include_pad)
    if isinstance(m, nn.Flatten):
        return flatten_layer(m.start_dim, m.end_dim)
    if isinstance(m, nn.LayerNorm):
        weight = None if m.weight is None else own_copy(m.weight)
        bias = None if m.bias is None else own_copy(m.bias)
        return LayerNorm(tuple(m.normalized_shape), weight, bias, m.eps)
    return Opaque(m, f"{type(m).__name__}")


def flatten_layer(start_dim: int, end_dim: int) -> Flatten | Reshape:
    """``torch.flatten(x, start_dim, end_dim)``: a :class:`Flatten` when it flattens to the end, else a reshape."""
    if end_dim == -1:
        return Flatten(start_dim)
    return Reshape(partial(torch.flatten, start_dim=start_dim, end_dim=end_dim))


def adaptive_pool(name: str, output_size: Any) -> AvgPool:
    """Adaptive average pooling to an explicit (H, W) ``output_size``."""
    sizes = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size or ())
    if len(sizes) != 2 or None in sizes:
        raise KlugerhansError(f"layer {name!r}: adaptive pooling needs an explicit output size")
    return AvgPool(output_size=(int(sizes[0]), int(sizes[1])))
