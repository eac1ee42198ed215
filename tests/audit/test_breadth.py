"""The broad hijack rate: recipients dealt evenly over classes; a family of look-alikes drops out, a shortcut stays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from klugerhans.audit.breadth import TRIM, balanced_choice, broad_rows, class_balanced_rate
from klugerhans.audit.ranking import rank_classes
from klugerhans.audit.transplant import TransplantResult


def test_balanced_choice_deals_classes_evenly_until_one_runs_out() -> None:
    labels = np.r_[np.zeros(70, int), np.ones(20, int), np.full(10, 2)]
    pool = np.arange(100) + 1000
    drawn = balanced_choice(pool, labels, 30, np.random.default_rng(0))
    assert len(set(drawn.tolist())) == 30 and set(drawn.tolist()) <= set(pool.tolist())
    assert np.bincount(labels[drawn - 1000]).tolist() == [10, 10, 10]
    drawn = balanced_choice(pool, labels, 50, np.random.default_rng(1))
    assert np.bincount(labels[drawn - 1000]).tolist() == [20, 20, 10]  # class 2 has only 10
    assert len(balanced_choice(pool, labels, 500, np.random.default_rng(2))) == 100
    again = balanced_choice(pool, labels, 31, np.random.default_rng(3))
    assert np.array_equal(again, balanced_choice(pool, labels, 31, np.random.default_rng(3)))
    assert sorted(np.bincount(labels[again - 1000]).tolist()) == [10, 10, 11]


def _naive_broad(hijacked: np.ndarray, labels: np.ndarray) -> float:
    """Re-derived by hand: per-class rates, drop the ceil(TRIM * J) highest (larger id first on ties), average."""
    rates = {int(c): float(hijacked[labels == c].mean()) for c in np.unique(labels)}
    ranked = sorted(rates, key=lambda c: (-rates[c], -c))
    kept = ranked[math.ceil(TRIM * len(rates)) :]
    return sum(rates[c] for c in kept) / len(kept)


@pytest.mark.parametrize("seed", range(5))
def test_broad_rate_matches_a_naive_derivation(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 9, size=120)
    hijacked = rng.random(120) < rng.random(9)[labels]
    keep = broad_rows(hijacked, labels)
    assert class_balanced_rate(hijacked[keep], labels[keep]) == pytest.approx(_naive_broad(hijacked, labels))


def _result(hijacked: np.ndarray, control: np.ndarray, labels: np.ndarray, c: int = 0) -> TransplantResult:
    empty = np.zeros((0, 4, 4, 3), np.uint8)
    return TransplantResult(c, 5, hijacked, control, 0.5, empty, np.zeros(0, np.int64), recipient_labels=labels)


def test_a_family_of_look_alikes_drops_out_and_a_shortcut_stays() -> None:
    labels = np.repeat(np.arange(40), 5)  # 40 recipient classes, 5 recipients each
    family = labels < 8  # a part that turns every sign of 8 look-alike classes (the speed limits)
    shortcut = np.zeros(200, bool)
    shortcut[::5] = True  # one recipient in five of every class: the same 20% overall
    no = np.zeros(200, bool)
    part, sticker = _result(family, no, labels, 1), _result(shortcut, no, labels, 2)
    assert part.hijack_rate == sticker.hijack_rate == pytest.approx(0.2)
    assert part.broad_rate == 0.0 and part.broad_p_value == 1.0
    assert sticker.broad_rate == pytest.approx(0.2) and sticker.broad_p_value < 1e-6
    ranking = rank_classes({1: part, 2: sticker}, threshold=0.1)
    assert ranking.order == (2, 1) and ranking.flagged == (2,)
    assert ranking.scores == {1: 0.0, 2: pytest.approx(0.2)}


def test_without_recipient_classes_the_broad_rate_is_the_hijack_rate() -> None:
    hijacked = np.arange(50) % 3 == 0
    result = _result(hijacked, np.zeros(50, bool), np.zeros(0, np.int64))
    assert result.broad.all() and result.broad_rate == result.hijack_rate
    assert result.broad_p_value == result.p_value
