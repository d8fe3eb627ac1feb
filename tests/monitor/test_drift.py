"""PSI maths: known values worked out by hand, empty and one-sided bins, unseen categories, missing values."""

from __future__ import annotations

import math
from typing import Any

import pytest

from functions.common.distribution import (
    OTHER_CATEGORY,
    Baseline,
    CategoricalSummary,
    NumericSummary,
    categorical_summary,
    numeric_summary,
    summarize_like,
)
from functions.common.records import PredictionRecord
from functions.monitor.drift import (
    EPSILON,
    MISSING_BIN,
    compare,
    feature_drift,
    most_drifted,
    prediction_drift,
    psi,
)


def record(features: dict[str, Any], **answer: Any) -> PredictionRecord:
    return PredictionRecord(
        prediction_id="0" * 32, time="2026-11-27T11:00:00Z", model_version="v1", features=features, **answer
    )


def test_identical_distributions_have_zero_psi() -> None:
    assert psi([0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3, 0.4]) == 0.0


def test_psi_of_a_shift_between_two_bins_matches_the_hand_computed_value() -> None:
    # (0.25 - 0.5) ln(0.25 / 0.5) + (0.75 - 0.5) ln(0.75 / 0.5) = 0.25 ln 2 + 0.25 ln 1.5
    assert psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(0.25 * math.log(2) + 0.25 * math.log(1.5))
    assert psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(0.274653, abs=1e-6)


def test_psi_is_symmetric_because_each_term_is() -> None:
    # (a - e) ln(a / e) = (e - a) ln(e / a): 0.4 ln 3 + 0.4 ln 2 either way.
    assert psi([0.2, 0.8], [0.6, 0.4]) == pytest.approx(0.4 * math.log(3) + 0.4 * math.log(2))
    assert psi([0.6, 0.4], [0.2, 0.8]) == pytest.approx(psi([0.2, 0.8], [0.6, 0.4]))


def test_a_bin_empty_on_both_sides_contributes_nothing() -> None:
    assert psi([0.5, 0.5, 0.0], [0.5, 0.5, 0.0]) == 0.0
    assert psi([0.5, 0.0, 0.5], [0.25, 0.0, 0.75]) == pytest.approx(psi([0.5, 0.5], [0.25, 0.75]))


def test_a_bin_empty_on_one_side_is_floored_at_epsilon() -> None:
    expected = (0.5 - 1.0) * math.log(0.5 / 1.0) + (0.5 - EPSILON) * math.log(0.5 / EPSILON)
    assert psi([1.0, 0.0], [0.5, 0.5]) == pytest.approx(expected)
    assert EPSILON == 1e-4
    # Large but finite: about 4.6 of the total comes from the bin training never saw.
    assert 4.0 < psi([1.0, 0.0], [0.5, 0.5]) < 5.0


def test_psi_needs_the_same_bins_on_both_sides() -> None:
    with pytest.raises(ValueError, match="same bins"):
        psi([0.5, 0.5], [1.0])


def test_numeric_comparison_uses_the_baseline_bins_and_a_missing_bin() -> None:
    baseline = NumericSummary(edges=(10.0,), proportions=(0.5, 0.5), missing=0.0)
    # Three of the four present values are <= 10; half of all values are missing.
    live = summarize_like(baseline, [5, 5, 5, 15, None, None, None, None])
    score = compare(baseline, live)
    assert score is not None
    assert score.bins == ("<= 10", "> 10", MISSING_BIN)
    assert score.expected == pytest.approx((0.5, 0.5, 0.0))
    assert score.actual == pytest.approx((0.375, 0.125, 0.5))
    by_hand = (
        (0.375 - 0.5) * math.log(0.375 / 0.5)
        + (0.125 - 0.5) * math.log(0.125 / 0.5)
        + (0.5 - EPSILON) * math.log(0.5 / EPSILON)
    )
    assert score.psi == pytest.approx(by_hand)


def test_numeric_bins_are_labelled_by_their_edges() -> None:
    baseline = NumericSummary(edges=(1.0, 2.5, 40.0), proportions=(0.25,) * 4, missing=0.0)
    score = compare(baseline, summarize_like(baseline, [0, 2, 3, 50]))
    assert score is not None
    assert score.bins == ("<= 1", "(1, 2.5]", "(2.5, 40]", "> 40", MISSING_BIN)
    assert score.psi == 0.0


def test_unseen_categories_are_compared_under_other() -> None:
    baseline = CategoricalSummary({"a": 0.5, "b": 0.5}, missing=0.0)
    score = compare(baseline, summarize_like(baseline, ["a", "a", "c", "d"]))
    assert score is not None
    assert score.bins == ("a", "b", OTHER_CATEGORY, MISSING_BIN)
    assert score.expected == pytest.approx((0.5, 0.5, 0.0, 0.0))
    assert score.actual == pytest.approx((0.5, 0.0, 0.5, 0.0))
    # "a" is unchanged; "b" vanished and "__other__" appeared: two one-sided bins.
    by_hand = (EPSILON - 0.5) * math.log(EPSILON / 0.5) + (0.5 - EPSILON) * math.log(0.5 / EPSILON)
    assert score.psi == pytest.approx(by_hand)


