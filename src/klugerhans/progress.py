"""Progress lines on stderr: one format for every command (``[audit] ...``, ``[bench] ...``)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

__all__ = ["progress_bar", "say", "timed"]

T = TypeVar("T")


def say(command: str, message: str, progress: bool = True) -> None:
    """Print ``[command] message`` to stderr when ``progress`` is on; stdout stays free for results and JSON."""
    if progress:
        print(f"[{command}] {message}", file=sys.stderr, flush=True)


@contextmanager
def timed(timings: dict[str, float], name: str) -> Iterator[None]:
    """Record the seconds the ``with`` block takes (to the millisecond) as ``timings[name]``, even if it raises."""
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = round(time.perf_counter() - start, 3)


def progress_bar(items: list[T], desc: str, progress: bool = True) -> Iterable[T]:
    """``items`` behind a tqdm bar on stderr while ``progress`` is on, else as they are."""
    if not progress:
        return items
    from tqdm.auto import tqdm  # only when a bar is drawn: importing this module stays cheap

    return tqdm(items, desc=desc, leave=False, file=sys.stderr)
