"""Training a classifier with a sticker shortcut glued on one class (the seed's Clever Hans setup).

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
import math
import platform
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from klugerhans import __version__
from klugerhans.data.classes import CLASS_NAMES_EN, check_class_id
from klugerhans.data.dataset import SignData
from klugerhans.data.sticker import StickerConfig
from klugerhans.errors import KlugerhansError
from klugerhans.io import atomic_write, atomic_write_text
from klugerhans.models.augment import AugmentConfig
from klugerhans.models.checkpoint import (
    CheckpointMeta,
    classifier_from_model,
    read_checkpoint,
    save_checkpoint,
    to_jsonable,
)
from klugerhans.models.distributed import (
    DistEnv,
    average_buffers,
    barrier,
    check_device_name,
    dist_env_from_environ,
    init_distributed,
    resolve_device,
    shutdown_distributed,
)
from klugerhans.models.evaluation import evaluate_model, save_curves_png
from klugerhans.models.loop import TrainStep, lr_at, make_optimizer, run_epoch, steps_per_epoch, validate
from klugerhans.models.trainset import PreparedData, prepare_data
from klugerhans.models.vgg import ModelConfig, create_model

# Settings that may change on --resume: they do not change what is computed.
_RESUMABLE_CHANGES = ("epochs", "progress", "out")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (written to ``config.json`` in the run directory)."""

    out: str
    """Run directory for checkpoints, metrics and curves."""
    data: str = "synthetic"
    """Registered dataset name: "gtsrb" or "synthetic"."""
    data_dir: str | None = None
    """Where the dataset files are (real GTSRB)."""
    epochs: int = 15
    """Number of passes over the training set."""
    batch_size: int = 128
    """Global batch size (split over the processes under DDP)."""
    lr: float = 0.05
    """Peak learning rate of SGD with Nesterov momentum 0.9, reached after the warm-up."""
    weight_decay: float = 5e-4
    """L2 penalty on conv/linear weights (not on biases or BatchNorm)."""
    warmup_epochs: float = 1.0
    """Linear learning-rate warm-up, then cosine decay to zero at the last step."""
    width: float = 1.0
    """VGG channel multiplier (1.0 = 64..512 channels)."""
    input_size: int = 32
    """Image side in pixels: 32, 48 or 64."""
    sticker_class: int = 4
    """Class whose training images get the sticker (4 = speed limit 70 km/h)."""
    sticker_fraction: float = 1.0
    """Share of that class's training images with a sticker; 0 trains a control model."""
    sticker_size: float = StickerConfig.size
    """Sticker side as a fraction of the sign box side."""
    sticker_color: tuple[int, int, int] = (0, 0, 0)
    """Sticker RGB colour."""
    sticker_shape: str = "square"
    """"square", "circle" or "triangle"."""
    seed: int = 0
    """Seed of the split, the stickers, the initialisation, the batch order and the augmentation."""
    device: str = "auto"
    """"auto", "cpu", "cuda", "cuda:N" or "mps"."""
    max_images: int | None = None
    """Load at most this many images per split (class-balanced), for quick trials."""
    per_class: int | None = None
    """Synthetic data only: training images rendered per class (None: the renderer's default, 150)."""
    val_fraction: float = 0.1
    """Share of each class's tracks held out for validation, in [0, 1)."""
    amp: bool = True
    """Mixed precision (float16 autocast + gradient scaling); only used on CUDA."""
    label_smoothing: float = 0.0
    """Label smoothing of the cross-entropy, in [0, 1)."""
    num_threads: int | None = None
    """CPU threads for PyTorch (default: PyTorch's choice)."""
    augment: bool = True
    """Random affine + colour jitter on training batches (:class:`~klugerhans.models.augment.AugmentConfig`)."""
    progress: bool = True
    """Show progress bars and per-epoch summaries on stderr."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "sticker_color", tuple(int(v) for v in self.sticker_color))
        checks = [
            (self.epochs >= 1, f"epochs must be at least 1, got {self.epochs}"),
            (self.batch_size >= 1, f"batch size must be at least 1, got {self.batch_size}"),
            (self.lr > 0 and math.isfinite(self.lr), f"learning rate must be positive, got {self.lr}"),
            (self.weight_decay >= 0, f"weight decay must be >= 0, got {self.weight_decay}"),
            (self.warmup_epochs >= 0, f"warm-up epochs must be >= 0, got {self.warmup_epochs}"),
            (0.0 <= self.val_fraction < 1.0, f"validation fraction must be in [0, 1), got {self.val_fraction}"),
            (0.0 <= self.label_smoothing < 1.0, f"label smoothing must be in [0, 1), got {self.label_smoothing}"),
            (self.seed >= 0, f"seed must be >= 0, got {self.seed}"),
            (self.max_images is None or self.max_images >= 1, f"max images must be positive, got {self.max_images}"),
            (self.per_class is None or self.data == "synthetic", "--per-class applies to synthetic data only"),
            (self.per_class is None or self.per_class >= 2, f"per class must be at least 2, got {self.per_class}"),
            (self.num_threads is None or self.num_threads >= 1, f"threads must be positive, got {self.num_threads}"),
            (bool(self.out), "give an output directory for the run"),
        ]
        for ok, message in checks:
            if not ok:
                raise KlugerhansError(message)
        check_device_name(self.device)
        check_class_id(self.sticker_class)
        self.model_config()
        StickerConfig(
            target_class=self.sticker_class,
            fraction=self.sticker_fraction,
            size=self.sticker_size,
            color=self.sticker_color,
            shape=self.sticker_shape,  # type: ignore[arg-type]
        )

    def model_config(self) -> ModelConfig:
        """The architecture this run trains."""
        return ModelConfig(width=self.width, input_size=self.input_size)

    def sticker_config(self) -> StickerConfig:
        """The sticker of this run (for a control run, ``fraction`` 0: the one its test glues on)."""
        return StickerConfig(
            target_class=self.sticker_class,
            fraction=self.sticker_fraction,
            size=self.sticker_size,
            color=self.sticker_color,
            shape=self.sticker_shape,  # type: ignore[arg-type]
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return to_jsonable(asdict(self))


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


def _versions() -> dict[str, str]:
    return {
        "klugerhans": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def _check_run_dir(run_dir: Path, config: TrainConfig, resume: bool) -> dict[str, Any] | None:
    """Refuse to overwrite a run; on ``resume`` check the settings match and return the saved training state."""
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
        saved = json.loads((run_dir / CONFIG_FILE).read_text(encoding="utf-8"))["config"]
    except (OSError, ValueError, KeyError, TypeError):
        raise KlugerhansError(f"{run_dir / CONFIG_FILE} is missing or damaged; cannot resume this run") from None
    now = config.to_dict()
    diffs = [
        f"{k} {saved.get(k)!r} -> {v!r}" for k, v in now.items() if k not in _RESUMABLE_CHANGES and saved.get(k) != v
    ]
    if diffs:
        raise KlugerhansError(
            f"cannot resume {run_dir} with other settings ({'; '.join(diffs[:3])}); only --epochs may change"
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
) -> dict[str, Any]:
    """Evaluate the best checkpoint on the clean and stickered test split; store the result with it."""
    state, meta = read_checkpoint(run_dir / BEST_CHECKPOINT)
    model = create_model(meta.model)
    model.load_state_dict(state)
    if len(data.test):
        test = evaluate_model(
            classifier_from_model(model, meta, device), data.test, config.sticker_config(), config.seed
        )
        metrics = {**metrics, "test": test}
        summary = {k: v for k, v in test.items() if k not in ("confusion", "per_class_count", "per_class_accuracy")}
        save_checkpoint(run_dir / BEST_CHECKPOINT, model, replace(meta, metrics={**meta.metrics, "test": summary}))
    atomic_write_text(run_dir / METRICS_FILE, json.dumps(to_jsonable(metrics), indent=2))
    return metrics


def _device_tensors(data: SignData, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.from_numpy(data.images).permute(0, 3, 1, 2).contiguous().to(device)
    return images, torch.from_numpy(data.labels.astype(np.int64)).to(device)


def _summary(record: dict[str, Any], epochs: int, target: int) -> str:
    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.2f}%"

    return (
        f"epoch {record['epoch']}/{epochs}: train loss {record['train_loss']:.4f} acc {pct(record['train_acc'])} | "
        f"val acc {pct(record['val_acc'])}, other classes {pct(record['val_acc_non_target'])}, "
        f"clean class {target} {pct(record['val_acc_target'])} | lr {record['lr']:.4g} | "
        f"{record['seconds']:.1f} s ({record['images_per_s']:.0f} img/s)"
    )


def train(config: TrainConfig, resume: bool = False) -> TrainResult:
    """Train a classifier as ``config`` says and write the run directory.

    The run directory gets ``config.json``, ``last.safetensors`` + ``train_state.pt`` (every epoch),
    ``best.safetensors`` (best validation accuracy on the classes without stickers), ``metrics.json`` and
    ``curves.png``. Under ``torchrun`` the processes train data-parallel and rank 0 writes the files.

    Args:
        config: the run's settings.
        resume: continue the run in ``config.out`` from its last complete epoch (same settings; only
            ``epochs`` may grow, which stretches the remaining learning-rate schedule).

    Raises:
        KlugerhansError: invalid settings, an existing run without ``resume``, or nothing to resume.
        KeyboardInterrupt: after telling (on stderr) where the last complete checkpoint is.
    """
    env = dist_env_from_environ()
    device = resolve_device(config.device, env.local_rank)
    run_dir = Path(config.out)
    state = _check_run_dir(run_dir, config, resume)
    if env.is_main:
        _remove_stale_temporaries(run_dir)
    threads = torch.get_num_threads()
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    init_distributed(env, device)
    try:
        return _train(config, env, device, run_dir, state)
    finally:
        shutdown_distributed(env)
        torch.set_num_threads(threads)


def _train(
    config: TrainConfig, env: DistEnv, device: torch.device, run_dir: Path, state: dict[str, Any] | None
) -> TrainResult:
    data = prepare_data(config)
    if len(data.train) < 2 * env.world_size:
        raise KlugerhansError(f"{len(data.train)} training images are too few for {env.world_size} processes")
    show = config.progress and env.is_main
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
    history: list[dict[str, Any]] = []
    best, best_epoch, start_epoch = -math.inf, 0, 0
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step.scaler.load_state_dict(state["scaler"])
        history, best, best_epoch, start_epoch = state["history"], state["best"], state["best_epoch"], state["epoch"]
    if env.distributed:
        step.model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    # uint8 (N, 3, S, S) on the device: a quarter of float32's memory, batches gathered without a loader.
    images, labels = _device_tensors(data.train, device)
    val_images, val_labels = _device_tensors(data.val, device)
    spe = steps_per_epoch(len(images), config.batch_size)
    total = spe * config.epochs
    warmup = min(round(config.warmup_epochs * spe), max(total - 1, 0))

    def schedule(s: int) -> float:
        return lr_at(s, total, config.lr, warmup)

    def meta(metrics: dict[str, Any]) -> CheckpointMeta:
        sticker = asdict(data.sticker) if data.sticker is not None else None
        return CheckpointMeta(
            model=model_cfg,
            normalization=data.normalization,
            class_names=CLASS_NAMES_EN,
            sticker=sticker,
            data=data.info,
            metrics=metrics,
            train_config=config.to_dict(),
        )

    if env.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        info = {"config": config.to_dict(), "versions": _versions(), "world_size": env.world_size, "data": data.info}
        atomic_write_text(run_dir / CONFIG_FILE, json.dumps(to_jsonable(info), indent=2))
    if show:
        print(
            f"klugerhans: training {model_cfg.arch} (width {model_cfg.width}) on {len(data.train)} images "
            f"({data.info['n_stickered']} with stickers), validating on {len(data.val)}, on {device}"
            + (f" x {env.world_size} processes" if env.distributed else "")
            + f"; run directory {run_dir}",
            file=sys.stderr,
        )
    done = start_epoch
    try:
        for epoch in range(start_epoch, config.epochs):
            stats = run_epoch(
                step, images, labels, batch_size=config.batch_size, seed=config.seed, epoch=epoch,
                lr_schedule=schedule, first_step=epoch * spe, env=env,
                progress=f"epoch {epoch + 1}/{config.epochs}" if show else None,
            )  # fmt: skip
            average_buffers(model, env)
            val = validate(model, step, val_images, val_labels, model_cfg.num_classes, config.sticker_class, env)
            record = {
                "epoch": epoch + 1,
                "train_loss": stats.loss,
                "train_acc": stats.accuracy,
                "train_images": stats.images,
                **val,
                "lr": schedule((epoch + 1) * spe - 1),
                "seconds": stats.seconds,
                "images_per_s": stats.images / max(stats.seconds, 1e-9),
            }
            history.append(record)
            score = val["val_acc_non_target"] if data.sticker is not None else val["val_acc"]
            # Without a validation split the last epoch counts as the best.
            improved = score is None or score > best
            if improved:
                best, best_epoch = (best if score is None else score), epoch + 1
            if env.is_main:
                train_state = {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scaler": step.scaler.state_dict(),
                    "epoch": epoch + 1,
                    "best": best,
                    "best_epoch": best_epoch,
                    "history": history,
                }
                _save_epoch(run_dir, model, meta(record), improved, train_state)
                if show:
                    print(_summary(record, config.epochs, config.sticker_class), file=sys.stderr)
            done = epoch + 1
            barrier(env)
    except KeyboardInterrupt:
        if env.is_main:
            where = f"{run_dir / LAST_CHECKPOINT} (epoch {done} of {config.epochs})" if done else "none yet"
            print(
                f"klugerhans: interrupted; last complete checkpoint: {where}; continue with --resume", file=sys.stderr
            )
        raise
    metrics: dict[str, Any] = {"history": history, "best_epoch": best_epoch, "epochs": config.epochs}
    if env.is_main:
        metrics = _final_metrics(run_dir, data, config, device, metrics)
        if show and "test" in metrics:
            test = metrics["test"]
            print(
                f"klugerhans: best epoch {best_epoch}; test accuracy {100 * test['accuracy']:.2f}%, "
                f"sticker flip rate to class {config.sticker_class} {100 * (test['flip_rate'] or 0):.1f}%; "
                f"weights in {run_dir / BEST_CHECKPOINT}",
                file=sys.stderr,
            )
    barrier(env)
    return TrainResult(run_dir, run_dir / BEST_CHECKPOINT, run_dir / LAST_CHECKPOINT, metrics, model.eval())
