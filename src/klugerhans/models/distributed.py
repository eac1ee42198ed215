"""Where training runs: device choice and data-parallel training over several processes (DDP).

:func:`klugerhans.models.training.train` is the same function in one process and under
``torchrun --nproc-per-node N`` (which sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``). Every rank draws the
same permutation of the training set from the seed and takes a disjoint shard of each global batch, so N
processes see each image once per epoch and together take the same number of optimizer steps as one process.
Only rank 0 writes files and shows progress.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from klugerhans.errors import KlugerhansError

DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda", "mps")
"""Device names a user may give; ``cuda:N`` is accepted too."""


def check_device_name(name: str) -> str:
    """Return ``name`` if it is a device we know, else raise a one-line error."""
    base, _, index = name.partition(":")
    if base not in DEVICES or (index and (base != "cuda" or not index.isdigit())):
        raise KlugerhansError(f"unknown device {name!r}: choose auto, cpu, cuda, cuda:N or mps")
    return name


def resolve_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """Turn a device name into a :class:`torch.device`, with a one-line error if it is not available.

    ``auto`` picks CUDA (the ``local_rank``-th GPU under DDP), then Apple's MPS, then the CPU.
    """
    check_device_name(name)
    cuda_ok = torch.cuda.is_available()
    mps_ok = bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    if name == "auto":
        name = "cuda" if cuda_ok else "mps" if mps_ok else "cpu"
    if name.startswith("cuda"):
        if not cuda_ok:
            raise KlugerhansError(f"device {name!r} requested but this PyTorch sees no CUDA GPU; use --device cpu")
        index = int(name.partition(":")[2] or local_rank)
        if index >= torch.cuda.device_count():
            raise KlugerhansError(f"no CUDA device {index}: this machine has {torch.cuda.device_count()}")
        return torch.device("cuda", index)
    if name == "mps" and not mps_ok:
        raise KlugerhansError("device 'mps' requested but Apple's MPS backend is not available; use --device cpu")
    return torch.device(name)


@dataclass(frozen=True)
class DistEnv:
    """This process's place in a (possibly single-process) training job."""

    rank: int = 0
    """Global rank, 0..world_size-1."""
    world_size: int = 1
    """Number of processes."""
    local_rank: int = 0
    """Rank on this machine; picks the GPU."""

    @property
    def is_main(self) -> bool:
        """True on the process that writes files and shows progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when several processes train together."""
        return self.world_size > 1


def dist_env_from_environ() -> DistEnv:
    """Read ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` as set by torchrun; a single process without them."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError as err:
        raise KlugerhansError(f"malformed torchrun environment ({err}); launch with torchrun") from None
    if world < 1 or not 0 <= rank < world:
        raise KlugerhansError(f"bad torchrun environment: RANK={rank}, WORLD_SIZE={world}")
    return DistEnv(rank=rank, world_size=world, local_rank=local)


def init_distributed(env: DistEnv, device: torch.device) -> None:
    """Join the process group (NCCL on CUDA, gloo otherwise) if ``env`` has several processes."""
    if not env.distributed or (dist.is_available() and dist.is_initialized()):
        return
    if not dist.is_available():
        raise KlugerhansError("this PyTorch build has no torch.distributed; train in one process")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")


def shutdown_distributed(env: DistEnv) -> None:
    """Leave the process group (safe to call when none was joined)."""
    if env.distributed and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(env: DistEnv) -> None:
    """Wait for all ranks (no-op in one process)."""
    if env.distributed:
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor, env: DistEnv) -> torch.Tensor:
    """Sum ``tensor`` over all ranks in place and return it (unchanged in one process)."""
    if env.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def average_buffers(model: nn.Module, env: DistEnv) -> None:
    """Average floating-point buffers (BatchNorm running statistics) over ranks.

    DDP averages gradients, so parameters stay equal everywhere, but each rank updates its BatchNorm
    running statistics from its own shard; averaging them at the end of an epoch makes every rank hold
    identical weights before validation and saving.
    """
    if not env.distributed:
        return
    for buf in model.buffers():
        if buf.is_floating_point():
            dist.all_reduce(buf, op=dist.ReduceOp.SUM)
            buf.div_(env.world_size)


def shard_batch(batch: torch.Tensor, env: DistEnv) -> torch.Tensor:
    """This rank's contiguous part of one global batch of indices (near-equal parts over the ranks)."""
    if not env.distributed:
        return batch
    return batch.tensor_split(env.world_size)[env.rank]


def shard_indices(n: int, env: DistEnv) -> np.ndarray:
    """Indices ``rank, rank + world, ...`` of ``n`` items (for evaluation, where order does not matter)."""
    return np.arange(env.rank, n, env.world_size)
