"""What names a classifier klugerhans can build: :class:`ModelConfig`, the model registry and :func:`create_model`.

:class:`ModelConfig` names any classifier klugerhans can build (family "klugerhans": our VGG, registered in
:data:`MODELS` by :mod:`klugerhans.models.vgg`; "torchvision" and "timm": see :mod:`klugerhans.models.architectures`)
and :func:`create_model` builds it. Importing :mod:`klugerhans.models` registers our architectures.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

from torch import nn

from klugerhans.errors import KlugerhansError
from klugerhans.models.architectures import FAMILIES, MIN_INPUT_SIZE, build_foreign, check_arch, check_input_size
from klugerhans.registry import Registry, suggest

INPUT_SIZES: tuple[int, ...] = (32, 48, 64)
IN_MEMORY = "module"
"""Family of a model handed over as an ``nn.Module`` (``explain_model``, ``audit_model``): described, never rebuilt."""


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a classifier; stored in every checkpoint."""

    arch: str = "vgg11_bn"
    """Architecture name within ``family``: "vgg11_bn"/"vgg11" for ours, a torchvision builder or a timm name."""
    width: float = 1.0
    """Multiplier on every layer's channel count (1.0 = the paper's 64..512); family "klugerhans" only."""
    input_size: int = 32
    """Side of the square input in pixels: 32, 48 or 64 for ours, at least 32 for the other families."""
    num_classes: int = 43
    """Number of output classes."""
    dropout: float = 0.5
    """Dropout before the last layer, as in VGG; family "klugerhans" only (the others bring their own)."""
    family: str = "klugerhans"
    """"klugerhans" (our VGG; what checkpoints without this field mean), "torchvision" or "timm"."""

    def __post_init__(self) -> None:
        if self.family == IN_MEMORY:
            if self.input_size < 1 or self.num_classes < 1:
                raise KlugerhansError(f"need an input size and classes, got {self.input_size} px, {self.num_classes}")
            return
        if self.family not in FAMILIES:
            raise KlugerhansError(f"unknown architecture family {self.family!r}: {suggest(self.family, FAMILIES)}")
        if self.family == "klugerhans":
            if self.arch not in MODELS:
                raise KlugerhansError(f"unknown architecture {self.arch!r}: {suggest(self.arch, MODELS)}")
            if not 0.05 <= self.width <= 4.0:
                raise KlugerhansError(f"width multiplier must be between 0.05 and 4, got {self.width}")
            if self.input_size not in INPUT_SIZES:
                raise KlugerhansError(f"input size must be one of {INPUT_SIZES}, got {self.input_size}")
        else:
            check_arch(self.family, self.arch)
            if self.width != 1.0:
                raise KlugerhansError(f"the width multiplier applies to klugerhans models only, not to {self.arch}")
            low = MIN_INPUT_SIZE[self.family]
            if not isinstance(self.input_size, int) or self.input_size < low:
                raise KlugerhansError(
                    f"input size {self.input_size} px is too small for {self.family} models; give at least {low}"
                )
        if self.num_classes < 2:
            raise KlugerhansError(f"need at least 2 classes, got {self.num_classes}")
        if not 0.0 <= self.dropout < 1.0:
            raise KlugerhansError(f"dropout must be in [0, 1), got {self.dropout}")

    def to_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


MODELS: Registry[Callable[[ModelConfig], nn.Module]] = Registry("architecture")
"""Architecture builders ``fn(config) -> nn.Module`` by name; see :func:`create_model`."""
register_model = MODELS.register


def create_model(config: ModelConfig | None = None, **overrides: float | int | str) -> nn.Module:
    """Build a freshly initialised classifier of any family: (N, 3, S, S) -> (N, num_classes) logits.

    Args:
        config: architecture; defaults to full-width VGG11-BN for 32 px inputs and 43 classes.
        **overrides: fields of :class:`ModelConfig` to change, e.g. ``width=0.5`` or
            ``family="torchvision", arch="resnet18", input_size=64``.

    Raises:
        KlugerhansError: an invalid configuration, or an input size the architecture cannot run (the message
            names the smallest that works).
    """
    base = config.to_dict() if config else {}
    base.update(overrides)
    cfg = ModelConfig(**base)  # type: ignore[arg-type]
    if cfg.family == "klugerhans":
        return MODELS.get_or_raise(cfg.arch)(cfg)
    if cfg.family == IN_MEMORY:
        raise KlugerhansError(f"{cfg.arch} was handed over as a module and cannot be rebuilt from its description")
    check_input_size(cfg.family, cfg.arch, cfg.input_size)
    return build_foreign(cfg.family, cfg.arch, cfg.num_classes, cfg.input_size)
