"""Fine-tuning a classifier under repair: plain, on cleaned data, or with a right-for-the-right-reasons penalty.

The loop is the training loop's (:class:`~klugerhans.models.loop.TrainStep` conversions and augmentation, SGD with
Nesterov momentum, cosine decay) with two additions a repair needs:

- ``masks``: a right-for-the-right-reasons penalty (Ross, Hughes & Doshi-Velez, "Right for the Right Reasons:
  Training Differentiable Models by Constraining their Explanations", IJCAI 2017): for the images with a mask, the
  squared input gradient of the summed log-probabilities inside the mask is added to the loss, weighted by
  ``rrr_weight``. It is computed on the un-augmented images so that the masks stay aligned.
- the validation accuracy of every epoch, and the weights of the best epoch (by clean validation accuracy).
"""

from __future__ import annotations

import copy
import math
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from klugerhans.errors import KlugerhansError
from klugerhans.models.augment import AugmentConfig
from klugerhans.models.loop import TrainStep, derive_seed, lr_at, make_optimizer, validate
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
    step = TrainStep(model, optimizer, normalization, dev, AugmentConfig() if config.augment else None, amp=False)
    x_all = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous().to(dev)
    y_all = torch.from_numpy(np.asarray(labels, dtype=np.int64)).to(dev)
    xv = torch.from_numpy(np.ascontiguousarray(val_images)).permute(0, 3, 1, 2).contiguous().to(dev)
    yv = torch.from_numpy(np.asarray(val_labels, dtype=np.int64)).to(dev)
    m_all = torch.from_numpy(np.asarray(masks, dtype=np.float32)).to(dev) if masks is not None else None
    has_mask = m_all.flatten(1).any(1) if m_all is not None else None
    n = len(x_all)
    spe = max(1, n // config.batch_size)
    total = spe * config.epochs
    warmup = min(spe // 4, total - 1)
    model.eval()
    with torch.no_grad():
        num_classes = int(model(step.inputs(x_all[:1])).shape[1])
    history: list[dict[str, Any]] = []
    best_state, best_acc = copy.deepcopy(model.state_dict()), -1.0
    for epoch in range(config.epochs):
        model.train()
        order = torch.randperm(n, generator=torch.Generator().manual_seed(derive_seed(config.seed, epoch, 0, 0)))
        gen = torch.Generator().manual_seed(derive_seed(config.seed, epoch, 0, 1))
        torch.manual_seed(derive_seed(config.seed, epoch, 0, 2))
        sums = {"loss": 0.0, "penalty": 0.0, "correct": 0.0, "seen": 0}
        start = time.perf_counter()
        bar = tqdm(range(spe), desc=f"fine-tune {epoch + 1}/{config.epochs}", disable=not progress, leave=False)
        for i in bar:
            idx = order[i * config.batch_size : (i + 1) * config.batch_size].to(dev)
            step.set_lr(lr_at(epoch * spe + i, total, config.lr, warmup))
            logits = model(step.inputs(x_all[idx], gen))
            loss = F.cross_entropy(logits.float(), y_all[idx])
            penalty = torch.zeros((), device=dev)
            if m_all is not None and has_mask is not None and config.rrr_weight > 0:
                sel = idx[has_mask[idx]]
                if len(sel):
                    penalty = _rrr_penalty(model, step, x_all[sel], m_all[sel]) * (len(sel) / len(idx))
            optimizer.zero_grad(set_to_none=True)
            (loss + config.rrr_weight * penalty).backward()
            # Input-gradient penalties have steep second derivatives: clip so one batch cannot blow the model up.
            nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimizer.step()
            sums["loss"] += float(loss.detach()) * len(idx)
            sums["penalty"] += float(penalty.detach()) * len(idx)
            sums["correct"] += float((logits.detach().argmax(1) == y_all[idx]).sum())
            sums["seen"] += len(idx)
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}", rrr=f"{float(penalty.detach()):.3g}")
        val = validate(model, step, xv, yv, num_classes, target_class)
        seen = max(1, int(sums["seen"]))
        record = {
            "epoch": epoch + 1,
            "train_loss": sums["loss"] / seen,
            "rrr_penalty": sums["penalty"] / seen,
            "train_acc": sums["correct"] / seen,
            **val,
            "seconds": time.perf_counter() - start,
        }
        history.append(record)
        if progress:
            print(
                f"fine-tune epoch {epoch + 1}/{config.epochs}: loss {record['train_loss']:.4f}, "
                f"rrr {record['rrr_penalty']:.4g}, val acc {100 * (val['val_acc'] or 0):.2f}%, "
                f"clean class {target_class} {100 * (val['val_acc_target'] or 0):.2f}% ({record['seconds']:.0f} s)",
                file=sys.stderr,
            )
        score = val["val_acc"] or 0.0
        if score > best_acc:
            best_acc, best_state = score, copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    model.eval()
    return model, history
