"""Training a classifier with a sticker shortcut glued on one class (the teaching case's Clever Hans setup).

:func:`train` loads a dataset, splits validation off the training split by track (no near-duplicate
frames on both sides), glues stickers on the target class of the *training* part only, and trains a
VGG11-BN with SGD (Nesterov momentum) under a warm-up + cosine learning-rate schedule. Images stay uint8
tensors in memory and are augmented on the fly (:mod:`klugerhans.models.augment`). Every random number
is drawn from generators reseeded from ``(seed, epoch, rank)`` at each epoch start, so the same seed gives
the same weights and a resumed run equals an uninterrupted one bit for bit (on the CPU).
The same function runs data-parallel under ``torchrun`` (:mod:`klugerhans.models.distributed`).
"""

from __future__ import annotations

import json
import platform
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from klugerhans.data.classes import CLASS_NAMES_EN
from klugerhans.errors import KlugerhansError
from klugerhans.io import atomic_write, atomic_write_text, to_jsonable
from klugerhans.models.augment import AugmentConfig
from klugerhans.models.checkpoint import read_checkpoint, save_checkpoint
from klugerhans.models.classifier import classifier_from_model
from klugerhans.models.config import create_model
from klugerhans.models.distributed import (
    DistEnv,
    barrier,
    dist_env_from_environ,
    init_distributed,
    resolve_device,
    shutdown_distributed,
)
from klugerhans.models.evaluation import Evaluation, evaluate_model, save_curves_png
from klugerhans.models.fit import EpochEnd, FitProgress, WarmupCosine, fit
from klugerhans.models.loop import TrainStep, device_tensors, make_optimizer, steps_per_epoch
from klugerhans.models.meta import CheckpointMeta
from klugerhans.models.recipe import TrainConfig, TrainOptions
from klugerhans.models.trainset import PreparedData, prepare_data
from klugerhans.version import __version__

# Recipe fields that may change on --resume (the run options in TrainOptions may change too).
_RESUMABLE_CHANGES = ("epochs",)

__all__ = ["TrainConfig", "TrainOptions", "TrainResult", "train"]


