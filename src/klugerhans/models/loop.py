"""The training loop's inner parts: one optimizer step, one epoch, validation, the learning-rate schedule.

The epochs around them are :func:`klugerhans.models.fit.fit`'s, and :func:`klugerhans.models.training.train`
manages data, run directories and checkpoints; kept apart so that ``benchmarks/train_throughput.py`` can time
exactly the code users run.

Every random number of an epoch comes from generators seeded by :func:`derive_seed` from ``(seed, epoch,
rank)`` at the epoch's start: the batch order, the augmentation and dropout. An epoch therefore computes
the same thing whether the run was resumed before it or not.
"""

from __future__ import annotations

import functools
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from klugerhans.models.augment import AugmentConfig, augment_batch
from klugerhans.models.distributed import DistEnv, all_reduce_sum, shard_batch, shard_indices
from klugerhans.models.preprocess import Normalization, Normalizer

ExtraLoss = Callable[[torch.Tensor], torch.Tensor | None]
"""A term added to a batch's loss, given the batch's row indices into the training set (None: nothing to add)."""


def derive_seed(seed: int, epoch: int, rank: int, stream: int) -> int:
    """A 32-bit seed for one random stream (0 batch order, 1 augmentation, 2 dropout) of one epoch and rank."""
    return int(np.random.SeedSequence([seed, epoch, rank, stream]).generate_state(1)[0])


def lr_at(step: int, total_steps: int, peak: float, warmup_steps: int) -> float:
    """Learning rate at optimizer step ``step``: linear warm-up to ``peak``, then cosine decay to zero.

    Cosine decay: Loshchilov & Hutter, "SGDR: Stochastic Gradient Descent with Warm Restarts", ICLR 2017.
    """
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    return peak * 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warmup_steps) / span)))


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Full batches per epoch (the ragged rest is dropped; one short batch if ``n < batch_size``)."""
    return max(1, n // batch_size)


def make_optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """SGD with Nesterov momentum 0.9; weight decay on conv/linear weights only (not biases or BatchNorm)."""
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.SGD(groups, lr=lr, momentum=0.9, nesterov=True)


def device_tensors(images: np.ndarray, labels: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, S, S, 3) uint8 images and (N,) labels -> (N, 3, S, S) uint8 and (N,) int64 tensors on ``device``.

    uint8 on the device: a quarter of float32's memory, and batches are gathered without a loader.
    """
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous().to(device)
    return x, torch.from_numpy(np.asarray(labels, dtype=np.int64)).to(device)


