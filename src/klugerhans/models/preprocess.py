"""Turning uint8 sign images into the normalised tensors a model takes, the same way everywhere."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from PIL import Image

from klugerhans.data.images import resize_center_crop, resize_square
from klugerhans.errors import KlugerhansError

ResizeMode = Literal["square", "center_crop"]
"""How a picture becomes an S x S input: "square" (``resize_square``, the sign crops of training) or
"center_crop" (``resize_center_crop``: short side to S, centre square; torchvision's evaluation transform)."""
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
"""ImageNet's RGB mean and std: the normalisation of torchvision's and most timm weights."""


@dataclass(frozen=True)
class Normalization:
    """Per-channel mean and standard deviation on the 0..1 scale; stored in every checkpoint."""

    mean: tuple[float, float, float] = (0.3403, 0.3121, 0.3214)
    """GTSRB training-set RGB mean."""
    std: tuple[float, float, float] = (0.2724, 0.2608, 0.2669)
    """GTSRB training-set RGB standard deviation."""

    def __post_init__(self) -> None:
        finite = all(math.isfinite(v) for v in (*self.mean, *self.std))
        if len(self.mean) != 3 or len(self.std) != 3 or not finite or min(self.std) <= 0:
            raise KlugerhansError(
                f"need three finite means and three positive finite stds, got {self.mean}, {self.std}"
            )


class Normalizer:
    """Applies a :class:`Normalization` to (N, 3, S, S) float batches on the 0..1 scale on one device.

    Holds the channel statistics on that device, so that a training step does not copy them there every batch.
    """

    def __init__(self, norm: Normalization, device: torch.device | str = "cpu") -> None:
        self.mean = torch.tensor(norm.mean, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(norm.std, device=device).view(1, 3, 1, 1)

    def __call__(self, x: torch.Tensor, inplace: bool = False) -> torch.Tensor:
        """``(x - mean) / std``; ``inplace`` overwrites ``x`` (for a batch nobody else holds)."""
        return x.sub_(self.mean).div_(self.std) if inplace else (x - self.mean) / self.std


def to_tensor(images: np.ndarray | torch.Tensor, norm: Normalization | None = None) -> torch.Tensor:
    """(N, S, S, 3) uint8 images -> (N, 3, S, S) float32 normalised tensor (same device as the input)."""
    if isinstance(images, np.ndarray) and not images.flags.writeable:
        images = images.copy()  # read-only arrays (e.g. from Pillow) cannot back a tensor safely
    x = torch.as_tensor(images)
    x = x.permute(0, 3, 1, 2).float().div_(255.0)
    return Normalizer(norm or Normalization(), x.device)(x)


def to_uint8(x: torch.Tensor, norm: Normalization | None = None) -> np.ndarray:
    """Invert :func:`to_tensor`: (N, 3, S, S) normalised -> (N, S, S, 3) uint8, for display."""
    stats = Normalizer(norm or Normalization(), x.device)
    img = (x.detach() * stats.std + stats.mean).clamp(0, 1).mul(255).round().byte()
    return img.permute(0, 2, 3, 1).cpu().numpy()


def resize_image(img: Image.Image, size: int, mode: ResizeMode = "square") -> np.ndarray:
    """PIL image -> (S, S, 3) uint8 array, resized as ``mode`` says (see :data:`ResizeMode`)."""
    rgb = img.convert("RGB")
    return resize_square(rgb, size) if mode == "square" else resize_center_crop(rgb, size)


def make_preprocess(
    input_size: int = 32, norm: Normalization | None = None, resize: ResizeMode = "square"
) -> Callable[[Image.Image], torch.Tensor]:
    """Return ``preprocess(pil_image) -> (3, S, S)`` float tensor, exactly as images enter training.

    Args:
        input_size: side S.
        norm: channel statistics (default GTSRB's).
        resize: "square" for sign crops, "center_crop" for photos (torchvision's evaluation transform).
    """
    norm = norm or Normalization()

    def preprocess(img: Image.Image) -> torch.Tensor:
        arr = resize_image(img, input_size, resize)
        return to_tensor(arr[None], norm)[0]

    return preprocess
