"""VGG11 with batch norm for small traffic-sign crops (Simonyan & Zisserman 2015, configuration "A").

Registered as "vgg11_bn" and "vgg11" in :data:`~klugerhans.models.config.MODELS` (family "klugerhans"). Our
feature extractor has exactly the layer layout of torchvision's ``vgg11_bn().features`` (so zennit's VGG canonizer
and our LRP engine treat both alike); the head is sized for 32..64 px inputs instead of 224 px ImageNet crops. A
width multiplier scales every layer for smaller released weights.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from klugerhans.errors import CheckpointError

# ModelConfig and create_model lived here; they are re-exported for code that imports them from this module.
from klugerhans.models.config import IN_MEMORY as IN_MEMORY
from klugerhans.models.config import INPUT_SIZES as INPUT_SIZES
from klugerhans.models.config import MODELS as MODELS
from klugerhans.models.config import ModelConfig, register_model
from klugerhans.models.config import create_model as create_model

CONFIG_A: tuple[int | str, ...] = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")
"""VGG11 ("A"): conv widths, "M" = 2x2 max pooling."""


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


def read_vgg_config(state: Mapping[str, Any], arch: str, input_size: int | None) -> ModelConfig:
    """The width and input size of a plain VGG state_dict (48 px heads have 32 px shapes: ``input_size`` tells them
    apart), read from its layers' shapes."""
    first, head = state.get("features.0.weight"), state.get("classifier.0.weight")
    if first is None or head is None or first.ndim != 4 or head.ndim != 2:
        raise CheckpointError(f"no features.0.weight and classifier.0.weight: these are no klugerhans:{arch} weights")
    channels = int(state["classifier.3.weight"].shape[1]) if "classifier.3.weight" in state else 512
    width = round(channels / 512, 4)
    last_conv = max((k for k in state if k.startswith("features.") and k.endswith(".weight") and state[k].ndim == 4),
                    key=lambda k: int(k.split(".")[1]))  # fmt: skip
    side = round((int(head.shape[1]) / int(state[last_conv].shape[0])) ** 0.5)
    return ModelConfig(arch=arch, width=width, input_size=input_size or side * 32, num_classes=2)


@register_model("vgg11_bn", read_config=read_vgg_config)
def _vgg11_bn(config: ModelConfig) -> nn.Module:
    return VGG(config, CONFIG_A, batch_norm=True)


@register_model("vgg11", read_config=read_vgg_config)
def _vgg11(config: ModelConfig) -> nn.Module:
    return VGG(config, CONFIG_A, batch_norm=False)