def test_categorical_missing_share_is_its_own_bin() -> None:
    baseline = CategoricalSummary({"a": 1.0}, missing=0.5)
    score = compare(baseline, summarize_like(baseline, ["a", None]))
    assert score is not None
    assert score.actual == pytest.approx((0.5, 0.5))
    assert score.psi == 0.0


def test_no_values_on_either_side_gives_no_score_rather_than_zero() -> None:
    empty = NumericSummary(edges=(), proportions=(0.0,), missing=0.0)
    assert compare(empty, summarize_like(empty, [1.0, 2.0])) is None
    baseline = NumericSummary(edges=(1.0,), proportions=(0.5, 0.5), missing=0.0)
    assert compare(baseline, summarize_like(baseline, [])) is None


def test_comparison_refuses_live_values_not_summarised_like_the_baseline() -> None:
    baseline = NumericSummary(edges=(1.0,), proportions=(0.5, 0.5), missing=0.0)
    with pytest.raises(ValueError, match="summarize_like"):
        compare(baseline, NumericSummary(edges=(2.0,), proportions=(0.5, 0.5), missing=0.0))


def churn_baseline() -> Baseline:
    tenure = list(range(100))
    plans = ["basic"] * 60 + ["premium"] * 40
    return Baseline(
        rows=100,
        features={"tenure": numeric_summary(tenure), "plan": categorical_summary(plans)},
        prediction=categorical_summary(["no"] * 70 + ["yes"] * 30),
        prediction_rows=100,
        positive_probability=numeric_summary([i / 100 for i in range(100)]),
    )


def test_live_data_drawn_like_the_training_data_does_not_drift() -> None:
    records = [
        record({"tenure": t, "plan": "basic" if t < 60 else "premium"}, label="no" if t < 70 else "yes")
        for t in range(100)
    ]
    scores = feature_drift(churn_baseline(), records)
    assert set(scores) == {"tenure", "plan"}
    assert scores["tenure"].psi == pytest.approx(0.0, abs=1e-12)
    assert scores["plan"].psi == pytest.approx(0.0, abs=1e-12)


def test_feature_drift_finds_the_shifted_feature() -> None:
    records = [record({"tenure": 95 + t % 5, "plan": "basic" if t < 60 else "premium"}) for t in range(100)]
    scores = feature_drift(churn_baseline(), records)
    assert scores["tenure"].psi > 1.0
    assert scores["plan"].psi == pytest.approx(0.0, abs=1e-12)
    assert most_drifted(scores) == [("tenure", scores["tenure"].psi), ("plan", scores["plan"].psi)]


def test_absent_and_non_numeric_values_count_as_missing() -> None:
    baseline = Baseline(
        rows=4,
        features={"x": NumericSummary(edges=(1.0,), proportions=(0.5, 0.5), missing=0.0)},
        prediction=categorical_summary(["a"]),
        prediction_rows=1,
    )
    records = [record({"x": 0}), record({"x": 2}), record({}), record({"x": "3"}), record({"x": True})]
    score = feature_drift(baseline, records)["x"]
    assert score.actual == pytest.approx((0.2, 0.2, 0.6))


def test_prediction_drift_of_a_binary_classifier_covers_labels_and_positive_probability() -> None:
    records = [record({}, label="yes", probabilities={"no": 0.05, "yes": 0.95}) for _ in range(50)]
    scores = prediction_drift(churn_baseline(), records, "classification", ["no", "yes"])
    assert set(scores) == {"label", "positive_probability"}
    # All "yes" against 70/30: the label PSI by hand.
    by_hand = (EPSILON - 0.7) * math.log(EPSILON / 0.7) + (1.0 - 0.3) * math.log(1.0 / 0.3)
    assert scores["label"].psi == pytest.approx(by_hand)
    assert scores["positive_probability"].psi > 1.0


def test_an_unseen_predicted_label_falls_under_other() -> None:
    records = [record({}, label="maybe") for _ in range(10)]
    scores = prediction_drift(churn_baseline(), records, "classification", ["maybe", "no", "yes"])
    assert set(scores) == {"label"}
    assert OTHER_CATEGORY in scores["label"].bins


def test_prediction_drift_of_a_regressor_uses_the_predicted_values() -> None:
    baseline = Baseline(
        rows=100,
        features={},
        prediction=numeric_summary([float(v) for v in range(100)]),
        prediction_rows=100,
    )
    same = prediction_drift(baseline, [record({}, value=float(v)) for v in range(100)], "regression", [])
    assert same["value"].psi == pytest.approx(0.0, abs=1e-12)
    shifted = prediction_drift(baseline, [record({}, value=500.0) for _ in range(100)], "regression", [])
    assert shifted["value"].psi > 1.0
