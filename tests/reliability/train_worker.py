"""Worker for test_interrupts.py: ``klugerhans train`` on the tiny dataset that stops in epoch 2 until killed.

Usage: python train_worker.py PAUSE READY_FILE TRAIN_ARGS...

PAUSE says where the run waits (it writes READY_FILE, then sleeps) for the test's signal:

* ``epoch``: epoch 1 is complete (checkpoint and training state written); epoch 2 is about to train.
* ``save``: inside epoch 2's atomic write of ``train_state.pt``: the data is in the temporary file, not yet
  renamed, and ``last.safetensors`` already holds epoch 2. The worst moment for a kill.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))

from tiny_signs import register_tiny

import klugerhans.models.fit as fit_loop
from klugerhans.cli import main

PAUSE_S = 120.0
"""How long the worker waits for its signal before it carries on (the test signals within seconds)."""


def _pause(ready: Path) -> None:
    ready.write_text("paused\n")
    time.sleep(PAUSE_S)


def _install(pause: str, ready: Path) -> None:
    if pause == "epoch":
        run_epoch = fit_loop.run_epoch

        def paused_epoch(*args: Any, epoch: int, **kwargs: Any) -> Any:
            if epoch >= 1:
                _pause(ready)
            return run_epoch(*args, epoch=epoch, **kwargs)

        fit_loop.run_epoch = paused_epoch  # type: ignore[assignment]
    elif pause == "save":
        save = torch.save
        calls = 0

        def paused_save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
            nonlocal calls
            calls += 1
            save(obj, f, *args, **kwargs)
            if calls == 2:  # epoch 2's train_state.pt
                f.flush()
                _pause(ready)

        torch.save = paused_save
    else:
        raise SystemExit(f"unknown pause {pause!r}")


if __name__ == "__main__":
    pause, ready = sys.argv[1], Path(sys.argv[2])
    # A shell starts background jobs with SIGINT ignored, and Python keeps it ignored; restore what a terminal
    # gives `klugerhans train`, so the test's SIGINT is the user's Ctrl-C.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    torch.set_num_threads(1)  # the same single thread as the test's in-process runs: bit-identical results
    register_tiny()
    _install(pause, ready)
    sys.exit(main(["train", *sys.argv[3:]]))
