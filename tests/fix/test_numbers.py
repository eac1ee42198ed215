"""The typed records of ``fix.json``: an audit's summary read back from JSON, the located masks scored."""

from __future__ import annotations

import numpy as np
import pytest

from klugerhans.fix import NothingToRepair, suspect_class
from klugerhans.fix.numbers import AuditSummary, score_located


def test_an_audit_summary_reads_back_from_fix_json_and_from_audit_json():
    summary = AuditSummary((7, 4, 1), (4,), {7: 0.3, 4: 0.25, 1: 0.0}, 0.24, (9,), 43, 0.9)
    assert AuditSummary.from_json(summary.to_json()) == summary
    assert summary.to_json()["broad_rate"] == {"7": 0.3, "4": 0.25, "1": 0.0}  # JSON keys are strings
    # audit.json has no broad_rate or n_classes: its per_class entries hold the same rates as "suspicion"
    per_class = {"7": {"suspicion": 0.3}, "4": {"suspicion": 0.25}, "1": {"suspicion": 0.0}, "9": {"suspicion": None}}
    audit_json = {"suspicion_ranking": [7, 4, 1], "flagged": [4], "untested": [9], "threshold": 0.24,
                  "accuracy": 0.9, "per_class": per_class}  # fmt: skip
    read = AuditSummary.from_json(audit_json)
    assert read.broad_rate == summary.broad_rate and read.n_classes == 4 and read.flagged == (4,)
    assert suspect_class(read) == suspect_class(audit_json) == 4
    with pytest.raises(NothingToRepair, match=r"class 7, broad hijack rate 0\.300, threshold 0\.240"):
        suspect_class(AuditSummary((7,), (), {7: 0.3}, 0.24))


def test_located_masks_are_scored_against_the_truth_only_where_there_is_one():
    located = np.zeros((3, 8, 8), dtype=bool)
    truth = np.zeros((3, 8, 8), dtype=bool)
    located[0, :4, :4] = truth[0, :4, :2] = True  # covers all of its truth, half of it is truth
    located[1, :2, :2] = truth[1, :4, :4] = True  # covers a quarter, all of it truth
    located[2, :1, :1] = True  # no truth: left out of the truth scores
    scores = score_located(located, np.array([0.5, 0.7, 0.9]), truth)
    assert scores.images == 3 and scores.mean_area_px == pytest.approx((16 + 4 + 1) / 3)
    assert scores.relevance_share_inside == pytest.approx(0.7) and scores.truth_available
    assert scores.truth_covered == pytest.approx((1 + 0.25) / 2) and scores.truth_covered_90 == 0.5
    assert scores.precision == pytest.approx((0.5 + 1) / 2)
    none = score_located(located, np.ones(3), np.zeros_like(truth))
    assert not none.truth_available and none.truth_covered is None and none.precision is None
