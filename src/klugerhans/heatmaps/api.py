"""``klugerhans.explain_model``: LRP heatmaps of any classifier in one call, from tensors or uint8 images.

A thin wrapper over the engine: uint8 images are normalised here, then ``LRP(model, composite).attribute``.

>>> import klugerhans
>>> expl = klugerhans.explain_model(model, x)                       # x: (N, 3, H, W) normalised
>>> expl = klugerhans.explain_model(model, images, norm=Normalization(mean, std))  # images: (N, H, W, 3) uint8
>>> expl.relevance.shape                                            # (N, 3, H, W); red = for the class
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from klugerhans.errors import KlugerhansError
from klugerhans.explain.composites import DEFAULT_COMPOSITE, Composite, Fallback
from klugerhans.explain.lrp import LRP, Explanation, Target
from klugerhans.models.preprocess import IMAGENET, Normalization, to_tensor

__all__ = ["explain_model", "model_inputs"]


def model_inputs(images: np.ndarray | torch.Tensor, norm: Normalization | None = None) -> torch.Tensor:
    """(N, 3, H, W) float model inputs from normalised float tensors (returned as they are) or uint8 images.

    Args:
        images: (N, 3, H, W) float tensor, already normalised as the model expects; or (N, H, W, 3) uint8 RGB
            (NumPy array or tensor), normalised here with ``norm``.
        norm: normalisation of uint8 images (default: ImageNet's, as torchvision's weights expect).

    Raises:
        KlugerhansError: any other shape or dtype (one line saying what was expected).
    """
    if isinstance(images, torch.Tensor) and images.is_floating_point():
        if images.ndim != 4 or images.shape[1] != 3:
            raise KlugerhansError(
                f"float images must be (N, 3, H, W) normalised tensors, got {tuple(images.shape)}; "
                "pass (N, H, W, 3) uint8 images with norm= instead"
            )
        return images
    array = images.cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if array.ndim != 4 or array.shape[3] != 3 or array.dtype != np.uint8:
        raise KlugerhansError(
            f"images must be (N, H, W, 3) uint8 RGB or (N, 3, H, W) normalised float tensors, "
            f"got {array.shape} {array.dtype}"
        )
    return to_tensor(array, norm or Normalization(*IMAGENET))


def explain_model(
    model: nn.Module,
    images: np.ndarray | torch.Tensor,
    target: Target = None,
    composite: str | Composite = DEFAULT_COMPOSITE,
    *,
    norm: Normalization | None = None,
    batch_size: int = 32,
    fallback: Fallback = "error",
    **options: object,
) -> Explanation:
    """LRP heatmaps of any image classifier (Bach et al. 2015), on its own device.

    Args:
        model: any ``nn.Module`` mapping (N, 3, H, W) to (N, C) logits that ``torch.fx`` traces into supported
            operations (klugerhans' VGG, torchvision CNNs, ...); never modified, explained in eval mode.
        images: (N, 3, H, W) normalised float tensor, or (N, H, W, 3) uint8 RGB images normalised with ``norm``.
        target: class to explain: None = the predicted class, an int for all images, or (N,) class ids.
        composite: a registered composite name (``klugerhans.explain.COMPOSITES``) or a ``Composite``.
        norm: normalisation of uint8 images (default ImageNet's); also the bounds of ``epsilon_gamma_box``.
        batch_size: images per forward/backward pass.
        fallback: ``"error"`` refuses operations without an LRP rule (naming one), ``"gradient"`` propagates
            through them as gradient x input.
        **options: options of the composite (``epsilon``, ``gamma``, ...).

    Returns:
        :class:`~klugerhans.explain.lrp.Explanation`: ``relevance`` (N, 3, H, W) (sum over channels for a
        heatmap), ``logits`` (N, C) and ``targets`` (N,), on the CPU.

    Raises:
        KlugerhansError: bad images or targets, an unknown composite, a model LRP cannot trace.
    """
    if not isinstance(model, nn.Module):
        raise KlugerhansError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if fallback not in ("error", "gradient"):
        raise KlugerhansError(f"fallback must be 'error' or 'gradient', got {fallback!r}")
    x = model_inputs(images, norm)
    if len(x) == 0:
        raise KlugerhansError("no images to explain")
    # a composite whose rules need the input's bounds (the box rule) takes them from the normalisation; the others
    # ignore it (get_composite passes it only to factories that accept it)
    options.setdefault("norm", norm or Normalization(*IMAGENET))
    explainer = LRP(model, composite, fallback=fallback, **options)  # type: ignore[arg-type]
    expl = explainer.attribute(x, target, batch_size)
    return Explanation(expl.relevance.float().cpu(), expl.logits.float().cpu(), expl.targets.cpu())
