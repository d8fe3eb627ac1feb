"""PSI maths: known values worked out by hand, empty and one-sided bins, unseen categories, missing values; and the
live side counted by the drift query, run on captures in the hourly layout."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pandas as pd
import pytest

from functions.common.athena import Athena
from functions.common.bundle import MISSING_CATEGORY, Task
from functions.common.distribution import (
    OTHER_CATEGORY,
    Baseline,
    CategoricalSummary,
    NumericSummary,
    categorical_summary,
    numeric_summary,
)
from functions.common.records import PredictionRecord
from functions.monitor import queries
from functions.monitor.drift import (
    EPSILON,
    MISSING,
    MISSING_BIN,
    DriftScore,
    compare,
    drift_scores,
    live_summary,
    most_drifted,
    psi,
)
from functions.monitor.run import count_live
from tests.monitor.world import write_captures
from training.features import boolean_texts

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

NOW = datetime.now(UTC).replace(microsecond=0)
SERVED = NOW - timedelta(minutes=10)


def record(features: dict[str, Any], **answer: Any) -> PredictionRecord:
    return PredictionRecord(
        prediction_id="0" * 32, time=SERVED.isoformat(), model_version="v1", features=features, **answer
    )


def counted(values: Sequence[Any], summary: NumericSummary | CategoricalSummary) -> dict[int, int]:
    """Bin counts of ``values`` as the drift query numbers them (test of the maths alone)."""
    counts: dict[int, int] = {}
    for value in values:
        if isinstance(summary, NumericSummary):
            index = MISSING if value is None else sum(edge < value for edge in summary.edges)
        else:
            categories = list(summary.proportions)
            index = MISSING if value is None else categories.index(value) if value in categories else len(categories)
        counts[index] = counts.get(index, 0) + 1
    return counts


def window_drift(
    s3: S3Client,
    athena: Athena,
    baseline: Baseline,
    records: Sequence[PredictionRecord],
    task: Task = "classification",
    classes: Sequence[str] = ("no", "yes"),
    missing_tokens: Sequence[str] = (),
) -> tuple[dict[str, DriftScore], dict[str, DriftScore]]:
    """Feature and prediction drift of ``records`` (captured in the window), counted by the drift query."""
    write_captures(s3, records)
    features = queries.feature_distributions(baseline, missing_tokens)
    predictions = queries.prediction_distributions(baseline, task, classes)
    live, _ = count_live(athena, queries.Window("v1", NOW - timedelta(hours=1), NOW), features, predictions)
    assert live.captured == len(records)
    return (
        drift_scores(baseline.features, live.features),
        drift_scores({d.name: d.summary for d in predictions}, live.predictions),
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
    live = live_summary(baseline, counted([5, 5, 5, 15, None, None, None, None], baseline))
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
    score = compare(baseline, live_summary(baseline, counted([0, 2, 3, 50], baseline)))
    assert score is not None
    assert score.bins == ("<= 1", "(1, 2.5]", "(2.5, 40]", "> 40", MISSING_BIN)
    assert score.psi == 0.0


def test_unseen_categories_are_compared_under_other() -> None:
    baseline = CategoricalSummary({"a": 0.5, "b": 0.5}, missing=0.0)
    score = compare(baseline, live_summary(baseline, counted(["a", "a", "c", "d"], baseline)))
    assert score is not None
    assert score.bins == ("a", "b", OTHER_CATEGORY, MISSING_BIN)
    assert score.expected == pytest.approx((0.5, 0.5, 0.0, 0.0))
    assert score.actual == pytest.approx((0.5, 0.0, 0.5, 0.0))
    # "a" is unchanged; "b" vanished and "__other__" appeared: two one-sided bins.
    by_hand = (EPSILON - 0.5) * math.log(EPSILON / 0.5) + (0.5 - EPSILON) * math.log(0.5 / EPSILON)
    assert score.psi == pytest.approx(by_hand)


def test_categorical_missing_share_is_its_own_bin() -> None:
    baseline = CategoricalSummary({"a": 1.0}, missing=0.5)
    score = compare(baseline, live_summary(baseline, counted(["a", None], baseline)))
    assert score is not None
    assert score.actual == pytest.approx((0.5, 0.5))
    assert score.psi == 0.0


def test_no_values_on_either_side_gives_no_score_rather_than_zero() -> None:
    empty = NumericSummary(edges=(), proportions=(0.0,), missing=0.0)
    assert compare(empty, live_summary(empty, counted([1.0, 2.0], empty))) is None
    baseline = NumericSummary(edges=(1.0,), proportions=(0.5, 0.5), missing=0.0)
    assert compare(baseline, live_summary(baseline, {})) is None


def test_comparison_refuses_live_values_not_summarised_like_the_baseline() -> None:
    baseline = NumericSummary(edges=(1.0,), proportions=(0.5, 0.5), missing=0.0)
    with pytest.raises(ValueError, match="live_summary"):
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


def test_live_data_drawn_like_the_training_data_does_not_drift(s3: S3Client, athena: Athena) -> None:
    records = [
        record({"tenure": t, "plan": "basic" if t < 60 else "premium"}, label="no" if t < 70 else "yes")
        for t in range(100)
    ]
    scores, _ = window_drift(s3, athena, churn_baseline(), records)
    assert set(scores) == {"tenure", "plan"}
    assert scores["tenure"].psi == pytest.approx(0.0, abs=1e-12)
    assert scores["plan"].psi == pytest.approx(0.0, abs=1e-12)


def test_feature_drift_finds_the_shifted_feature(s3: S3Client, athena: Athena) -> None:
    records = [record({"tenure": 95 + t % 5, "plan": "basic" if t < 60 else "premium"}) for t in range(100)]
    scores, _ = window_drift(s3, athena, churn_baseline(), records)
    assert scores["tenure"].psi > 1.0
    assert scores["plan"].psi == pytest.approx(0.0, abs=1e-12)
    assert most_drifted(scores) == [("tenure", scores["tenure"].psi), ("plan", scores["plan"].psi)]


def test_absent_and_non_numeric_values_count_as_missing(s3: S3Client, athena: Athena) -> None:
    baseline = Baseline(
        rows=4,
        features={"x": NumericSummary(edges=(1.0,), proportions=(0.5, 0.5), missing=0.0)},
        prediction=categorical_summary(["a"]),
        prediction_rows=1,
    )
    records = [record({"x": 0}), record({"x": 2}), record({}), record({"x": "3"}), record({"x": True})]
    score = window_drift(s3, athena, baseline, records)[0]["x"]
    assert score.actual == pytest.approx((0.2, 0.2, 0.6))


def test_a_boolean_feature_captured_as_json_true_false_is_binned_as_its_training_baseline(
    s3: S3Client, athena: Athena
) -> None:
    # Training summarises a boolean feature's 0/1 inputs as the text of a JSON boolean.
    trained = boolean_texts(pd.Series([1.0, 1.0, 0.0, math.nan]))
    baseline = Baseline(
        rows=4,
        features={"paperless": categorical_summary(trained)},
        prediction=categorical_summary(["a"]),
        prediction_rows=1,
    )
    records = [
        record({"paperless": True}),
        record({"paperless": True}),
        record({"paperless": False}),
        record({"paperless": None}),
    ]
    score = window_drift(s3, athena, baseline, records)[0]["paperless"]
    assert score.actual == pytest.approx(score.expected)
    assert score.psi == pytest.approx(0.0, abs=1e-12)


# Trained with missing_values=["NA"]: the empty and "NA" cells were missing, as serving reads those strings.
REGION_BASELINE = Baseline(
    rows=4,
    features={"region": categorical_summary(["EU", "APAC", MISSING_CATEGORY, MISSING_CATEGORY])},
    prediction=categorical_summary(["a"]),
    prediction_rows=1,
)
REGION_RECORDS = [record({"region": region}) for region in ("EU", "APAC", "NA", "")]


def test_a_category_sent_as_one_of_the_champions_missing_tokens_is_binned_as_missing_as_training_read_it(
    s3: S3Client, athena: Athena
) -> None:
    score = window_drift(s3, athena, REGION_BASELINE, REGION_RECORDS, missing_tokens=("", "NA"))[0]["region"]
    assert score.actual == pytest.approx(score.expected)


def test_a_category_that_is_no_missing_token_of_the_champion_is_a_category(s3: S3Client, athena: Athena) -> None:
    score = window_drift(s3, athena, REGION_BASELINE, REGION_RECORDS, missing_tokens=("",))[0]["region"]
    assert score.actual != pytest.approx(score.expected)


def test_prediction_drift_of_a_binary_classifier_covers_labels_and_positive_probability(
    s3: S3Client, athena: Athena
) -> None:
    records = [record({}, label="yes", probabilities={"no": 0.05, "yes": 0.95}) for _ in range(50)]
    _, scores = window_drift(s3, athena, churn_baseline(), records)
    assert set(scores) == {"label", "positive_probability"}
    # All "yes" against 70/30: the label PSI by hand.
    by_hand = (EPSILON - 0.7) * math.log(EPSILON / 0.7) + (1.0 - 0.3) * math.log(1.0 / 0.3)
    assert scores["label"].psi == pytest.approx(by_hand)
    assert scores["positive_probability"].psi > 1.0


def test_an_unseen_predicted_label_falls_under_other(s3: S3Client, athena: Athena) -> None:
    records = [record({}, label="maybe") for _ in range(10)]
    _, scores = window_drift(s3, athena, churn_baseline(), records, classes=["maybe", "no", "yes"])
    assert set(scores) == {"label"}
    assert OTHER_CATEGORY in scores["label"].bins


def test_prediction_drift_of_a_regressor_uses_the_predicted_values(s3: S3Client, athena: Athena) -> None:
    baseline = Baseline(
        rows=100,
        features={},
        prediction=numeric_summary([float(v) for v in range(100)]),
        prediction_rows=100,
    )
    same = window_drift(s3, athena, baseline, [record({}, value=float(v)) for v in range(100)], "regression", [])
    assert same[1]["value"].psi == pytest.approx(0.0, abs=1e-12)


def test_prediction_drift_of_a_regressor_finds_shifted_values(s3: S3Client, athena: Athena) -> None:
    baseline = Baseline(
        rows=100,
        features={},
        prediction=numeric_summary([float(v) for v in range(100)]),
        prediction_rows=100,
    )
    shifted = window_drift(s3, athena, baseline, [record({}, value=500.0) for _ in range(100)], "regression", [])
    assert shifted[1]["value"].psi > 1.0


def test_sql_bins_match_the_baseline_binning_of_training_at_every_edge(s3: S3Client, athena: Athena) -> None:
    """Values on, just below and just above each edge land where numpy.searchsorted(side="left") puts them, and
    categories the way the baseline counts them (``__missing__`` and null missing, unseen under ``__other__``)."""
    tenure = numeric_summary(list(range(100)))
    edges = list(tenure.edges)
    values: list[Any] = [v for edge in edges for v in (edge, math.nextafter(edge, -math.inf), edge + 0.5)]
    values += [-1e300, 1e300, None]
    plans: list[Any] = ["basic", "premium", "gold", "__missing__", None, "basic"]
    baseline = Baseline(
        rows=100,
        features={"tenure": tenure, "plan": categorical_summary(["basic", "premium"])},
        prediction=categorical_summary(["no"]),
        prediction_rows=100,
    )
    records = [record({"tenure": v, "plan": plans[i % len(plans)]}) for i, v in enumerate(values)]
    scores, _ = window_drift(s3, athena, baseline, records)

    expected_tenure = compare(tenure, live_summary(tenure, counted(values, tenure)))
    assert expected_tenure is not None
    assert scores["tenure"].actual == pytest.approx(expected_tenure.actual)
    plan_values = [None if p == "__missing__" else p for p in (plans[i % len(plans)] for i in range(len(values)))]
    plan = baseline.features["plan"]
    expected_plan = compare(plan, live_summary(plan, counted(plan_values, plan)))
    assert expected_plan is not None
    assert scores["plan"].bins == expected_plan.bins == ("basic", "premium", OTHER_CATEGORY, MISSING_BIN)
    assert scores["plan"].actual == pytest.approx(expected_plan.actual)


def test_features_named_with_quotes_and_keywords_are_binned_like_any_other(s3: S3Client, athena: Athena) -> None:
    names = ["it's", 'say "hi"', "a.b", "x[0]", "back`tick", "semi;colon", "select", "ünï", "features"]
    baseline = Baseline(
        rows=100,
        features={name: numeric_summary(list(range(100))) for name in names},
        prediction=categorical_summary(["no"]),
        prediction_rows=100,
    )
    records = [record({name: 95 + t % 5 for name in names}) for t in range(20)]
    scores, _ = window_drift(s3, athena, baseline, records)
    assert set(scores) == set(names)
    assert len({round(score.psi, 9) for score in scores.values()}) == 1
    assert next(iter(scores.values())).psi > 1.0
