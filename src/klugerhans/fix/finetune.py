"""Fine-tuning a classifier under repair: plain, on cleaned data, or with a right-for-the-right-reasons penalty.

The loop is the training loop's (:func:`~klugerhans.models.fit.fit`: the same conversions, augmentation and seeds,
SGD with Nesterov momentum, warm-up and cosine decay), with gradient clipping and two additions a repair needs:

- ``masks``: a right-for-the-right-reasons penalty (Ross, Hughes & Doshi-Velez, "Right for the Right Reasons:
  Training Differentiable Models by Constraining their Explanations", IJCAI 2017), passed to the loop as an extra
  loss term: for the images with a mask, the squared input gradient of the summed log-probabilities inside the mask,
  weighted by ``rrr_weight``. It is computed on the un-augmented images so that the masks stay aligned.
- the validation accuracy of every epoch, and the weights of the best epoch (by clean validation accuracy).
"""

from __future__ import annotations

import copy
import math
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from klugerhans.errors import KlugerhansError
from klugerhans.models.augment import AugmentConfig
from klugerhans.models.fit import EpochEnd, FitProgress, WarmupCosine, fit
from klugerhans.models.loop import TrainStep, device_tensors, make_optimizer, steps_per_epoch
from klugerhans.models.preprocess import Normalization

__all__ = ["FineTuneConfig", "fine_tune"]


@dataclass(frozen=True)
class FineTuneConfig:
    """Settings of a repair fine-tuning."""

    epochs: int = 3
    """Passes over the training images (0: the model is returned unchanged)."""
    lr: float = 0.01
    """Peak learning rate (cosine decay to zero, short linear warm-up)."""
    batch_size: int = 128
    """Images per step."""
    weight_decay: float = 5e-4
    """L2 penalty on conv/linear weights."""
    augment: bool = True
    """Random affine + colour jitter, as in training."""
    rrr_weight: float = 0.01
    """Weight of the right-for-the-right-reasons penalty (used only when masks are given). Ross et al. choose it so
    that both terms have the same order of magnitude; for our GTSRB models the penalty starts near 10^3 on stickered
    images, so 0.01 (measured: 10 made the loss diverge)."""
    max_grad_norm: float = 5.0
    """Gradient norm clipping."""
    seed: int = 0
    """Seed of batch order, augmentation and dropout."""

    def __post_init__(self) -> None:
        if self.epochs < 0 or self.batch_size < 1:
            raise KlugerhansError(
                f"fine-tuning needs epochs >= 0 and batch size >= 1, got {self.epochs}, {self.batch_size}"
            )
        if (
            not (self.lr > 0 and math.isfinite(self.lr))
            or self.weight_decay < 0
            or self.rrr_weight < 0
            or not (self.max_grad_norm > 0)
        ):
            raise KlugerhansError("fine-tuning needs lr > 0, weight decay >= 0 and rrr weight >= 0")


