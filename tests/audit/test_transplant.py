"""The transplant test: window search, pasting, and flagging a planted shortcut but not a control."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import SHORTCUT_CLASS

from klugerhans.audit.config import AuditConfig
from klugerhans.audit.probes import best_windows, paste_patches, random_windows
from klugerhans.audit.ranking import rank_classes
from klugerhans.audit.run import audit_classifier
from klugerhans.audit.transplant import TransplantResult
from klugerhans.errors import KlugerhansError


def test_best_windows_match_brute_force() -> None:
    rng = np.random.default_rng(0)
    r = rng.normal(size=(5, 9, 11)).astype(np.float32)
    corners, share = best_windows(r, 3)
    for i in range(5):
        pos = np.clip(r[i], 0, None)
        sums = {(y, x): pos[y : y + 3, x : x + 3].sum() for y in range(7) for x in range(9)}
        best = max(sums, key=lambda k: (sums[k], -k[0], -k[1]))
        assert tuple(corners[i]) == best
        assert share[i] == pytest.approx(sums[best] / pos.sum(), rel=1e-5)


def test_paste_and_random_windows_stay_inside() -> None:
    rng = np.random.default_rng(0)
    boxes = np.array([[4, 4, 28, 28], [0, 0, 32, 32], [10, 10, 12, 12]], dtype=np.float32)
    corners = random_windows(np.repeat(boxes, 50, axis=0), 8, 32, rng)
    assert corners.min() >= 0 and corners.max() <= 24
    assert (corners[:50] >= 4).all() and (corners[:50] <= 20).all()
    avoid = np.tile([[10, 10]], (100, 1))
    drawn = random_windows(np.tile(boxes[:1], (100, 1)), 8, 32, rng, avoid=avoid)
    assert (np.abs(drawn - avoid) >= 8).any(axis=1).all()  # never overlaps the avoided window
    rec = np.zeros((1, 8, 8, 3), np.uint8)
    don = np.full((1, 8, 8, 3), 7, np.uint8)
    out = paste_patches(rec, don, np.array([[0, 0]]), np.array([[5, 6]]), 2)
    assert out[0, 5:7, 6:8].min() == 7 and out.sum() == 7 * 12 and rec.sum() == 0


def _audit(classifier, data, probes=("window", "pixels")):
    # The colour probe is left out: these toy classes are defined by their colour alone, so carrying a donor's
    # colours over rightly turns every recipient (test_colour_defined_classes_are_reported_by_the_colour_probe).
    config = AuditConfig(
        checkpoint="hand-built", recipients=48, methods=(), tsne_classes=0, progress=False, probes=probes
    )
    return audit_classifier(classifier, data, config)


def test_planted_shortcut_is_ranked_first_and_flagged(shortcut_classifier, squares_with_patch) -> None:
    result = _audit(shortcut_classifier, squares_with_patch)
    assert result.ranking.order[0] == SHORTCUT_CLASS
    assert result.ranking.flagged == (SHORTCUT_CLASS,)
    t = result.transplant[SHORTCUT_CLASS]
    assert t.hijack_rate >= 0.9 and t.excess >= 0.5 and t.p_value < 1e-6
    others = [result.transplant[c].hijack_rate for c in result.ranking.order[1:]]
    assert max(others) <= 0.1


def test_control_model_flags_nothing(control_classifier, squares_with_patch) -> None:
    result = _audit(control_classifier, squares_with_patch)
    assert result.ranking.flagged == ()
    assert max(result.ranking.scores.values()) < 0.1


def test_colour_defined_classes_are_reported_by_the_colour_probe(control_classifier, squares) -> None:
    result = _audit(control_classifier, squares, probes=("window", "colour"))
    assert {t.probe for t in result.transplant.values()} == {"colour"}
    assert sum(v >= 0.9 for v in result.ranking.scores.values()) >= 3  # red, green, blue: pure colours
    assert all(t.by_probe["window"]["hijack_rate"] < 0.1 for t in result.transplant.values())


def test_ranking_rules() -> None:
    def fake(c: int, hits: int, control: int) -> TransplantResult:
        h = np.zeros(40, bool)
        h[:hits] = True
        k = np.zeros(40, bool)
        k[40 - control :] = True  # control hits at the other end: many discordant pairs both ways
        return TransplantResult(c, 5, h, k, 0.5, np.zeros((0, 4, 4, 3), np.uint8), np.zeros(0, np.int64))

    results = {0: fake(0, 20, 0), 1: fake(1, 30, 20), 2: fake(2, 12, 0), 3: fake(3, 2, 0), 5: fake(5, 40, 40)}
    # separation 1: the floor and the test alone (the separation has its own test)
    ranking = rank_classes(results, threshold=0.25, alpha=0.01, present=[0, 1, 2, 3, 5, 9], separation=1.0)
    assert ranking.order == (5, 1, 0, 2, 3)  # hijack rates 1.0, 0.75, 0.5, 0.3, 0.05
    # 5: every patch hijacks (control too), not a relevance-specific shortcut; 1: 20 relevant-only vs 10
    # control-only pairs, p = 0.05 > 0.01 / 5
    assert ranking.flagged == (0, 2)
    assert ranking.untested == (9,)
    assert "25.0%" in ranking.rationale() and "0.01 / (5 classes x 1 probes)" in ranking.rationale()
    with pytest.raises(KlugerhansError):
        rank_classes(results, threshold=0.0)


def _hits(c: int, n: int, control: int = 0) -> TransplantResult:
    """A class whose patch hijacks ``n`` of 100 recipients and whose control the first ``control`` of them."""
    h, k = np.arange(100) < n, np.arange(100) < control
    return TransplantResult(c, 5, h, k, 0.5, np.zeros((0, 4, 4, 3), np.uint8), np.zeros(0, np.int64))


@pytest.mark.parametrize(
    ("hits", "flagged"),
    [
        ({0: 40, 1: 25, 2: 12}, ()),  # a run that falls off gradually: the parts of a model that act alone
        ({0: 45, 1: 14, 2: 10}, (0,)),  # 45 >= 3 x 14: apart; 14 is over the floor but close to the rest
        ({0: 60, 1: 50, 2: 8}, (0, 1)),  # two shortcuts of like strength lead the rest together
        ({0: 9, 1: 1, 2: 0}, ()),  # apart but under the floor
    ],
)
def test_flagged_classes_stand_apart_from_the_models_other_classes(
    hits: dict[int, int], flagged: tuple[int, ...]
) -> None:
    ranking = rank_classes({c: _hits(c, n) for c, n in hits.items()}, threshold=0.1)
    assert ranking.flagged == flagged
    assert "3 times" in ranking.rationale()
    anywhere = rank_classes({c: _hits(c, n) for c, n in hits.items()}, threshold=0.1, separation=1.0)
    assert set(anywhere.flagged) == {c for c, n in hits.items() if n >= 10}
    with pytest.raises(KlugerhansError):
        rank_classes({0: _hits(0, 40)}, threshold=0.1, separation=0.5)


def test_of_classes_leading_together_only_those_acting_anywhere_are_flagged() -> None:
    """A sticker (0) lifts an aligned part that acts only where it belongs (1) over the rest with it."""
    from dataclasses import replace

    def probed(c: int, n: int, window: int) -> TransplantResult:
        result = _hits(c, n)
        by_window = {"broad_rate": window / 100, "broad_control_rate": 0.0, "p_value": 0.0}
        return replace(result, by_probe={"window": by_window, "place": {"broad_rate": n / 100, "p_value": 0.0}})

    results = {0: probed(0, 60, 55), 1: probed(1, 25, 1), 2: _hits(2, 5)}
    assert rank_classes(results, threshold=0.1).flagged == (0,)
    results[1] = probed(1, 50, 40)  # two stickers of like strength
    assert rank_classes(results, threshold=0.1).flagged == (0, 1)
    results = {0: probed(0, 60, 55)}
    alone = rank_classes({**results, 1: probed(1, 15, 1), 2: _hits(2, 5)}, threshold=0.1)
    assert alone.flagged == (0,)
    corner = rank_classes({0: probed(0, 40, 0), 1: _hits(1, 5)}, threshold=0.1)
    assert corner.flagged == (0,)  # one that leads alone is flagged however it acts (a corner tag)


def test_a_class_every_patch_hijacks_does_not_hide_a_shortcut() -> None:
    # class 5 takes whatever is pasted (its control as often): ranked first, neither flagged nor in the way
    results = {5: _hits(5, 90, control=90), 1: _hits(1, 40), 2: _hits(2, 8), 3: _hits(3, 4)}
    ranking = rank_classes(results, threshold=0.1)
    assert ranking.order[0] == 5 and ranking.flagged == (1,)


def test_transplant_test_does_not_touch_inputs(shortcut_classifier, squares_with_patch) -> None:
    before = squares_with_patch.images.copy()
    _audit(shortcut_classifier, squares_with_patch)
    assert np.array_equal(before, squares_with_patch.images)
    assert torch.is_tensor(next(shortcut_classifier.model.parameters()))
