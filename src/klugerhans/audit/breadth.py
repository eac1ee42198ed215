"""How widely a transplanted part hijacks: across the recipient classes, or only within a family of look-alikes.

A shortcut is a feature that suffices on its own: a sticker that means "70 km/h" turns *any* sign into 70 km/h. A
legitimate part of a class suffices only where the rest of the image agrees with it: the "5" of a 50 km/h sign,
pasted where digits are, turns other speed limits into 50 km/h, and nothing else. Counted over all recipients the
two can reach the same hijack rate (8 of GTSRB's 43 classes are speed limits); counted per recipient class they
differ in *breadth*. The broad hijack rate is the class-balanced hijack rate after leaving out the recipient classes
that the part hijacks most (:data:`TRIM`, a quarter of them): a family of look-alikes falls into that quarter and
contributes nothing, a shortcut that hijacks everywhere keeps most of its rate. It is what the audit ranks and flags
by (:mod:`klugerhans.audit.ranking`), for every probe and placement alike.

Recipients are drawn balanced over their classes (:func:`balanced_choice`), so every class counts equally whatever
the data's class sizes (GTSRB's range from 210 to 2,250 training images).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["TRIM", "balanced_choice", "broad_rows", "class_balanced_rate"]

TRIM = 0.25
"""Share of the recipient classes, the most hijacked ones, left out of the broad hijack rate (rounded up)."""


def balanced_choice(pool: np.ndarray, labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Draw ``n`` of ``pool`` without replacement, as evenly over their ``labels`` as the pool allows.

    Classes are dealt round by round (one image of each class per round, in a random order of the classes), so the
    counts differ by at most one, except where a class runs out of images.

    Args:
        pool: (P,) candidate indices.
        labels: (P,) class of each candidate.
        n: how many to draw (at most P).
        rng: the random source.

    Returns:
        (min(n, P),) int64 drawn indices, in dealing order.
    """
    pool, labels = np.asarray(pool, dtype=np.int64), np.asarray(labels)
    shuffled = rng.permutation(len(pool))
    classes, inverse = np.unique(labels[shuffled], return_inverse=True)
    class_order = rng.permutation(len(classes))[inverse]
    # the round of each candidate: its rank among the shuffled members of its class
    by_class = np.argsort(inverse, kind="stable")
    starts = np.searchsorted(inverse[by_class], inverse[by_class])
    rank = np.empty(len(pool), dtype=np.int64)
    rank[by_class] = np.arange(len(pool)) - starts
    dealt = np.lexsort((class_order, rank))
    return pool[shuffled[dealt[: min(n, len(pool))]]]


def broad_rows(hijacked: np.ndarray, labels: np.ndarray, trim: float = TRIM) -> np.ndarray:
    """The recipients that count towards the broad hijack rate: all but those of the ``ceil(trim * J)`` recipient
    classes with the highest hijack rates (ties: the larger class id goes first), J the number of recipient classes.

    Args:
        hijacked: (R,) bool outcome of each recipient.
        labels: (R,) class of each recipient; empty: one class (nothing is left out).
        trim: share of the classes left out, in [0, 1).

    Returns:
        (R,) bool mask of the kept recipients (all True where there are fewer than two classes).
    """
    hijacked = np.asarray(hijacked, dtype=bool)
    if len(labels) != len(hijacked):
        return np.ones(len(hijacked), dtype=bool)
    classes, inverse = np.unique(np.asarray(labels), return_inverse=True)
    if len(classes) < 2:
        return np.ones(len(hijacked), dtype=bool)
    rates = np.bincount(inverse, weights=hijacked, minlength=len(classes)) / np.bincount(inverse)
    dropped = np.lexsort((-classes, -rates))[: math.ceil(trim * len(classes))]
    return ~np.isin(inverse, dropped)


def class_balanced_rate(hit: np.ndarray, labels: np.ndarray) -> float:
    """Mean over the classes present in ``labels`` of each class's share of ``hit`` (0 for no recipient)."""
    hit = np.asarray(hit, dtype=bool)
    if len(hit) == 0:
        return 0.0
    if len(labels) != len(hit):
        return float(hit.mean())
    _, inverse = np.unique(np.asarray(labels), return_inverse=True)
    return float((np.bincount(inverse, weights=hit) / np.bincount(inverse)).mean())
