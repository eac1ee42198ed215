"""Worker for test_interrupts.py: ``klugerhans data`` decoding a GTSRB copy in worker processes, slowly.

Usage: python decode_worker.py READY_FILE DATA_DIR

Every decoding chunk runs in a forked worker process (even for a tiny copy) and first writes READY_FILE, then
waits a few seconds, so the test's Ctrl-C arrives while the workers are busy.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import klugerhans.data.gtsrb.loader as gtsrb
from klugerhans.cli import main

CHUNK_S = 3.0
"""Seconds each decoding chunk takes."""


def _slow_chunk(*args: Any) -> Any:
    Path(sys.argv[1]).touch()
    time.sleep(CHUNK_S)
    return _decode_chunk(*args)


_decode_chunk = gtsrb._decode_chunk

if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal (see train_worker.py)
    gtsrb._PARALLEL_MIN = 1
    gtsrb._decode_chunk = _slow_chunk  # forked workers look the function up here, so they run this one
    os.sched_getaffinity = lambda pid: {0, 1}  # two workers even on a one-core machine
    sys.exit(main(["data", "--data", "gtsrb", "--data-dir", sys.argv[2]]))
