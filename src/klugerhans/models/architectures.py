"""The foreign architecture families, torchvision and timm, and what works on any classifier on the meta device.

A classifier is named by a *family* and an *arch* (:class:`~klugerhans.models.config.ModelConfig` stores both):
``klugerhans`` are our own models (:data:`~klugerhans.models.config.MODELS`: the width-scalable VGG11(-BN) for
32..64 px sign crops), ``torchvision`` any builder that ``torchvision.models.list_models(module=torchvision.models)``
lists, ``timm`` any ``timm.create_model`` name (``pip install klugerhans[timm]``). This module registers the two
foreign families in :data:`~klugerhans.models.config.FAMILIES`, reads the names a user types (:func:`parse_arch`:
``resnet18``, ``timm:convnext_atto``, ``klugerhans:vgg11_bn``), checks that an input size runs through an
architecture and finds a model's final classification layer, all on the meta device.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from klugerhans.errors import KlugerhansError
from klugerhans.models.config import (
    FAMILIES,
    MODELS,
    OURS,
    Family,
    ModelConfig,
    ModelSpec,
    format_arch,
    model_spec,
    register_family,
)
from klugerhans.registry import suggest

MIN_INPUT_SIZE = 32
"""Smallest input side of the foreign families, measured with a meta-device forward: the VGGs and ConvNeXt need
32 px, DenseNet 29, ResNet, EfficientNet, MobileNet and RegNet run at any size. Architectures that need more
(Inception v3: 75, ViT: exactly 224) are caught when built, with a message naming their minimum."""
PROBE_SIZES: tuple[int, ...] = (32, 48, 64, 96, 128, 160, 192, 224, 256, 299, 384, 512)
"""Input sides tried, in order, to find the smallest one an architecture runs at."""
_TORCHVISION_EXTRA: dict[str, dict[str, Any]] = {
    # Auxiliary heads return tuples in training mode; a user's file rarely needs them for auditing.
    "googlenet": {"aux_logits": False, "init_weights": True},
    "inception_v3": {"aux_logits": False, "init_weights": True},
}
_AUX_HEADS: dict[str, tuple[str, ...]] = {"googlenet": ("aux1.", "aux2."), "inception_v3": ("AuxLogits.",)}
"""The state-dict prefixes of the heads ``_TORCHVISION_EXTRA`` builds them without."""
Make = Callable[[str, int, int | None], nn.Module]
"""``make(arch, num_classes, input_size or None) -> nn.Module``: a foreign family's builder."""


@functools.cache
def torchvision_names() -> tuple[str, ...]:
    """Names of torchvision's classification builders (``resnet18``, ``vgg16_bn``, ``convnext_tiny``, ...)."""
    import torchvision

    return tuple(sorted(torchvision.models.list_models(module=torchvision.models)))


def _timm() -> Any:
    try:
        import timm
    except ImportError:
        raise KlugerhansError("timm is not installed; run `pip install klugerhans[timm]`") from None
    return timm


@functools.cache
def timm_names() -> tuple[str, ...]:
    """Names ``timm.create_model`` builds (raises a one-line error when timm is not installed)."""
    return tuple(sorted(_timm().list_models()))


def parse_arch(text: str) -> dict[str, str]:
    """Read an architecture as a user names it: ``{"family": ..., "arch": ...}`` (fields of ``ModelConfig``).

    ``"timm:NAME"`` is a timm model, ``"klugerhans:NAME"`` one of ours (every name in ``MODELS``, ``vgg11_bn`` and
    any a caller registered), ``"torchvision:NAME"`` names that family explicitly, and a bare name is a torchvision
    builder (``"resnet18"``).

    Raises:
        KlugerhansError: an unknown family or name (the message suggests the closest names).
    """
    family, sep, arch = text.strip().partition(":")
    if not sep:
        family, arch = next(name for name, entry in FAMILIES.items() if entry.bare), family
        names = FAMILIES[family].names
        if names is not None and arch not in names():
            ours = [format_arch(OURS, a) for a in MODELS]
            raise KlugerhansError(
                f"unknown architecture {arch!r}: {suggest(arch, (*names(), *ours))}; timm models are named timm:NAME"
            )
    model_spec(family, arch)
    return {"family": family, "arch": arch}


def build_torchvision(arch: str, num_classes: int, input_size: int | None = None) -> nn.Module:
    """A freshly initialised torchvision classifier with ``num_classes`` outputs (no pretrained weights).

    ``input_size``: the side a vision transformer (``vit_*``) is built for, its position embeddings fix it; None:
    the builder's default.
    """
    import torchvision

    sized = {"image_size": input_size} if input_size and arch.startswith("vit_") else {}
    try:
        return torchvision.models.get_model(
            arch, weights=None, num_classes=num_classes, **_TORCHVISION_EXTRA.get(arch, {}), **sized
        )
    except AssertionError as err:  # a ViT's side must be a multiple of its patch size
        raise KlugerhansError(
            f"{arch} cannot be built for {input_size} px inputs ({err}); give a size it takes"
        ) from None


