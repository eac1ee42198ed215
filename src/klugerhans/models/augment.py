"""On-the-fly training augmentation in torch: small random affine warps and colour jitter.

Batches stay on the training device; every random number comes from an explicit :class:`torch.Generator`
(drawn on the CPU, so a seed gives the same augmentation on every device). There are no horizontal flips:
a mirrored "turn left ahead" is a "turn right ahead". A sticker is part of the pixels, so it moves with
the sign.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from klugerhans.errors import KlugerhansError


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the random augmentation; each image draws its own values uniformly."""

    rotation: float = 10.0
    """Maximum rotation in degrees (either direction)."""
    scale: tuple[float, float] = (0.9, 1.1)
    """Zoom range; above 1 enlarges the sign."""
    translate: float = 0.1
    """Maximum shift as a fraction of the image side (each axis)."""
    brightness: float = 0.2
    """Brightness factor drawn from [1 - b, 1 + b]."""
    contrast: float = 0.2
    """Contrast factor drawn from [1 - c, 1 + c] (blend with the image's mean grey)."""
    saturation: float = 0.2
    """Saturation factor drawn from [1 - s, 1 + s] (blend with the greyscale image)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.rotation <= 180.0:
            raise KlugerhansError(f"rotation must be in [0, 180] degrees, got {self.rotation}")
        lo, hi = self.scale
        if not 0.0 < lo <= hi:
            raise KlugerhansError(f"scale range must satisfy 0 < low <= high, got {self.scale}")
        if not 0.0 <= self.translate < 1.0:
            raise KlugerhansError(f"translate must be in [0, 1), got {self.translate}")
        for name in ("brightness", "contrast", "saturation"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise KlugerhansError(f"{name} jitter must be in [0, 1), got {getattr(self, name)}")


def _uniform(n: int, lo: float, hi: float, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=generator, dtype=torch.float32) * (hi - lo) + lo


def random_affine_matrices(n: int, config: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """(n, 2, 3) matrices for :func:`torch.nn.functional.affine_grid`, mapping output to input coordinates.

    Rotating by ``a`` and zooming by ``s`` means sampling the input at ``R(-a) / s`` of each output point;
    a shift by ``t`` (fraction of the side) is ``2 t`` in the normalised [-1, 1] grid.
    """
    angle = _uniform(n, -config.rotation, config.rotation, generator) * (math.pi / 180.0)
    scale = _uniform(n, config.scale[0], config.scale[1], generator)
    shift = _uniform(2 * n, -config.translate, config.translate, generator).view(n, 2) * 2.0
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.empty(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = cos, sin
    theta[:, 1, 0], theta[:, 1, 1] = -sin, cos
    # Moving the content by +t means sampling the input at -t.
    theta[:, :, 2] = -shift
    return theta


def random_affine(x: torch.Tensor, config: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """Warp each image of ``x`` (N, 3, S, S) by its own small rotation, zoom and shift.

    Pixels pulled from outside the image mirror the border (zeros would add black corners, the colour
    of the sticker).
    """
    theta = random_affine_matrices(x.shape[0], config, generator).to(device=x.device, dtype=x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def color_jitter(x: torch.Tensor, config: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """Random brightness, contrast and saturation per image of ``x`` (N, 3, S, S) in [0, 1]; result clamped.

    Brightness ``b`` scales the image; contrast ``c`` blends it with its mean grey ``m``; saturation ``s``
    blends each pixel with its grey value ``g = w . x`` (ITU-R 601 luma weights ``w``, as torchvision). All
    three are linear, so they collapse into one 3x3 colour matrix and an offset per image:
    ``x' = c b (s I + (1 - s) 1 w^T) x + (1 - c) b m``, where ``m`` is the mean grey of the input (the
    saturation matrix leaves grey offsets unchanged since ``w`` sums to 1). One batched matrix product
    instead of a dozen passes over the batch.
    """
    n = x.shape[0]
    b = _uniform(n, 1 - config.brightness, 1 + config.brightness, generator)
    c = _uniform(n, 1 - config.contrast, 1 + config.contrast, generator)
    s = _uniform(n, 1 - config.saturation, 1 + config.saturation, generator)
    b, c, s = (v.to(device=x.device, dtype=x.dtype) for v in (b, c, s))
    w = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype)
    mean_grey = x.mean(dim=(2, 3)) @ w
    eye = torch.eye(3, device=x.device, dtype=x.dtype)
    saturate = s.view(n, 1, 1) * eye + (1 - s).view(n, 1, 1) * w.view(1, 1, 3)
    matrix = (c * b).view(n, 1, 1) * saturate
    offset = ((1 - c) * b * mean_grey).view(n, 1, 1)
    out = torch.baddbmm(offset, matrix, x.reshape(n, 3, -1))
    return out.view_as(x).clamp_(0.0, 1.0)


def augment_batch(x: torch.Tensor, config: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """Apply :func:`random_affine` then :func:`color_jitter` to (N, 3, S, S) images in [0, 1]."""
    return color_jitter(random_affine(x, config, generator), config, generator)
