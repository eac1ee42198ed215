"""The audit's shipped flag thresholds, set on the benchmark's clean models only (``klugerhans bench``).

A class is flagged when its hijack rate reaches the threshold and beats its control significantly
(:mod:`klugerhans.audit.ranking`). The threshold is not a guess: ``klugerhans bench --suite small`` trains clean
control models, audits each, and :func:`~klugerhans.bench.metrics.null_threshold` puts the threshold above their top
hijack rates at a stated false-positive rate (the conformal rank rule; never using a manipulated model).
``tools/ship_thresholds.py BENCH_DIR`` writes the result into ``thresholds.json`` next to this module, one entry per
placement: pasting where a patch was cut ("same", photos without object boxes) moves a class's own aligned parts
into place and so hijacks more on clean models than pasting anywhere on the sign ("random"), so each placement has
its own null distribution and threshold.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

from klugerhans.errors import KlugerhansError

__all__ = ["SHIPPED_FILE", "ShippedThreshold", "load_thresholds", "shipped_threshold", "thresholds_payload"]

SHIPPED_FILE = Path(__file__).with_name("thresholds.json")
"""Where the shipped thresholds live (package data)."""


@dataclass(frozen=True)
class ShippedThreshold:
    """A flag threshold for one placement and how it was set."""

    placement: str
    """The transplant placement it holds for: "random" or "same"."""
    value: float
    """Hijack rate at or above which a class is flagged (if also significant)."""
    fpr: float
    """False-positive rate it was set for, on clean models' top hijack rates."""
    n_clean: int
    """Clean control models it was set from."""
    clean_max: float
    """The largest top hijack rate among those controls."""
    suite: str
    """Benchmark suite of the controls."""
    detector: str
    """Name of the audit variant in that suite's ``bench.json``."""
    command: str
    """Command that measured it."""
    rationale: str
    """How the value follows from the controls, in one sentence."""

    def __post_init__(self) -> None:
        if self.placement not in ("random", "same"):
            raise KlugerhansError(f"a shipped threshold is for placement 'random' or 'same', not {self.placement!r}")
        if not (math.isfinite(self.value) and 0.0 < self.value <= 1.0):
            raise KlugerhansError(f"a shipped threshold must be a hijack rate in (0, 1], got {self.value}")
        if self.n_clean < 1:
            raise KlugerhansError("a shipped threshold needs at least one clean model")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (what ``audit.json`` reports as ``threshold_source``)."""
        return asdict(self)


def thresholds_payload(bench: dict[str, Any], detectors: dict[str, str], command: str) -> dict[str, Any]:
    """The ``thresholds.json`` content from a ``bench.json`` payload.

    Args:
        bench: ``bench.json`` of a finished suite (its ``thresholds`` and ``clean_max`` per detector).
        detectors: placement -> the detector of ``bench`` audited with that placement.
        command: the command that ran the suite, for the record.
    """
    out: dict[str, Any] = {}
    for placement, name in detectors.items():
        t = bench.get("thresholds", {}).get(name)
        if t is None:
            raise KlugerhansError(f"bench.json has no threshold for detector {name!r}; run the suite with it")
        shipped = ShippedThreshold(
            placement=placement, value=float(t["value"]), fpr=float(t["fpr"]), n_clean=int(t["n_clean"]),
            clean_max=float(t["clean_max"]), suite=str(bench["suite"]), detector=name, command=command,
            rationale=str(t["rationale"]),
        )  # fmt: skip
        out[placement] = shipped.to_dict()
    return out


@cache
def load_thresholds(path: str | None = None) -> dict[str, ShippedThreshold]:
    """Placement -> :class:`ShippedThreshold`, read from ``path`` (default :data:`SHIPPED_FILE`)."""
    file = Path(path) if path is not None else SHIPPED_FILE
    try:
        raw = json.loads(file.read_text())
        return {p: ShippedThreshold(**entry) for p, entry in raw.items()}
    except (OSError, ValueError, TypeError) as err:
        raise KlugerhansError(f"cannot read the shipped thresholds {file}: {err}; reinstall klugerhans") from None


def shipped_threshold(placement: str) -> ShippedThreshold:
    """The shipped threshold for a concrete placement ("random" or "same")."""
    table = load_thresholds()
    if placement not in table:
        raise KlugerhansError(f"no shipped threshold for placement {placement!r}; have {', '.join(sorted(table))}")
    return table[placement]
