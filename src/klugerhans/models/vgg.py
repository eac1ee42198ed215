"""VGG11 with batch norm for small traffic-sign crops (Simonyan & Zisserman 2015, configuration "A").

:class:`ModelConfig` names any classifier klugerhans can build (family "klugerhans": this VGG; "torchvision" and
"timm": see :mod:`klugerhans.models.architectures`) and :func:`create_model` builds it. Our feature extractor
has exactly the layer layout of torchvision's ``vgg11_bn().features`` (so zennit's VGG canonizer and our LRP
engine treat both alike); the head is sized for 32..64 px inputs instead of 224 px ImageNet crops. A width
multiplier scales every layer for smaller released weights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import nn

from klugerhans.errors import KlugerhansError
from klugerhans.models.architectures import FAMILIES, MIN_INPUT_SIZE, build_foreign, check_arch, check_input_size
from klugerhans.registry import Registry, suggest

CONFIG_A: tuple[int | str, ...] = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")
"""VGG11 ("A"): conv widths, "M" = 2x2 max pooling."""
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


def _scaled(channels: int, width: float) -> int:
    return max(8, round(channels * width))


class VGG(nn.Module):
    """VGG classifier: ``features`` (conv/BN/ReLU/max-pool) -> ``avgpool`` -> flatten -> ``classifier``.

    Input: normalised (N, 3, S, S) float; output: (N, num_classes) logits.
    """

    def __init__(self, config: ModelConfig, layout: tuple[int | str, ...] = CONFIG_A, batch_norm: bool = True):
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        in_ch = 3
        for item in layout:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
                continue
            out_ch = _scaled(int(item), config.width)
            layers.append(nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_ch))
            layers.append(nn.ReLU(inplace=True))
            in_ch = out_ch
        self.features = nn.Sequential(*layers)
        side = config.input_size // 2 ** layout.count("M")
        self.avgpool = nn.AdaptiveAvgPool2d((side, side))
        hidden = _scaled(512, config.width)
        self.classifier = nn.Sequential(
            nn.Linear(in_ch * side * side, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(config.dropout),
            nn.Linear(hidden, config.num_classes),
        )
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                # Not VGG's N(0, 0.01): with a 2-layer head that small, the convolutions get almost no gradient
                # for the first few hundred steps (measured: a long plateau at chance on 32 px signs).
                nn.init.kaiming_uniform_(m.weight, a=5**0.5)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = self.avgpool(x)
        return self.classifier(torch.flatten(x, 1))


MODELS: Registry[Callable[[ModelConfig], nn.Module]] = Registry("architecture")
"""Architecture builders ``fn(config) -> nn.Module`` by name; see :func:`create_model`."""
register_model = MODELS.register


@register_model("vgg11_bn")
def _vgg11_bn(config: ModelConfig) -> nn.Module:
    return VGG(config, CONFIG_A, batch_norm=True)


@register_model("vgg11")
def _vgg11(config: ModelConfig) -> nn.Module:
    return VGG(config, CONFIG_A, batch_norm=False)


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
