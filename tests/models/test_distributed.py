"""Data-parallel training: two CPU processes under torchrun end with identical weights."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from ddp_worker import state_hash

from klugerhans.models.checkpoint import read_checkpoint
from klugerhans.models.distributed import DistEnv, dist_env_from_environ, shard_batch, shard_indices

WORKER = Path(__file__).resolve().parent / "ddp_worker.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_shards_are_disjoint_and_cover_the_batch():
    batch = torch.arange(11)
    parts = [shard_batch(batch, DistEnv(rank=r, world_size=3)) for r in range(3)]
    assert torch.equal(torch.cat(parts), batch) and [len(p) for p in parts] == [4, 4, 3]
    covered = sorted(i for r in range(3) for i in shard_indices(10, DistEnv(r, 3)).tolist())
    assert covered == list(range(10))
    assert torch.equal(shard_batch(batch, DistEnv()), batch)


def test_env_from_torchrun_variables(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert dist_env_from_environ() == DistEnv(rank=2, world_size=4, local_rank=0)
    monkeypatch.setenv("RANK", "7")
    with pytest.raises(Exception, match="bad torchrun environment"):
        dist_env_from_environ()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed not available")
def test_two_processes_end_with_identical_weights(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--nnodes", "1",
        "--master-addr", "127.0.0.1", "--master-port", str(_free_port()), str(WORKER), str(tmp_path),
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    hashes = [(tmp_path / f"hash{r}.txt").read_text() for r in range(2)]
    assert hashes[0] == hashes[1]
    state, _ = read_checkpoint(tmp_path / "run" / "last.safetensors")
    assert state_hash(state) == hashes[0]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    # 75 training images, global batch 32: two steps of 16 images per rank, 64 images per epoch in all.
    assert [h["train_images"] for h in metrics["history"]] == [64, 64]