CONFIG_FILE = "config.json"
LAST_CHECKPOINT = "last.safetensors"
BEST_CHECKPOINT = "best.safetensors"
TRAIN_STATE = "train_state.pt"
METRICS_FILE = "metrics.json"
CURVES_FILE = "curves.png"


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` produced."""

    run_dir: Path
    """The run directory."""
    best_checkpoint: Path
    """Weights of the epoch with the best validation accuracy on the classes without stickers."""
    last_checkpoint: Path
    """Weights after the last epoch."""
    metrics: dict[str, Any]
    """Per-epoch history, best epoch and (on rank 0) test metrics of the best checkpoint."""
    model: nn.Module
    """The trained network after the last epoch (eval mode, unwrapped from DDP)."""
    test: Evaluation | None = None
    """The best checkpoint on the clean and stickered test split (rank 0, when the data has a test split): what
    ``metrics["test"]`` holds, as the object a caller can use without evaluating again."""


def _versions() -> dict[str, str]:
    return {
        "klugerhans": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def _check_run_dir(run_dir: Path, config: TrainConfig, resume: bool) -> dict[str, Any] | None:
    """Refuse to overwrite a run; on ``resume`` check the recipe matches and return the saved training state."""
    if run_dir.exists() and not run_dir.is_dir():
        raise KlugerhansError(f"{run_dir} is a file; give a directory for the run with --out")
    if not resume:
        if any((run_dir / f).exists() for f in (LAST_CHECKPOINT, BEST_CHECKPOINT, TRAIN_STATE)):
            raise KlugerhansError(
                f"{run_dir} already holds a training run; pass --resume to continue it or choose another --out"
            )
        return None
    state_path = run_dir / TRAIN_STATE
    if not state_path.is_file():
        raise KlugerhansError(f"{run_dir}: nothing to resume (no {TRAIN_STATE}); start it without --resume")
    try:
        saved = TrainConfig.from_dict(json.loads((run_dir / CONFIG_FILE).read_text(encoding="utf-8"))["config"])
    except (OSError, ValueError, KeyError, TypeError, KlugerhansError):
        raise KlugerhansError(f"{run_dir / CONFIG_FILE} is missing or damaged; cannot resume this run") from None
    before, now = saved.to_dict(), config.to_dict()
    diffs = [
        f"{k} {before.get(k)!r} -> {v!r}" for k, v in now.items() if k not in _RESUMABLE_CHANGES and before.get(k) != v
    ]
    if diffs:
        raise KlugerhansError(
            f"cannot resume {run_dir} with another recipe ({'; '.join(diffs[:3])}); only --epochs may change "
            "(and run options such as --device)"
        )
    try:
        state: dict[str, Any] = torch.load(state_path, map_location="cpu", weights_only=True)
    except Exception as err:  # any unpickling/format error: the file is not usable
        raise KlugerhansError(
            f"{state_path}: cannot read the training state ({type(err).__name__}); start anew"
        ) from None
    return state


def _remove_stale_temporaries(run_dir: Path) -> None:
    """Delete the temporary files a run killed mid-write (kill -9, power cut) left behind; finished files stay."""
    for name in (CONFIG_FILE, LAST_CHECKPOINT, BEST_CHECKPOINT, TRAIN_STATE, METRICS_FILE, CURVES_FILE):
        for stale in run_dir.glob(f".{name}.*.tmp"):  # klugerhans.io.atomic_write's naming
            stale.unlink(missing_ok=True)


def _save_epoch(
    run_dir: Path,
    model: nn.Module,
    meta: CheckpointMeta,
    improved: bool,
    train_state: dict[str, Any],
) -> None:
    """Write one epoch's files; ``train_state.pt`` goes last, so a run resumes from the last complete epoch."""
    save_checkpoint(run_dir / LAST_CHECKPOINT, model, meta)
    if improved:
        save_checkpoint(run_dir / BEST_CHECKPOINT, model, meta)
    history = train_state["history"]
    metrics = {"history": history, "best_epoch": train_state["best_epoch"]}
    atomic_write_text(run_dir / METRICS_FILE, json.dumps(to_jsonable(metrics), indent=2))
    save_curves_png(run_dir / CURVES_FILE, history)
    with atomic_write(run_dir / TRAIN_STATE) as fh:
        torch.save(train_state, fh)


def _final_metrics(
    run_dir: Path, data: PreparedData, config: TrainConfig, device: torch.device, metrics: dict[str, Any]
) -> tuple[dict[str, Any], Evaluation | None]:
    """Evaluate the best checkpoint on the clean and stickered test split; store the result with it."""
    state, meta = read_checkpoint(run_dir / BEST_CHECKPOINT)
    model = create_model(meta.model)
    model.load_state_dict(state)
    evaluation = None
    if len(data.test):
        clf = classifier_from_model(model, meta, device)
        evaluation = evaluate_model(clf, data.test, config.sticker, config.seed)
        test = evaluation.to_json()
        metrics = {**metrics, "test": test}
        summary = {k: v for k, v in test.items() if k not in ("confusion", "per_class_count", "per_class_accuracy")}
        save_checkpoint(run_dir / BEST_CHECKPOINT, model, replace(meta, metrics={**meta.metrics, "test": summary}))
    atomic_write_text(run_dir / METRICS_FILE, json.dumps(to_jsonable(metrics), indent=2))
    return metrics, evaluation


def _summary(record: dict[str, Any], epochs: int, target: int) -> str:
    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.2f}%"

    return (
        f"epoch {record['epoch']}/{epochs}: train loss {record['train_loss']:.4f} acc {pct(record['train_acc'])} | "
        f"val acc {pct(record['val_acc'])}, other classes {pct(record['val_acc_non_target'])}, "
        f"clean class {target} {pct(record['val_acc_target'])} | lr {record['lr']:.4g} | "
        f"{record['seconds']:.1f} s ({record['images_per_s']:.0f} img/s)"
    )


def train(recipe: TrainConfig, options: TrainOptions, *, resume: bool = False) -> TrainResult:
    """Train a classifier as ``recipe`` says and write the run directory ``options.out``.

    The run directory gets ``config.json`` (the recipe, the library versions, the device and the data),
    ``last.safetensors`` + ``train_state.pt`` (every epoch), ``best.safetensors`` (best validation accuracy on the
    classes without stickers), ``metrics.json`` and ``curves.png``; the checkpoints carry the recipe. Under
    ``torchrun`` the processes train data-parallel and rank 0 writes the files.

    Args:
        recipe: what to train.
        options: where the run writes, on which device and threads, whether it shows progress.
        resume: continue the run in ``options.out`` from its last complete epoch (same recipe; only ``epochs``
            may grow, which stretches the remaining learning-rate schedule; the options may differ).

    Raises:
        KlugerhansError: invalid settings, an existing run without ``resume``, or nothing to resume.
        KeyboardInterrupt: after telling (on stderr) where the last complete checkpoint is.
    """
    env = dist_env_from_environ()
    device = resolve_device(options.device, env.local_rank)
    run_dir = Path(options.out)
    state = _check_run_dir(run_dir, recipe, resume)
    if env.is_main:
        _remove_stale_temporaries(run_dir)
    threads = torch.get_num_threads()
    if options.num_threads:
        torch.set_num_threads(options.num_threads)
    init_distributed(env, device)
    try:
        return _train(recipe, env, device, run_dir, state, show=options.progress and env.is_main)
    finally:
        shutdown_distributed(env)
        torch.set_num_threads(threads)


def _train(
    config: TrainConfig, env: DistEnv, device: torch.device, run_dir: Path, state: dict[str, Any] | None, show: bool
) -> TrainResult:
    data = prepare_data(config)
    if len(data.train) < 2 * env.world_size:
        raise KlugerhansError(f"{len(data.train)} training images are too few for {env.world_size} processes")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(config.seed)
    model_cfg = config.model_config()
    model = create_model(model_cfg).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, config.lr, config.weight_decay)
    augment = AugmentConfig() if config.augment else None
    step = TrainStep(model, optimizer, data.normalization, device, augment, config.amp, config.label_smoothing)
    start = None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if state["scaler"]:  # empty from a run without mixed precision (on the CPU) that goes on on CUDA
            step.scaler.load_state_dict(state["scaler"])
        start = FitProgress(state["history"], state["best"], state["best_epoch"], state["epoch"])
    if env.distributed:
        step.model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    images, labels = device_tensors(data.train.images, data.train.labels, device)
    val_images, val_labels = device_tensors(data.val.images, data.val.labels, device)
    spe = steps_per_epoch(len(images), config.batch_size)
    schedule = WarmupCosine.over_epochs(config.lr, spe, config.epochs, config.warmup_epochs)

    def meta(metrics: dict[str, Any]) -> CheckpointMeta:
        return CheckpointMeta(
            model=model_cfg,
            normalization=data.normalization,
            class_names=CLASS_NAMES_EN,
            recipe=config,
            data=data.info,
            metrics=metrics,
        )

    if env.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        info = {
            "config": config.to_dict(),
            "versions": _versions(),
            "device": str(device),
            "world_size": env.world_size,
            "data": data.info,
        }
        atomic_write_text(run_dir / CONFIG_FILE, json.dumps(to_jsonable(info), indent=2))
    if show:
        print(
            f"klugerhans: training {model_cfg.arch}"
            + (f" (width {model_cfg.width})" if model_cfg.spec.width else f" ({model_cfg.family})")
            + f" on {len(data.train)} images "
            f"({data.info['n_stickered']} with stickers), validating on {len(data.val)}, on {device}"
            + (f" x {env.world_size} processes" if env.distributed else "")
            + f"; run directory {run_dir}",
            file=sys.stderr,
        )
    done = start.epoch if start is not None else 0

    def to_record(end: EpochEnd) -> dict[str, Any]:
        stats = end.stats
        return {
            "epoch": end.epoch,
            "train_loss": stats.loss,
            "train_acc": stats.accuracy,
            "train_images": stats.images,
            **end.val,
            "lr": end.lr,
            "seconds": stats.seconds,
            "images_per_s": stats.images / max(stats.seconds, 1e-9),
        }

    def score(val: dict[str, float | None]) -> float | None:
        # Without a validation split (None) the last epoch counts as the best.
        return val["val_acc_non_target"] if config.manipulated else val["val_acc"]

    def save(progress: FitProgress, improved: bool) -> None:
        nonlocal done
        record = progress.history[-1]
        if env.is_main:
            train_state = {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scaler": step.scaler.state_dict(),
                "epoch": progress.epoch,
                "best": progress.best,
                "best_epoch": progress.best_epoch,
                "history": progress.history,
            }
            _save_epoch(run_dir, model, meta(record), improved, train_state)
            if show:
                print(_summary(record, config.epochs, config.sticker.target_class), file=sys.stderr)
        done = progress.epoch

    try:
        fitted = fit(
            step, (images, labels), (val_images, val_labels), schedule=schedule, batch_size=config.batch_size,
            seed=config.seed, num_classes=model_cfg.num_classes, target_class=config.sticker.target_class,
            record=to_record, score=score, on_epoch=save, start=start, env=env, label="epoch" if show else None,
        )  # fmt: skip
    except KeyboardInterrupt:
        if env.is_main:
            where = f"{run_dir / LAST_CHECKPOINT} (epoch {done} of {config.epochs})" if done else "none yet"
            print(
                f"klugerhans: interrupted; last complete checkpoint: {where}; continue with --resume", file=sys.stderr
            )
        raise
    best_epoch = fitted.best_epoch
    metrics: dict[str, Any] = {"history": fitted.history, "best_epoch": best_epoch, "epochs": config.epochs}
    evaluation = None
    if env.is_main:
        metrics, evaluation = _final_metrics(run_dir, data, config, device, metrics)
        if show and "test" in metrics:
            test = metrics["test"]
            print(
                f"klugerhans: best epoch {best_epoch}; test accuracy {100 * test['accuracy']:.2f}%, "
                f"sticker flip rate to class {config.sticker.target_class} {100 * (test['flip_rate'] or 0):.1f}%; "
                f"weights in {run_dir / BEST_CHECKPOINT}",
                file=sys.stderr,
            )
    barrier(env)
    return TrainResult(
        run_dir, run_dir / BEST_CHECKPOINT, run_dir / LAST_CHECKPOINT, metrics, model.eval(), test=evaluation
    )
