"""Model-level detection metrics (:mod:`klugerhans.bench.metrics`), checked against naive reference code."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from klugerhans.bench.metrics import (
    BOOTSTRAP_DRAWS,
    METRIC_KEYS,
    DetectorSummary,
    ModelOutcome,
    SuiteMetrics,
    Threshold,
    auroc_interval,
    compare_to_baselines,
    detection_metrics,
    held_out_false_positive_rate,
    metrics_by_axis,
    null_threshold,
    roc_auc,
    summarize,
)
from klugerhans.errors import KlugerhansError

NAN = math.nan


def naive_auc(pos: list[float], neg: list[float]) -> float:
    """All pairs: a win counts 1, a tie 1/2."""
    if not pos or not neg:
        return math.nan
    total = 0.0
    for p in pos:
        for n in neg:
            total += 1.0 if p > n else 0.5 if p == n else 0.0
    return total / (len(pos) * len(neg))


def naive_threshold(scores: list[float], fpr: float) -> float | None:
    """The conformal threshold in exact decimal arithmetic; None when k > n (too few controls)."""
    n = len(scores)
    bound = (n + 1) * (1 - Fraction(str(fpr)))
    k = next(k for k in range(1, n + 2) if k >= bound)
    return None if k > n else float(np.nextafter(sorted(scores)[k - 1], np.inf))


# ---- roc_auc -------------------------------------------------------------------------------------------------------

tied_scores = st.lists(st.integers(min_value=0, max_value=4).map(float), max_size=25)


@settings(max_examples=50, deadline=None)
@given(pos=tied_scores, neg=tied_scores)
def test_roc_auc_equals_the_pairwise_count_with_many_ties(pos, neg):
    got, want = roc_auc(pos, neg), naive_auc(pos, neg)
    if math.isnan(want):
        assert math.isnan(got)
    else:
        assert got == pytest.approx(want, abs=1e-12)


@settings(max_examples=50, deadline=None)
@given(pos=tied_scores.filter(bool), neg=tied_scores.filter(bool))
def test_roc_auc_agrees_with_sklearn(pos, neg):
    labels = [1] * len(pos) + [0] * len(neg)
    assert roc_auc(pos, neg) == pytest.approx(roc_auc_score(labels, pos + neg), abs=1e-12)


def test_roc_auc_hand_cases():
    assert roc_auc([3.0, 4.0, 5.0], [0.0, 1.0]) == 1.0
    assert roc_auc([0.0, 1.0], [3.0, 4.0, 5.0]) == 0.0
    assert roc_auc([2.0] * 4, [2.0] * 7) == 0.5
    # 0.3 vs (0.2, 0.3, 0.1): 1 + 1/2 + 1 = 2.5 of 3
    assert roc_auc([0.3], [0.2, 0.3, 0.1]) == pytest.approx(2.5 / 3)
    # -inf (a model without a finite score) is the lowest value and ties with itself
    assert roc_auc([-math.inf], [0.0]) == 0.0
    assert roc_auc([-math.inf], [-math.inf]) == 0.5
    assert math.isnan(roc_auc([], [1.0]))
    assert math.isnan(roc_auc([1.0], []))
    with pytest.raises(KlugerhansError, match="NaN"):
        roc_auc([NAN], [1.0])


# ---- null_threshold ------------------------------------------------------------------------------------------------


def test_null_threshold_hand_examples():
    # 20 scores 0.01..0.20, fpr 0.05: k = ceil(21 * 0.95) = ceil(19.95) = 20 = n -> just above the largest, 0.20
    scores = [i / 100 for i in range(1, 21)]
    t = null_threshold(scores, 0.05)
    assert t.value == np.nextafter(0.20, np.inf) and t.value > 0.20
    assert (t.fpr, t.n_clean) == (0.05, 20)
    assert sum(s >= t.value for s in scores) == 0
    assert "k=20 of 20" in t.rationale and "cannot be resolved" not in t.rationale
    # 40 scores 0.01..0.40, fpr 0.05: k = ceil(41 * 0.95) = ceil(38.95) = 39 -> just above 0.39, flags 0.40 only
    scores = [i / 100 for i in range(1, 41)]
    t = null_threshold(scores, 0.05)
    assert t.value == np.nextafter(0.39, np.inf)
    assert [s for s in scores if s >= t.value] == [0.40]  # 1/40 = 0.025 <= 0.05
    # 9 scores 1..9, fpr 0.7: (9 + 1) * 0.3 = 3 exactly (3.0000000000000004 in floats) -> k = 3, just above 3
    t = null_threshold([float(i) for i in range(9, 0, -1)], 0.7)
    assert t.value == np.nextafter(3.0, np.inf)
    assert sum(i >= t.value for i in range(1, 10)) == 6  # 6/9 <= 0.7
    # ties: all 30 equal, fpr 0.2: k = ceil(31 * 0.8) = 25 -> just above 0.5, nobody flagged
    assert null_threshold([0.5] * 30, 0.2).value == np.nextafter(0.5, np.inf)


def test_null_threshold_with_too_few_controls_flags_no_clean_model():
    # 12 controls, fpr 0.05: k = ceil(13 * 0.95) = ceil(12.35) = 13 > 12
    scores = [i / 100 for i in range(12)]
    t = null_threshold(scores, 0.05)
    assert t.value == np.nextafter(0.11, np.inf)
    assert "cannot be resolved" in t.rationale and "at least 19" in t.rationale
    # the boundary: 18 controls are too few for 5% (19 * 0.95 = 18.05), 19 are enough (20 * 0.95 = 19)
    assert "cannot be resolved" in null_threshold([0.1] * 18, 0.05).rationale
    assert "cannot be resolved" not in null_threshold([0.1] * 19, 0.05).rationale
    # models without a finite score (-inf) are allowed as controls
    assert null_threshold([-math.inf, -math.inf], 0.5).value == np.nextafter(-math.inf, np.inf)


@settings(max_examples=50, deadline=None)
@given(
    scores=st.lists(st.integers(min_value=0, max_value=6).map(lambda i: i / 10), min_size=1, max_size=60),
    fpr=st.sampled_from([0.01, 0.05, 0.1, 0.2, 0.25, 0.3, 0.5, 0.7, 0.9]),
)
def test_null_threshold_matches_exact_arithmetic_and_bounds_the_clean_share(scores, fpr):
    t = null_threshold(scores, fpr)
    want = naive_threshold(scores, fpr)
    share = sum(s >= t.value for s in scores) / len(scores)
    if want is None:
        assert t.value == np.nextafter(max(scores), np.inf)
        assert share == 0.0
    else:
        assert t.value == want
        assert share <= fpr
    assert t.n_clean == len(scores)


@pytest.mark.parametrize("fpr", [0.0, 1.0, -0.1, 1.5, NAN])
def test_null_threshold_rejects_bad_fpr(fpr):
    with pytest.raises(KlugerhansError, match="fpr"):
        null_threshold([0.1, 0.2], fpr)


def test_null_threshold_rejects_bad_scores():
    with pytest.raises(KlugerhansError, match="at least one"):
        null_threshold([], 0.05)
    with pytest.raises(KlugerhansError, match="NaN"):
        null_threshold([0.1, NAN], 0.05)
    with pytest.raises(KlugerhansError, match=r"\+inf"):
        null_threshold([0.1, math.inf], 0.05)
    with pytest.raises(KlugerhansError):
        Threshold(value=NAN, fpr=0.05, n_clean=3, rationale="")


# ---- ModelOutcome --------------------------------------------------------------------------------------------------


def test_model_outcome_top_score_and_class():
    o = ModelOutcome("m", True, 3, {1: 0.1, 3: 0.5, 5: NAN})
    assert (o.top_score, o.top_class) == (0.5, 3)
    tie = ModelOutcome("t", True, 4, {4: 0.3, 2: 0.3, 7: NAN})
    assert (tie.top_score, tie.top_class) == (0.3, 2)  # ties go to the smallest class id
    empty = ModelOutcome("e", False, None, {1: NAN})
    assert (empty.top_score, empty.top_class) == (-math.inf, None)
    assert ModelOutcome("n", False, None, {}).top_class is None


def test_model_outcome_validates_and_copies():
    with pytest.raises(KlugerhansError, match="target"):
        ModelOutcome("a", True, None, {0: 0.1})
    with pytest.raises(KlugerhansError, match="target"):
        ModelOutcome("a", False, 2, {0: 0.1})
    with pytest.raises(KlugerhansError, match="job"):
        ModelOutcome("", False, None, {0: 0.1})
    with pytest.raises(KlugerhansError, match="scores"):
        ModelOutcome("a", False, None, {0: "high"})  # type: ignore[dict-item]
    with pytest.raises(KlugerhansError, match="axes"):
        ModelOutcome("a", False, None, {0: 0.1}, axes={"fraction": 0.5})  # type: ignore[dict-item]
    scores = {0: 0.1}
    o = ModelOutcome("a", False, None, scores, flagged=[0])  # type: ignore[arg-type]
    scores[1] = 0.9
    assert o.top_score == 0.1 and o.flagged == (0,)


# ---- detection_metrics / metrics_by_axis ---------------------------------------------------------------------------


def hand_outcomes() -> list[ModelOutcome]:
    return [
        # top 0.5, top class 3: hit
        ModelOutcome("m1", True, 3, {1: 0.1, 3: 0.5, 5: NAN}, axes={"artefact": "noise", "data": "synth"}),
        # top 0.3, tie 2/4 -> 2: hit
        ModelOutcome("m2", True, 2, {2: 0.3, 4: 0.3}, axes={"artefact": "frame", "data": "synth"}),
        # top 0.3, tie 2/4 -> 2: miss (target 4)
        ModelOutcome("m3", True, 4, {2: 0.3, 4: 0.3, 7: NAN}, axes={"artefact": "frame", "data": "gtsrb"}),
        # no finite score: top -inf, top class None: miss
        ModelOutcome("m4", True, 1, {1: NAN}, axes={"artefact": "noise", "data": "gtsrb"}),
        ModelOutcome("c1", False, None, {0: 0.2, 1: 0.05}, axes={"data": "synth"}),  # top 0.2
        ModelOutcome("c2", False, None, {0: 0.3}, axes={"data": "gtsrb"}),  # top 0.3
        ModelOutcome("c3", False, None, {0: NAN, 5: 0.1}, axes={"data": "synth"}),  # top 0.1
    ]


def test_detection_metrics_by_hand():
    got = detection_metrics(hand_outcomes(), threshold=0.25)
    assert tuple(got.to_json()) == METRIC_KEYS
    # manipulated tops (0.5, 0.3, 0.3, -inf) vs clean (0.2, 0.3, 0.1): 3 + 2.5 + 2.5 + 0 = 8 of 12 pairs
    assert got.auroc == pytest.approx(8 / 12)
    assert got.false_positive_rate == pytest.approx(1 / 3)  # c2 (0.3 >= 0.25)
    assert got.true_positive_rate == pytest.approx(3 / 4)  # m1, m2, m3
    assert got.top1_hit_rate == pytest.approx(2 / 4)  # m1, m2
    assert (got.n_manipulated, got.n_clean) == (4, 3)
    # the threshold is inclusive: at exactly 0.3 m2, m3 and c2 are flagged; just above, they are not
    at, above = detection_metrics(hand_outcomes(), 0.3), detection_metrics(hand_outcomes(), float(np.nextafter(0.3, 1)))
    assert (at.true_positive_rate, at.false_positive_rate) == pytest.approx((3 / 4, 1 / 3))
    assert (above.true_positive_rate, above.false_positive_rate) == pytest.approx((1 / 4, 0.0))


def test_detection_metrics_with_a_missing_side_and_bad_input():
    clean_only = [o for o in hand_outcomes() if not o.manipulated]
    got = detection_metrics(clean_only, 0.25)
    assert math.isnan(got.auroc) and math.isnan(got.true_positive_rate) and math.isnan(got.top1_hit_rate)
    assert got.false_positive_rate == pytest.approx(1 / 3) and got.n_manipulated == 0
    got = detection_metrics([o for o in hand_outcomes() if o.manipulated], 0.25)
    assert math.isnan(got.auroc) and math.isnan(got.false_positive_rate) and got.n_clean == 0
    with pytest.raises(KlugerhansError, match="m1"):
        detection_metrics([*hand_outcomes(), hand_outcomes()[0]], 0.25)
    with pytest.raises(KlugerhansError, match="NaN"):
        detection_metrics(hand_outcomes(), NAN)


CORE = ("auroc", "false_positive_rate", "true_positive_rate", "top1_hit_rate", "n_manipulated", "n_clean")


def expected(auroc, fpr, tpr, top1, n_manipulated, n_clean):
    """Metrics computed by hand, compared approximately."""
    return pytest.approx(dict(zip(CORE, (auroc, fpr, tpr, top1, n_manipulated, n_clean), strict=True)))


def core(metrics):
    """The metrics :func:`expected` states (the interval and the held-out rate are tested on their own)."""
    return {k: getattr(metrics, k) for k in CORE}


def test_auroc_interval_brackets_the_estimate_and_narrows_with_more_models():
    rng = np.random.default_rng(0)
    pos, neg = rng.normal(1.0, 1.0, 24), rng.normal(0.0, 1.0, 12)
    lo, hi = auroc_interval(pos, neg)
    assert lo <= roc_auc(pos, neg) <= hi and 0.0 <= lo < hi <= 1.0
    many = auroc_interval(rng.normal(1.0, 1.0, 240), rng.normal(0.0, 1.0, 120))
    assert many[1] - many[0] < (hi - lo) / 2  # ~1/sqrt(10) as wide
    assert auroc_interval([2.0, 3.0], [0.0, 1.0]) == (1.0, 1.0)  # every resample separates perfectly
    assert auroc_interval(pos, neg) == (lo, hi)  # seeded
    assert all(math.isnan(v) for v in auroc_interval([], neg))
    # a naive bootstrap by hand, same draws: the same interval
    draw = np.random.default_rng(0)
    naive = []
    for _ in range(BOOTSTRAP_DRAWS):
        p, n = pos[draw.integers(24, size=24)], neg[draw.integers(12, size=12)]
        naive.append(np.mean([(a > b) + 0.5 * (a == b) for a in p for b in n]))
    assert (lo, hi) == pytest.approx(tuple(np.quantile(naive, [0.025, 0.975])))


def test_held_out_false_positive_rate_leaves_each_control_out_of_its_own_threshold():
    # 19 controls 0.01..0.19 and one at 0.9: in-sample the threshold sits just above 0.9 (n = 20 < 19 / 0.05 + 1),
    # flagging none; left out, 0.9 meets a threshold just above 0.19, and is flagged.
    scores = [*(i / 100 for i in range(1, 20)), 0.9]
    assert held_out_false_positive_rate(scores, 0.05) == pytest.approx(1 / 20)
    assert null_threshold(scores, 0.05).value > 0.9
    assert held_out_false_positive_rate([0.1] * 10, 0.05) == 0.0  # ties: the threshold is just above them
    assert math.isnan(held_out_false_positive_rate([0.3], 0.05))
    got = detection_metrics(hand_outcomes(), threshold=0.25)
    # clean tops 0.2, 0.3, 0.1: each above both others is flagged, only 0.3 is
    assert got.held_out_false_positive_rate == pytest.approx(1 / 3)
    assert got.auroc_ci[0] <= got.auroc <= got.auroc_ci[1]


def test_metrics_by_axis_by_hand():
    got = metrics_by_axis(hand_outcomes(), threshold=0.25)
    assert set(got) == {"artefact", "data"} and set(got["artefact"]) == {"frame", "noise"}
    # artefact is not carried by clean models: every clean model (0.2, 0.3, 0.1) is a control
    frame = got["artefact"]["frame"]  # m2, m3: 0.3, 0.3 -> 2.5 + 2.5 of 6
    assert core(frame) == expected(5 / 6, 1 / 3, 1.0, 0.5, 2, 3)
    noise = got["artefact"]["noise"]  # m1, m4: 0.5, -inf -> 3 + 0 of 6
    assert core(noise) == expected(0.5, 1 / 3, 0.5, 0.5, 2, 3)
    # data is carried by clean models: matched
    gtsrb = got["data"]["gtsrb"]  # m3, m4 (0.3, -inf) vs c2 (0.3): 0.5 + 0 of 2
    assert core(gtsrb) == expected(0.25, 1.0, 0.5, 0.0, 2, 1)
    synth = got["data"]["synth"]  # m1, m2 (0.5, 0.3) vs c1, c3 (0.2, 0.1): 4 of 4
    assert core(synth) == expected(1.0, 0.0, 1.0, 1.0, 2, 2)


def test_metrics_by_axis_counts_a_clean_model_without_the_axis_for_every_value():
    extra = ModelOutcome("c4", False, None, {0: 0.9})  # carries no data axis
    got = metrics_by_axis([*hand_outcomes(), extra], threshold=0.25)
    assert got["data"]["gtsrb"].n_clean == 2 and got["data"]["synth"].n_clean == 3
    assert got["artefact"]["frame"].n_clean == 4
    assert metrics_by_axis([o for o in hand_outcomes() if not o.manipulated], 0.25) == {}


# ---- summarize / compare_to_baselines ------------------------------------------------------------------------------


def baseline_outcomes() -> list[ModelOutcome]:
    """A baseline that separates perfectly on artefact=frame and has no gtsrb clean model."""
    return [
        ModelOutcome("m2", True, 2, {2: 0.9}, axes={"artefact": "frame", "data": "synth"}),
        ModelOutcome("m3", True, 4, {4: 0.9}, axes={"artefact": "frame", "data": "gtsrb"}),
        ModelOutcome("m1", True, 3, {0: 0.1}, axes={"artefact": "noise", "data": "synth"}),
        ModelOutcome("c1", False, None, {0: 0.2}, axes={"data": "synth"}),
    ]


def test_summarize_payload_is_json_ready():
    summary = summarize(
        {"klugerhans": hand_outcomes(), "spectral_signatures": baseline_outcomes()},
        {"klugerhans": 0.25, "spectral_signatures": 0.5},
        primary="klugerhans",
    )
    data = summary.to_json()
    assert set(data) == {*METRIC_KEYS, "by_axis", "baselines", "variants"}
    assert set(summary.baselines) == {"spectral_signatures"} and summary.variants == {}
    base = summary.baselines["spectral_signatures"]
    assert set(data["baselines"]["spectral_signatures"]) == {*METRIC_KEYS, "by_axis"}
    assert summary.auroc == pytest.approx(8 / 12) and summary.n_manipulated == 4
    assert base.by_axis["artefact"]["frame"].auroc == 1.0
    assert math.isnan(base.by_axis["data"]["gtsrb"].auroc)  # no gtsrb control
    gtsrb = data["baselines"]["spectral_signatures"]["by_axis"]["data"]["gtsrb"]
    assert gtsrb["auroc"] is None and gtsrb["false_positive_rate"] is None  # NaN -> None
    text = json.dumps(data, allow_nan=False)
    assert json.loads(text) == data and SuiteMetrics.from_json(json.loads(text)).to_json() == data
    with pytest.raises(KlugerhansError, match="primary"):
        summarize({"a": hand_outcomes()}, {"a": 0.25}, primary="b")
    with pytest.raises(KlugerhansError, match="threshold"):
        summarize({"a": hand_outcomes(), "b": hand_outcomes()}, {"a": 0.25}, primary="a")


def test_variants_are_reported_apart_and_not_compared_as_baselines():
    summary = summarize(
        {"klugerhans": hand_outcomes(), "klugerhans@same": baseline_outcomes()},
        {"klugerhans": 0.25, "klugerhans@same": 0.5},
        primary="klugerhans",
        variants=("klugerhans@same",),
    )
    assert set(summary.variants) == {"klugerhans@same"} and summary.baselines == {}
    assert summary.variants["klugerhans@same"].by_axis["artefact"]["frame"].auroc == 1.0
    assert compare_to_baselines(summary) == ["No baseline detector was run, so klugerhans was compared with nothing."]


def test_compare_to_baselines_names_where_klugerhans_is_worse():
    summary = summarize(
        {"klugerhans": hand_outcomes(), "spectral_signatures": baseline_outcomes()},
        {"klugerhans": 0.25, "spectral_signatures": 0.5},
        primary="klugerhans",
    )
    # baseline: overall AUROC (0.9, 0.9, 0.1) vs (0.2) = 2/3 = ours (not reported), top-1 2/3 vs ours 0.5;
    # frame AUROC 1.0 vs ours 5/6, top-1 1.0 vs 0.5; noise 0 and 0 (ours better); gtsrb AUROC None (no control, not
    # compared), top-1 1.0 (m3) vs ours 0.0; synth AUROC 0.5 and top-1 0.5 (m2 hit, m1 miss) vs ours 1.0 and 1.0
    assert compare_to_baselines(summary) == [
        "klugerhans is worse than spectral_signatures overall: top-1 hit rate 0.50 vs 0.67",
        "klugerhans is worse than spectral_signatures on artefact=frame: AUROC 0.83 vs 1.00",
        "klugerhans is worse than spectral_signatures on artefact=frame: top-1 hit rate 0.50 vs 1.00",
        "klugerhans is worse than spectral_signatures on data=gtsrb: top-1 hit rate 0.00 vs 1.00",
    ]


def test_compare_to_baselines_picks_the_best_baseline_and_says_when_klugerhans_wins():
    def m(auroc, top1):
        return replace(detection_metrics(hand_outcomes(), 0.25), auroc=auroc, top1_hit_rate=top1)

    def summ(ours, **baselines):
        rivals = {n: DetectorSummary(**vars(b), by_axis={"artefact": {"frame": b}}) for n, b in baselines.items()}
        return SuiteMetrics(**vars(ours), by_axis={"artefact": {"frame": ours}}, variants={}, baselines=rivals)

    worse = summ(m(0.71, NAN), strip=m(0.8, 0.9), spectral_signatures=m(0.83, NAN))
    assert compare_to_baselines(worse) == [
        "klugerhans is worse than spectral_signatures overall: AUROC 0.71 vs 0.83",
        "klugerhans is worse than spectral_signatures on artefact=frame: AUROC 0.71 vs 0.83",
    ]
    # more decimals when two decimals would print the same numbers
    assert compare_to_baselines(summ(m(0.801, 1.0), strip=m(0.804, 0.5)))[0].endswith("AUROC 0.801 vs 0.804")
    better = compare_to_baselines(summ(m(0.9, 1.0), strip=m(0.9, NAN), activation_clustering=m(NAN, 0.2)))
    assert len(better) == 1 and better[0].startswith("klugerhans is at least as good as every baseline")
    assert "compared with nothing" in compare_to_baselines(summ(m(0.9, 1.0)))[0]
