"""Canonical form of a network for LRP: a flat chain of layers with every BatchNorm merged into its conv/linear.

LRP rules are defined for affine layers followed by ReLUs (Montavon et al. 2019, "Layer-wise relevance
propagation: an overview", sec. 10.2). A BatchNorm right after a conv or linear layer is an affine map too, so it
is folded into that layer's weight and bias, exactly as zennit's ``SequentialMergeBatchNorm`` / ``VGGCanonizer``
does (``W' = W * g / sqrt(var + eps)``, ``b' = (b - mean) * g / sqrt(var + eps) + beta``). The BatchNorm then
disappears; zennit 0.5.1 instead leaves it computing ``x / sqrt(1 + eps)`` (fixed upstream in chr5tphr/zennit#240),
so its VGG11-BN heatmaps differ from ours by a few 1e-5 of the largest relevance.

:func:`canonize` never touches the user's model: it copies the (merged) parameters into new tensors, so the model's
parameters, buffers, train/eval mode, hooks and ``requires_grad`` flags stay exactly as they were. The chain always
has eval-mode semantics (BatchNorm running statistics, no dropout), whatever mode the model is in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.grad import conv2d_input

from klugerhans.errors import KlugerhansError

__all__ = ["Affine", "AvgPool", "Elementwise", "Flatten", "Layer", "MaxPool", "canonize"]


def _pair(value: int | tuple[int, ...]) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    if len(value) == 1:
        return (value[0], value[0])
    return (int(value[0]), int(value[1]))


@dataclass(frozen=True, eq=False)
class Affine:
    """A conv or dense layer with any following BatchNorm merged in: ``y = W * x + b``.

    ``weight`` is (C_out, C_in, kh, kw) for a convolution and (C_out, C_in) for a dense layer.
    """

    weight: torch.Tensor
    """Merged weight, a private copy of the model's."""
    bias: torch.Tensor
    """(C_out,) merged bias (zeros where the layer had none)."""
    name: str
    """Name of the original module in the model, for error messages."""
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)

    @property
    def is_conv(self) -> bool:
        return self.weight.ndim == 4

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a one-line error when ``x`` cannot enter this layer (wrong channels or input size)."""
        expected = self.weight.shape[1]
        if self.is_conv and (x.ndim != 4 or x.shape[1] != expected):
            raise KlugerhansError(
                f"layer {self.name!r} expects (N, {expected}, H, W) input, got {tuple(x.shape)}: "
                "pass images with the channel count the model was built for"
            )
        if not self.is_conv and x.shape[-1] != expected:
            raise KlugerhansError(
                f"layer {self.name!r} expects {expected} input features, got {x.shape[-1]}: "
                "is the image size the one the model was trained on?"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The layer itself: ``F(x, W, b)``."""
        return self.apply(x, self.weight, self.bias)

    def apply(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """The layer's operation with other (modified) ``weight`` and ``bias`` (None: no bias)."""
        if self.is_conv:
            return F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation)
        return F.linear(x, weight, bias)

    def transpose(
        self, s: torch.Tensor, input_shape: Sequence[int], weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``G(s, W)``: the vector-Jacobian product of ``x -> F(x, W)``, i.e. ``sum_j w_ij s_j`` for every input i.

        ``input_shape`` gives the size of the input (a strided convolution maps several sizes onto one).
        """
        weight = self.weight if weight is None else weight
        if not self.is_conv:
            return s @ weight
        # the convolution's input-gradient kernel (what autograd runs), faster on CPU than conv_transpose2d
        return conv2d_input(
            (s.shape[0], weight.shape[1], *input_shape[2:]), weight, s, self.stride, self.padding, self.dilation
        )


@dataclass(frozen=True, eq=False)
class MaxPool:
    """2-D max pooling; relevance is routed to the maximum of each window (its gradient)."""

    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    ceil_mode: bool

    def forward_with_indices(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return F.max_pool2d(
            x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode, return_indices=True
        )


@dataclass(frozen=True, eq=False)
class AvgPool:
    """2-D average pooling (fixed window, or adaptive to ``output_size``)."""

    output_size: tuple[int, int] | None = None
    """Set for adaptive pooling, else None."""
    kernel_size: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    ceil_mode: bool = False
    count_include_pad: bool = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.output_size is not None:
            return F.adaptive_avg_pool2d(x, self.output_size)
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad)

    def is_identity(self, x: torch.Tensor) -> bool:
        """True when pooling ``x`` copies it (VGG's adaptive pool at its native input size)."""
        return self.output_size is not None and tuple(x.shape[2:]) == self.output_size

    def _axis_matrix(self, size: int, axis: int, like: torch.Tensor) -> torch.Tensor:
        """(out, in) weights of the pooling along one axis: pool the unit vectors with the 1-D version."""
        eye = torch.eye(size, dtype=like.dtype, device=like.device)[:, None, :]
        if self.output_size is not None:
            pooled = F.adaptive_avg_pool1d(eye, self.output_size[axis])
        else:
            k, st, p = self.kernel_size[axis], self.stride[axis], self.padding[axis]
            pooled = F.avg_pool1d(eye, k, st, p, self.ceil_mode, self.count_include_pad)
        return pooled[:, 0, :].T

    def transpose(self, s: torch.Tensor, input_shape: Sequence[int]) -> torch.Tensor:
        """``sum_j p_ij s_j``: the pooling's vector-Jacobian product.

        2-D average pooling is separable (rectangular windows; the divisor is the product of per-axis counts), so
        ``x -> P_h x P_w^T`` with one small matrix per axis; no autograd needed.
        """
        rows = self._axis_matrix(input_shape[2], 0, s)
        cols = self._axis_matrix(input_shape[3], 1, s)
        return torch.einsum("Hh,ncHW,Ww->nchw", rows, s, cols)


@dataclass(frozen=True, eq=False)
class Flatten:
    """``torch.flatten(x, start_dim)``, explicit or implied before a dense layer (as in VGG's forward)."""

    start_dim: int = 1


@dataclass(frozen=True, eq=False)
class Elementwise:
    """An elementwise layer that LRP passes relevance through unchanged (zennit's ``Pass`` rule).

    ReLU, Dropout (identity in eval mode) and a BatchNorm that follows no conv/linear layer.
    """

    kind: str
    """"relu", "identity" or "batchnorm"."""
    scale: torch.Tensor | None = None
    """Per-channel scale of an unmerged eval-mode BatchNorm."""
    shift: torch.Tensor | None = None
    """Per-channel shift of an unmerged eval-mode BatchNorm."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "relu":
            return torch.relu(x)
        if self.kind == "batchnorm" and self.scale is not None and self.shift is not None:
            view = (1, -1) + (1,) * (x.ndim - 2)
            return x * self.scale.view(view) + self.shift.view(view)
        return x

    @property
    def output_nonnegative(self) -> bool | None:
        """True if the output is never negative, None if it is as signed as the input, False if it can be."""
        return {"relu": True, "identity": None}.get(self.kind, False)


Layer = Affine | MaxPool | AvgPool | Flatten | Elementwise
"""One step of the canonical chain."""


def _vgg_types() -> tuple[type[nn.Module], ...]:
    # Imported lazily: torchvision takes a second to import and is only needed to recognise its VGG.
    from torchvision.models import VGG as TorchvisionVGG

    from klugerhans.models.vgg import VGG

    return (VGG, TorchvisionVGG)


def _leaves(module: nn.Module, prefix: str) -> list[tuple[str, nn.Module]]:
    """Leaf modules of a Sequential (nested Sequentials allowed) in forward order."""
    children = list(module.named_children())
    if not children:
        return [(prefix, module)]
    if not isinstance(module, nn.Sequential):
        raise KlugerhansError(
            f"cannot canonize {prefix or 'the model'} ({type(module).__name__}): LRP here supports VGG "
            "(klugerhans or torchvision) and nn.Sequential networks"
        )
    out: list[tuple[str, nn.Module]] = []
    for name, child in children:
        out += _leaves(child, f"{prefix}.{name}" if prefix else name)
    return out


def _forward_order(model: nn.Module) -> list[tuple[str, nn.Module | Flatten]]:
    """The model's layers in the order its forward applies them."""
    if isinstance(model, _vgg_types()):
        # VGG.forward: features -> avgpool -> flatten(1) -> classifier
        avgpool: nn.Module = model.avgpool  # type: ignore[assignment]
        return [
            *_leaves(model.features, "features"),  # type: ignore[arg-type]
            ("avgpool", avgpool),
            ("flatten", Flatten(1)),
            *_leaves(model.classifier, "classifier"),  # type: ignore[arg-type]
        ]
    if isinstance(model, nn.Sequential):
        return list(_leaves(model, ""))
    raise KlugerhansError(
        f"cannot explain a {type(model).__name__} model: LRP here supports VGG (klugerhans or torchvision) "
        "and nn.Sequential networks"
    )


def _copy(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().clone()


def _convert(name: str, module: nn.Module) -> Layer:
    if isinstance(module, nn.Conv2d):
        if module.groups != 1 or module.padding_mode != "zeros" or isinstance(module.padding, str):
            raise KlugerhansError(
                f"layer {name!r}: only ungrouped convolutions with numeric zero padding are supported"
            )
        bias = torch.zeros_like(module.weight[:, 0, 0, 0]) if module.bias is None else module.bias
        return Affine(
            _copy(module.weight),
            _copy(bias),
            name,
            _pair(module.stride),
            _pair(module.padding),
            _pair(module.dilation),
        )
    if isinstance(module, nn.Linear):
        bias = torch.zeros_like(module.weight[:, 0]) if module.bias is None else module.bias
        return Affine(_copy(module.weight), _copy(bias), name)
    if isinstance(module, nn.MaxPool2d):
        return MaxPool(
            _pair(module.kernel_size),
            _pair(module.stride or module.kernel_size),
            _pair(module.padding),
            _pair(module.dilation),
            module.ceil_mode,
        )
    if isinstance(module, nn.AdaptiveAvgPool2d):
        out = module.output_size
        sizes = (out, out) if isinstance(out, int) else tuple(out or ())
        if len(sizes) != 2 or None in sizes:
            raise KlugerhansError(f"layer {name!r}: adaptive pooling needs an explicit output size")
        return AvgPool(output_size=(int(sizes[0]), int(sizes[1])))  # type: ignore[arg-type]
    if isinstance(module, nn.AvgPool2d):
        if module.divisor_override is not None:
            raise KlugerhansError(f"layer {name!r}: average pooling with divisor_override is not supported")
        return AvgPool(
            None,
            _pair(module.kernel_size),
            _pair(module.stride or module.kernel_size),
            _pair(module.padding),
            module.ceil_mode,
            module.count_include_pad,
        )
    if isinstance(module, nn.Flatten):
        if module.end_dim != -1:
            raise KlugerhansError(f"layer {name!r}: only Flatten(start_dim, -1) is supported")
        return Flatten(module.start_dim)
    if isinstance(module, nn.ReLU):
        return Elementwise("relu")
    if isinstance(module, nn.Dropout | nn.Identity):
        return Elementwise("identity")
    if isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d):
        scale, shift = _batch_norm_affine(name, module)
        return Elementwise("batchnorm", scale, shift)
    raise KlugerhansError(
        f"layer {name!r} ({type(module).__name__}) has no LRP rule here: supported are Conv2d, Linear, "
        "BatchNorm, ReLU, Dropout, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d and Flatten"
    )


def _batch_norm_affine(name: str, bn: nn.BatchNorm1d | nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode BatchNorm as ``x * scale + shift`` per channel."""
    if bn.running_mean is None or bn.running_var is None:
        raise KlugerhansError(f"layer {name!r}: BatchNorm without running statistics cannot be canonized")
    mean, var = bn.running_mean.detach(), bn.running_var.detach()
    gamma = bn.weight.detach() if bn.weight is not None else torch.ones_like(mean)
    beta = bn.bias.detach() if bn.bias is not None else torch.zeros_like(mean)
    scale = gamma / (var + bn.eps) ** 0.5
    return scale, beta - mean * scale


def _merge(layer: Affine, bn_name: str, bn: nn.BatchNorm1d | nn.BatchNorm2d) -> Affine:
    """Fold an eval-mode BatchNorm into the preceding layer (same formula as zennit's MergeBatchNorm)."""
    mean = bn.running_mean
    if mean is None or bn.running_var is None or mean.shape[0] != layer.weight.shape[0]:
        raise KlugerhansError(f"layer {bn_name!r}: BatchNorm does not match the layer before it")
    scale, _ = _batch_norm_affine(bn_name, bn)
    beta = bn.bias.detach() if bn.bias is not None else torch.zeros_like(scale)
    weight = layer.weight * scale.view((-1,) + (1,) * (layer.weight.ndim - 1))
    bias = (layer.bias - mean.detach()) * scale + beta
    return Affine(weight, bias, layer.name, layer.stride, layer.padding, layer.dilation)


def canonize(model: nn.Module) -> tuple[Layer, ...]:
    """Return ``model`` as a flat chain of layers with BatchNorms merged into the conv/linear before them.

    Args:
        model: a klugerhans or torchvision VGG (with or without BatchNorm), or an ``nn.Sequential`` of supported
            layers. It is only read, never modified.

    Returns:
        The layers in forward order; applying them one after another computes the model's eval-mode output.

    Raises:
        KlugerhansError: the model contains a layer or structure without an LRP treatment here.
    """
    chain: list[Layer] = []
    previous: Any = None
    with torch.no_grad():
        for name, module in _forward_order(model):
            if isinstance(module, Flatten):
                layer: Layer = module
            elif isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d) and isinstance(previous, nn.Conv2d | nn.Linear):
                last = chain[-1]
                assert isinstance(last, Affine)
                chain[-1] = _merge(last, name, module)
                previous = module
                continue
            else:
                layer = _convert(name, module)
            chain.append(layer)
            previous = module
    if not any(isinstance(layer, Affine) for layer in chain):
        raise KlugerhansError("the model has no conv or linear layer to explain")
    return tuple(chain)