def _rrr_penalty(model: nn.Module, step: TrainStep, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Ross et al.'s penalty: sum over masked pixels of (d sum_k log p_k / dx)^2, mean over images."""
    # Eval mode: the few masked images of a batch must neither set nor update the BatchNorm statistics.
    was_training = model.training
    model.eval()
    try:
        x = step.inputs(images).requires_grad_(True)
        log_probs = F.log_softmax(model(x).float(), dim=1)
        (grad,) = torch.autograd.grad(log_probs.sum(), x, create_graph=True)
        return (grad.pow(2).sum(1) * masks).sum((1, 2)).mean()
    finally:
        model.train(was_training)


class _Penalty:
    """The RRR term of a batch (an :data:`~klugerhans.models.loop.ExtraLoss`, by the batch's row indices), scaled
    to the batch's share of masked images; sums ``penalty * batch size`` for the epoch's record."""

    def __init__(
        self, model: nn.Module, step: TrainStep, images: torch.Tensor, masks: torch.Tensor, weight: float
    ) -> None:
        self.model, self.step, self.images, self.masks, self.weight = model, step, images, masks, weight
        self.has_mask = masks.flatten(1).any(1)
        self.total = 0.0

    def __call__(self, idx: torch.Tensor) -> torch.Tensor | None:
        sel = idx[self.has_mask[idx]]
        if not len(sel):
            return None
        penalty = _rrr_penalty(self.model, self.step, self.images[sel], self.masks[sel]) * (len(sel) / len(idx))
        self.total += float(penalty.detach()) * len(idx)
        return self.weight * penalty

    def take(self) -> float:
        """The sum since the last call (one epoch's), and start anew."""
        total, self.total = self.total, 0.0
        return total


def fine_tune(
    model: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    val_images: np.ndarray,
    val_labels: np.ndarray,
    normalization: Normalization,
    config: FineTuneConfig | None = None,
    masks: np.ndarray | None = None,
    target_class: int | None = None,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> tuple[nn.Module, list[dict[str, Any]]]:
    """Fine-tune ``model`` (in place) and return it with the weights of its best validation epoch.

    Args:
        model: the classifier (float32).
        images, labels: (N, S, S, 3) uint8 training images and (N,) labels.
        val_images, val_labels: clean validation images for the per-epoch accuracy and model selection.
        normalization: the model's input normalisation.
        config: fine-tuning settings.
        masks: (N, S, S) bool regions whose input gradient is penalised (RRR), or None.
        target_class: class reported separately in the validation numbers.
        device: where to train.
        progress: progress bar and one line per epoch on stderr.

    Returns:
        ``(model, history)`` with one record per epoch (loss, accuracy, penalty, validation accuracies, seconds).
    """
    config = config or FineTuneConfig()
    dev = torch.device(device)
    model.to(dev)
    optimizer = make_optimizer(model, config.lr, config.weight_decay)
    augment = AugmentConfig() if config.augment else None
    # Input-gradient penalties have steep second derivatives: clip so one batch cannot blow the model up.
    step = TrainStep(model, optimizer, normalization, dev, augment, amp=False, max_grad_norm=config.max_grad_norm)
    x_all, y_all = device_tensors(images, labels, dev)
    xv, yv = device_tensors(val_images, val_labels, dev)
    penalty = None
    if masks is not None and config.rrr_weight > 0:
        m_all = torch.from_numpy(np.asarray(masks, dtype=np.float32)).to(dev)
        penalty = _Penalty(model, step, x_all, m_all, config.rrr_weight)
    spe = steps_per_epoch(len(x_all), config.batch_size)
    # A quarter epoch, rounded down (training rounds its warm-up epochs to the nearest step).
    schedule = WarmupCosine(config.lr, spe, config.epochs, warmup=spe // 4)
    model.eval()
    with torch.no_grad():
        num_classes = int(model(step.inputs(x_all[:1])).shape[1])
    best_state = copy.deepcopy(model.state_dict())

    def to_record(end: EpochEnd) -> dict[str, Any]:
        return {
            "epoch": end.epoch,
            "train_loss": end.stats.loss,
            "rrr_penalty": (penalty.take() if penalty is not None else 0.0) / max(1, end.stats.images),
            "train_acc": end.stats.accuracy,
            **end.val,
            "seconds": end.seconds,
        }

    def keep_best(fitted: FitProgress, improved: bool) -> None:
        nonlocal best_state
        record = fitted.history[-1]
        if progress:
            print(
                f"fine-tune epoch {record['epoch']}/{config.epochs}: loss {record['train_loss']:.4f}, "
                f"rrr {record['rrr_penalty']:.4g}, val acc {100 * (record['val_acc'] or 0):.2f}%, "
                f"clean class {target_class} {100 * (record['val_acc_target'] or 0):.2f}% ({record['seconds']:.0f} s)",
                file=sys.stderr,
            )
        if improved:
            best_state = copy.deepcopy(model.state_dict())

    fitted = fit(
        step, (x_all, y_all), (xv, yv), schedule=schedule, batch_size=config.batch_size, seed=config.seed,
        num_classes=num_classes, target_class=target_class, record=to_record,
        score=lambda val: val["val_acc"] or 0.0, on_epoch=keep_best, label="fine-tune" if progress else None,
        extra_loss=penalty,
    )  # fmt: skip
    model.load_state_dict(best_state)
    model.eval()
    return model, fitted.history
