"""Progress lines on stderr: one format for every command (``[audit] ...``, ``[bench] ...``)."""

from __future__ import annotations

import sys

__all__ = ["say"]


def say(command: str, message: str, progress: bool = True) -> None:
    """Print ``[command] message`` to stderr when ``progress`` is on; stdout stays free for results and JSON."""
    if progress:
        print(f"[{command}] {message}", file=sys.stderr, flush=True)