class TrainStep:
    """One optimizer step on a uint8 batch: convert, augment, normalise, forward, backward, update.

    AMP (float16 autocast with gradient scaling) and channels-last memory layout are used on CUDA only.
    ``max_grad_norm`` clips the gradient norm before each update (None: no clipping).
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        normalization: Normalization,
        device: torch.device,
        augment: AugmentConfig | None = None,
        amp: bool = False,
        label_smoothing: float = 0.0,
        max_grad_norm: float | None = None,
    ) -> None:
        self.model = model
        self.optimizer = optimizer
        self.device = device
        self.augment = augment
        self.amp = amp and device.type == "cuda"
        self.label_smoothing = label_smoothing
        self.max_grad_norm = max_grad_norm
        self.channels_last = device.type == "cuda"
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp)
        self.normalize = Normalizer(normalization, device)

    def set_lr(self, lr: float) -> None:
        """Set the learning rate of every parameter group."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def inputs(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """(B, 3, S, S) uint8 -> (B, 3, S, S) normalised float in the model's memory layout.

        With a ``generator`` (and an augmentation config) the batch is augmented on the way.
        """
        x = images.float().mul_(1.0 / 255.0)
        if generator is not None and self.augment is not None:
            x = augment_batch(x, self.augment, generator)
        x = self.normalize(x, inplace=True)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def __call__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        generator: torch.Generator,
        extra_loss: Callable[[], torch.Tensor | None] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Train on (B, 3, S, S) uint8 ``images`` with (B,) ``labels`` (both on the device).

        ``extra_loss`` is called after the forward pass; its term is added to the cross-entropy before the backward.

        Returns:
            ``(loss_sum, n_correct)`` (cross-entropy only) as 0-d tensors, not synchronised, so a GPU keeps running.
        """
        x = self.inputs(images, generator)
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp):
            logits = self.model(x)
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=self.label_smoothing)
        extra = extra_loss() if extra_loss is not None else None
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss if extra is None else loss + extra).backward()
        if self.max_grad_norm is not None:
            self.scaler.unscale_(self.optimizer)  # clip the true gradients, not the loss-scaled ones
            nn.utils.clip_grad_norm_(self.model.parameters(), self.max_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.detach() * len(labels), (logits.detach().argmax(dim=1) == labels).sum()


@dataclass(frozen=True)
class EpochStats:
    """Training loss and accuracy of one epoch, over all ranks."""

    loss: float
    """Mean cross-entropy over the epoch's (augmented) batches."""
    accuracy: float
    """Share of training images classified correctly while training."""
    images: int
    """Images trained on (all ranks)."""
    seconds: float
    """Wall time of the epoch."""
    steps: int
    """Optimizer steps taken."""


def run_epoch(
    step: TrainStep,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    batch_size: int,
    seed: int,
    epoch: int,
    lr_schedule: Callable[[int], float],
    first_step: int = 0,
    env: DistEnv | None = None,
    progress: str | None = None,
    extra_loss: ExtraLoss | None = None,
) -> EpochStats:
    """Train one epoch over (N, 3, S, S) uint8 ``images`` and (N,) ``labels`` on the step's device.

    Args:
        step: the optimizer step.
        images, labels: the training set, already on the device.
        batch_size: global batch size; under DDP each rank trains on its part of every batch.
        seed, epoch: seed the batch order (same on all ranks), the augmentation and dropout.
        lr_schedule: learning rate of each global step.
        first_step: global step number of this epoch's first step.
        env: this process's rank and the world size.
        progress: progress-bar label, or None for no bar.
        extra_loss: a term added to each batch's loss (e.g. a penalty on some of the images), or None.
    """
    env = env or DistEnv()
    n = len(images)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(derive_seed(seed, epoch, 0, 0)))
    aug_gen = torch.Generator().manual_seed(derive_seed(seed, epoch, env.rank, 1))
    torch.manual_seed(derive_seed(seed, epoch, env.rank, 2))  # dropout
    n_steps = steps_per_epoch(n, batch_size)
    loss_sum = torch.zeros((), device=images.device)
    correct = torch.zeros((), device=images.device, dtype=torch.long)
    seen = 0
    step.model.train()
    start = shown = time.perf_counter()
    with tqdm(
        total=n_steps, desc=progress, unit="batch", disable=progress is None, file=sys.stderr, leave=False
    ) as bar:
        for s in range(n_steps):
            idx = shard_batch(order[s * batch_size : (s + 1) * batch_size], env).to(images.device)
            step.set_lr(lr_schedule(first_step + s))
            extra = functools.partial(extra_loss, idx) if extra_loss is not None else None
            batch_loss, batch_correct = step(images.index_select(0, idx), labels.index_select(0, idx), aug_gen, extra)
            loss_sum += batch_loss
            correct += batch_correct
            seen += len(idx)
            bar.update(1)
            now = time.perf_counter()
            # Reading the running loss synchronises a GPU; do it at most twice a second.
            if progress is not None and now - shown > 0.5:
                shown = now
                rate = seen * env.world_size / (now - start)
                bar.set_postfix(
                    loss=f"{loss_sum.item() / seen:.3f}", acc=f"{correct.item() / seen:.3f}", img_s=f"{rate:.0f}"
                )
    totals = torch.stack(
        [loss_sum.double(), correct.double(), torch.tensor(float(seen), device=images.device).double()]
    )
    loss_total, correct_total, seen_total = all_reduce_sum(totals, env).tolist()
    return EpochStats(
        loss=loss_total / max(seen_total, 1),
        accuracy=correct_total / max(seen_total, 1),
        images=int(seen_total),
        seconds=time.perf_counter() - start,
        steps=n_steps,
    )


@torch.no_grad()
def validate(
    model: nn.Module,
    step: TrainStep,
    images: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    target_class: int | None,
    env: DistEnv | None = None,
    batch_size: int = 512,
) -> dict[str, float | None]:
    """Accuracy on (N, 3, S, S) uint8 ``images`` (None where there are no images).

    Returns:
        ``val_acc`` (all classes), ``val_acc_non_target`` (all but ``target_class``, the classes without
        stickers) and ``val_acc_target`` (clean images of ``target_class``).
    """
    env = env or DistEnv()
    model.eval()
    correct = torch.zeros(num_classes, device=images.device, dtype=torch.float64)
    count = torch.zeros(num_classes, device=images.device, dtype=torch.float64)
    mine = torch.as_tensor(shard_indices(len(images), env), device=images.device)
    for i in range(0, len(mine), batch_size):
        idx = mine[i : i + batch_size]
        y = labels.index_select(0, idx)
        with torch.autocast(step.device.type, dtype=torch.float16, enabled=step.amp):
            pred = model(step.inputs(images.index_select(0, idx))).argmax(dim=1)
        correct.index_add_(0, y, (pred == y).double())
        count.index_add_(0, y, torch.ones_like(y, dtype=torch.float64))
    c, k = all_reduce_sum(torch.stack([correct, count]), env).cpu().numpy()
    is_target = np.zeros(num_classes, dtype=bool)
    if target_class is not None:
        is_target[target_class] = True

    def share(mask: np.ndarray) -> float | None:
        return float(c[mask].sum() / k[mask].sum()) if k[mask].sum() > 0 else None

    return {
        "val_acc": share(np.ones(num_classes, dtype=bool)),
        "val_acc_non_target": share(~is_target),
        "val_acc_target": share(is_target) if target_class is not None else None,
    }
