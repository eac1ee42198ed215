"""The outer training loop that ``klugerhans train`` and the repair fine-tuning share: epochs, the learning-rate
schedule, validation and the choice of the best epoch.

:func:`fit` runs :func:`~klugerhans.models.loop.run_epoch` once per epoch under a :class:`WarmupCosine` schedule,
validates, keeps the history and the best epoch, and hands each finished epoch to the caller: ``record`` turns it
into the history entry, ``on_epoch`` writes checkpoints, prints or keeps weights. What else differs between
training and fine-tuning comes in as arguments too: the step (gradient clipping), the score that picks the best
epoch and an extra loss term (the repair's right-for-the-right-reasons penalty).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel

from klugerhans.models.distributed import DistEnv, average_buffers, barrier
from klugerhans.models.loop import EpochStats, ExtraLoss, TrainStep, lr_at, run_epoch, steps_per_epoch, validate

__all__ = ["EpochEnd", "FitProgress", "WarmupCosine", "fit"]


@dataclass(frozen=True)
class WarmupCosine:
    """The learning rate of each optimizer step of a run: linear warm-up to ``peak``, then cosine decay towards zero
    (:func:`~klugerhans.models.loop.lr_at`). Call it with a step number."""

    peak: float
    """Peak learning rate, reached at the end of the warm-up."""
    steps_per_epoch: int
    """Optimizer steps per epoch."""
    epochs: int
    """Epochs of the whole run; a resumed run with more epochs stretches the decay."""
    warmup: int
    """Warm-up steps asked for (:attr:`warmup_steps` is what the run gets)."""

    @classmethod
    def over_epochs(cls, peak: float, steps_per_epoch: int, epochs: int, warmup_epochs: float) -> WarmupCosine:
        """A schedule whose warm-up is given in epochs (rounded to the nearest step)."""
        return cls(peak, steps_per_epoch, epochs, round(warmup_epochs * steps_per_epoch))

    @property
    def total_steps(self) -> int:
        """Optimizer steps of the whole run."""
        return self.steps_per_epoch * self.epochs

    @property
    def warmup_steps(self) -> int:
        """The warm-up, at most all steps but the last: one longer than the run would never reach ``peak``."""
        return min(self.warmup, max(self.total_steps - 1, 0))

    def __call__(self, step: int) -> float:
        return lr_at(step, self.total_steps, self.peak, self.warmup_steps)


@dataclass(frozen=True)
class EpochEnd:
    """One finished epoch, before it becomes a history entry."""

    epoch: int
    """Its number, from 1."""
    stats: EpochStats
    """Training loss, accuracy, images and time."""
    val: dict[str, float | None]
    """Validation accuracies (:func:`~klugerhans.models.loop.validate`)."""
    lr: float
    """Learning rate of its last step."""
    seconds: float
    """Wall time of training and validation."""


@dataclass(frozen=True)
class FitProgress:
    """Where a fit stands after its last complete epoch; what a resumed run starts from."""

    history: list[dict[str, Any]] = field(default_factory=list)
    """One entry per complete epoch."""
    best: float = -math.inf
    """Best score so far."""
    best_epoch: int = 0
    """Epoch of the best score (from 1; 0: none yet)."""
    epoch: int = 0
    """Complete epochs."""


def fit(
    step: TrainStep,
    train_set: tuple[torch.Tensor, torch.Tensor],
    val_set: tuple[torch.Tensor, torch.Tensor],
    *,
    schedule: WarmupCosine,
    batch_size: int,
    seed: int,
    num_classes: int,
    target_class: int | None,
    record: Callable[[EpochEnd], dict[str, Any]],
    score: Callable[[dict[str, float | None]], float | None],
    on_epoch: Callable[[FitProgress, bool], None] | None = None,
    start: FitProgress | None = None,
    env: DistEnv | None = None,
    label: str | None = None,
    extra_loss: ExtraLoss | None = None,
) -> FitProgress:
    """Train ``step``'s model from ``start`` (default: the beginning) to the schedule's last epoch.

    Args:
        step: the optimizer step (its model may be wrapped in DistributedDataParallel).
        train_set, val_set: (N, 3, S, S) uint8 images and (N,) labels on the step's device.
        schedule: learning rate per global step; its ``epochs`` is the run's length.
        batch_size, seed: as in :func:`~klugerhans.models.loop.run_epoch`.
        num_classes, target_class: for :func:`~klugerhans.models.loop.validate`.
        record: an epoch -> its history entry.
        score: validation accuracies -> the score the best epoch maximises (None: every epoch counts as best).
        on_epoch: called on every rank after each epoch with the progress (the new entry last) and whether the
            epoch is the best so far, e.g. to save checkpoints.
        start: progress of a resumed run.
        env: this process's rank and the world size.
        label: progress-bar label (``"{label} {epoch}/{epochs}"``), or None for no bar.
        extra_loss: a term added to each batch's loss.
    """
    env = env or DistEnv()
    progress = start or FitProgress()
    model = step.model.module if isinstance(step.model, DistributedDataParallel) else step.model
    images, labels = train_set
    spe = steps_per_epoch(len(images), batch_size)
    for epoch in range(progress.epoch, schedule.epochs):
        began = time.perf_counter()
        stats = run_epoch(
            step, images, labels, batch_size=batch_size, seed=seed, epoch=epoch, lr_schedule=schedule,
            first_step=epoch * spe, env=env, extra_loss=extra_loss,
            progress=f"{label} {epoch + 1}/{schedule.epochs}" if label is not None else None,
        )  # fmt: skip
        average_buffers(model, env)
        val = validate(model, step, *val_set, num_classes, target_class, env)
        end = EpochEnd(epoch + 1, stats, val, schedule((epoch + 1) * spe - 1), time.perf_counter() - began)
        value = score(val)
        improved = value is None or value > progress.best
        progress = FitProgress(
            history=[*progress.history, record(end)],
            best=progress.best if value is None or not improved else value,
            best_epoch=epoch + 1 if improved else progress.best_epoch,
            epoch=epoch + 1,
        )
        if on_epoch is not None:
            on_epoch(progress, improved)
        barrier(env)
    return progress