def build_timm(arch: str, num_classes: int, input_size: int | None = None) -> nn.Module:
    """A freshly initialised timm model with ``num_classes`` outputs (no pretrained weights), built for
    ``input_size`` where the model takes an ``img_size`` (transformers); None: the builder's default."""
    timm = _timm()
    if input_size:
        try:
            return timm.create_model(arch, pretrained=False, num_classes=num_classes, img_size=input_size)
        except TypeError:  # a model of any size (CNNs): no img_size argument
            pass
    return timm.create_model(arch, pretrained=False, num_classes=num_classes)


def on_meta(build: Callable[[], nn.Module]) -> nn.Module:
    """Run ``build`` with parameters on the meta device (no memory, no initialisation cost).

    A few builders compute their layout with tensors they read back (RegNet); those are built on the CPU and moved.
    """
    try:
        with torch.device("meta"):
            return build()
    except NotImplementedError:  # "Cannot copy out of meta tensor": the builder needs real numbers
        return build().to("meta")


def _runs(model: nn.Module, size: int) -> bool:
    try:
        with torch.no_grad():
            model(torch.zeros(2, 3, size, size, device="meta"))
    except (RuntimeError, ValueError, AssertionError, IndexError, TypeError, NotImplementedError):
        return False
    return True


def smallest_input_size(model: nn.Module, above: int = 0) -> int | None:
    """The smallest side (of :data:`PROBE_SIZES`, refined between the last failing and first working one) above
    ``above`` at which ``model`` (on the meta device, in eval mode) runs a forward pass, or None."""
    low = above
    for size in PROBE_SIZES:
        if size <= above:
            continue
        if _runs(model, size):
            while size - low > 1:  # bisect down to the exact minimum (monotone for conv nets)
                mid = (low + size) // 2
                if _runs(model, mid):
                    size = mid
                else:
                    low = mid
            return size
        low = size
    return None


@functools.cache
def check_input_size(make: Make, name: str, arch: str, input_size: int) -> None:
    """Raise a one-line error naming the smallest size that works when ``input_size`` does not run through ``arch``
    as ``make`` builds it (tested with a meta-device forward, once per architecture and size; ``name``: the
    architecture as users name it, for the message)."""
    model = on_meta(lambda: make(arch, 2, input_size)).eval()
    if _runs(model, input_size):
        return
    smallest = smallest_input_size(model, above=input_size)
    if smallest is None:
        raise KlugerhansError(f"{name} does not run on {input_size} px inputs; give the image size it was made for")
    if not _runs(model, smallest + 32):  # a fixed-size architecture (ViT, MaxViT)
        raise KlugerhansError(f"{name} does not run on {input_size} px inputs, only on {smallest} px; give that size")
    raise KlugerhansError(
        f"{name} does not run on {input_size} px inputs: the smallest size it takes is {smallest} px; "
        f"give --image-size {smallest} or more"
    )


def _checked(make: Make) -> Callable[[ModelConfig], nn.Module]:
    """A :attr:`ModelSpec.build` that checks the input size (:func:`check_input_size`) before ``make`` builds."""

    def build(config: ModelConfig) -> nn.Module:
        check_input_size(make, format_arch(config.family, config.arch), config.arch, config.input_size)
        return make(config.arch, config.num_classes, config.input_size)

    return build


def classifier_layer(model: nn.Module, input_size: int = 224) -> str:
    """Name of the final classification layer: the last Linear or 1x1 Conv2d a forward pass runs.

    Args:
        model: the classifier, best on the meta device (the forward pass then costs nothing), in eval mode.
        input_size: side of the probe input (224 runs through every torchvision classifier).

    Returns:
        The module name, e.g. ``fc`` (ResNet, RegNet), ``classifier.6`` (VGG), ``classifier.1`` (EfficientNet),
        ``classifier.2`` (ConvNeXt), ``head.fc`` (timm).
    """
    get_classifier = getattr(model, "get_classifier", None)
    if callable(get_classifier):  # timm
        head = get_classifier()
        for name, module in model.named_modules():
            if module is head and isinstance(module, nn.Linear | nn.Conv2d):
                return name
    names = {module: name for name, module in model.named_modules()}
    called: list[str] = []

    def hook(module: nn.Module, _inputs: Any, _output: Any) -> None:
        called.append(names[module])

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, nn.Linear) or (isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1))
    ]
    device = next(model.parameters()).device
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, input_size, input_size, device=device))
    finally:
        for h in handles:
            h.remove()
    if not called:
        raise KlugerhansError(f"found no Linear or 1x1 convolution layer in {type(model).__name__}")
    return called[-1]


_TIMM = ModelSpec(
    _checked(build_timm), input_sizes=None, min_input_size=MIN_INPUT_SIZE, width=False, resize="center_crop"
)
_TORCHVISION = ModelSpec(
    _checked(build_torchvision), input_sizes=None, min_input_size=MIN_INPUT_SIZE, width=False, resize="center_crop"
)
_TORCHVISION_NO_AUX = {arch: replace(_TORCHVISION, skip_keys=keys) for arch, keys in _AUX_HEADS.items()}
register_family("torchvision")(
    Family(torchvision_names, lambda arch: _TORCHVISION_NO_AUX.get(arch, _TORCHVISION), bare=True)
)
register_family("timm")(Family(timm_names, lambda _arch: _TIMM))
