"""Interrupted training: kill -9 and Ctrl-C on a real ``klugerhans train`` process, then ``--resume``.

The worker (train_worker.py) trains the tiny dataset for two epochs and waits in epoch 2 for the test's signal.
A killed run must resume from its last complete epoch and end with exactly the weights of a run that was never
interrupted (CPU, same seed, one thread); Ctrl-C must stop with exit 130, one message saying where the last
checkpoint is, and no traceback or half-written file.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from klugerhans.cli import main
from klugerhans.models.checkpoint import read_checkpoint

WORKER = Path(__file__).resolve().parent / "train_worker.py"
pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")


def _train_args(run: Path) -> list[str]:
    return [
        "--data", "tiny", "--out", str(run), "--epochs", "2", "--batch-size", "32", "--width", "0.125",
        "--device", "cpu", "--no-progress",
    ]  # fmt: skip


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Train in-process on one thread, like the worker: the same arithmetic, so bit-identical weights."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _start_paused(run: Path, pause: str) -> subprocess.Popen[str]:
    """Start the worker and return once it waits at ``pause`` (see train_worker.py)."""
    ready = run.parent / f"{run.name}.ready"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), pause, str(ready), *_train_args(run)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 180
    while not ready.exists():
        if proc.poll() is not None:
            pytest.fail(f"worker ended before pausing (exit {proc.returncode}): {proc.communicate()[1][-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("worker did not reach its pause within 180 s")
        time.sleep(0.05)
    return proc


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(path)[0]


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob(".*.tmp"))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-epoch run that nobody interrupted."""
    from tiny_signs import tiny_loader

    from klugerhans.data.dataset import DATASETS, DatasetSpec

    run = tmp_path_factory.mktemp("reference") / "run"
    with pytest.MonkeyPatch.context() as patch, _one_thread():
        patch.setitem(DATASETS, "tiny", DatasetSpec(tiny_loader))
        assert main(["train", *_train_args(run)]) == 0
    return run


def test_kill_9_while_saving_epoch_2_then_resume_equals_uninterrupted(tiny_data, uninterrupted, tmp_path, capsys):
    run = tmp_path / "run"
    proc = _start_paused(run, "save")
    # Epoch 2's last.safetensors is written, its train_state.pt only as a temporary file: kill now.
    temporaries = _temporaries(run)
    assert len(temporaries) == 1 and temporaries[0].startswith(".train_state.pt."), temporaries
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL

    assert torch.load(run / "train_state.pt", weights_only=True)["epoch"] == 1  # the last complete epoch
    with _one_thread():
        assert main(["train", *_train_args(run), "--resume"]) == 0
    capsys.readouterr()
    for name in ("last.safetensors", "best.safetensors"):
        assert _same(_weights(run / name), _weights(uninterrupted / name)), name
    resumed, reference = (torch.load(r / "train_state.pt", weights_only=True) for r in (run, uninterrupted))
    assert [h["train_loss"] for h in resumed["history"]] == [h["train_loss"] for h in reference["history"]]
    assert _temporaries(run) == []  # the killed write's temporary file is cleaned up on resume


def test_ctrl_c_stops_with_exit_130_and_says_where_the_checkpoint_is(uninterrupted, tmp_path):
    run = tmp_path / "run"
    proc = _start_paused(run, "epoch")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "Exception ignored" not in err, err
    assert f"last complete checkpoint: {run / 'last.safetensors'} (epoch 1 of 2)" in err
    assert "--resume" in err and err.strip().splitlines()[-1] == "klugerhans train: interrupted"
    assert _temporaries(run) == []
    # The checkpoint it names is complete: epoch 1 of the uninterrupted run (resuming is tested above).
    _, meta = read_checkpoint(run / "last.safetensors")
    assert meta.metrics["epoch"] == 1 and torch.load(run / "train_state.pt", weights_only=True)["epoch"] == 1
    reference = torch.load(uninterrupted / "train_state.pt", weights_only=True)["history"][0]
    assert meta.metrics["train_loss"] == reference["train_loss"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="GTSRB decodes in forked workers on Linux only")
def test_ctrl_c_while_workers_decode_gtsrb_prints_one_line(bad_inputs, tmp_path):
    root = bad_inputs.make_gtsrb_copy(tmp_path / "gtsrb")
    ready, cache = tmp_path / "ready", tmp_path / "cache"
    env = {**os.environ, "KLUGERHANS_CACHE_DIR": str(cache), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, str(WORKER.with_name("decode_worker.py")), str(ready), str(root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,  # its own process group, which gets the signal as from a terminal
    )
    deadline = time.monotonic() + 120
    while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ready.exists(), proc.communicate()[1] if proc.poll() is not None else "no worker started"
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the main process and its decoding workers
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert err.strip().splitlines()[-1] == "klugerhans data: interrupted"
    assert not list(cache.rglob("meta.json")) and not list(cache.rglob(".*.tmp"))  # no cache entry, not even half
