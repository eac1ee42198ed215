"""A loaded classifier: the network, its description and the preprocessing it was trained with."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from PIL import Image
from torch import nn

from klugerhans.errors import KlugerhansError
from klugerhans.models.meta import CheckpointMeta
from klugerhans.models.preprocess import make_preprocess


@dataclass
class Classifier:
    """A loaded classifier ready for inference, with the preprocessing it was trained with."""

    model: nn.Module
    """The network in eval mode, float32, on ``device``; (N, 3, S, S) -> (N, C) logits."""
    meta: CheckpointMeta
    """The checkpoint's description."""
    preprocess: Callable[[Image.Image], torch.Tensor]
    """PIL image -> (3, S, S) normalised tensor, exactly as in training."""
    device: torch.device
    """Where the model runs."""
    input_size: int
    """Side S of the input in pixels."""

    @property
    def class_names(self) -> tuple[str, ...]:
        """English class names indexed by output unit."""
        return self.meta.class_names

    @torch.no_grad()
    def logits(self, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """(N, 3, S, S) normalised inputs -> (N, C) float32 logits on the CPU, computed in batches."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise KlugerhansError(f"expected inputs of shape (N, 3, S, S), got {tuple(x.shape)}")
        out = [
            self.model(x[i : i + batch_size].to(self.device, torch.float32)).float().cpu()
            for i in range(0, len(x), max(1, batch_size))
        ]
        if not out:
            return torch.empty(0, self.meta.model.num_classes)
        return torch.cat(out)

    def probabilities(self, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """(N, 3, S, S) normalised inputs -> (N, C) class probabilities on the CPU."""
        return torch.softmax(self.logits(x, batch_size), dim=1)


def classifier_from_model(model: nn.Module, meta: CheckpointMeta, device: torch.device | str = "cpu") -> Classifier:
    """Wrap an in-memory model (e.g. one just trained) as a :class:`Classifier`; sets eval mode and float32."""
    dev = torch.device(device)
    model = model.to(device=dev, dtype=torch.float32).eval()
    return Classifier(
        model=model,
        meta=meta,
        preprocess=make_preprocess(meta.model.input_size, meta.normalization, meta.resize),
        device=dev,
        input_size=meta.model.input_size,
    )
