"""Live quality: the metrics over labelled predictions, with values worked out by hand."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest

from functions.common.records import FeedbackRecord, PredictionRecord, new_prediction_ids
from functions.monitor.quality import accuracy, f1, live_quality, mae, rmse

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def prediction(prediction_id: str, **answer: Any) -> PredictionRecord:
    return PredictionRecord(prediction_id, "2026-11-27T11:00:00Z", "v1", {}, **answer)


def feedback(prediction_id: str, time: str = "2026-11-27T11:30:00Z", **truth: Any) -> FeedbackRecord:
    return FeedbackRecord(prediction_id, time, **truth)


def test_accuracy_is_the_share_of_matching_labels() -> None:
    assert accuracy(["a", "b", "a", "b"], ["a", "b", "b", "b"]) == 0.75


def test_binary_f1_is_the_f1_of_the_second_class() -> None:
    truth = ["yes", "yes", "yes", "no", "no", "no"]
    predicted = ["yes", "yes", "no", "yes", "no", "no"]
    # positive "yes": tp 2, fp 1, fn 1 -> F1 = 2*2 / (2*2 + 1 + 1) = 2/3
    assert f1(truth, predicted, ["no", "yes"]) == pytest.approx(2 / 3)


def test_f1_without_a_true_positive_is_zero() -> None:
    assert f1(["no", "no"], ["no", "no"], ["no", "yes"]) == 0.0


def test_multiclass_f1_is_the_macro_average_over_labels_seen() -> None:
    truth = ["a", "a", "b", "c"]
    predicted = ["a", "b", "b", "b"]
    # a: tp 1, fp 0, fn 1 -> 2/3; b: tp 1, fp 2, fn 0 -> 2/4; c: tp 0 -> 0. Mean: (2/3 + 1/2 + 0) / 3.
    assert f1(truth, predicted, ["a", "b", "c"]) == pytest.approx((2 / 3 + 1 / 2) / 3)


def test_rmse_and_mae_by_hand() -> None:
    truth, predicted = [1.0, 2.0, 3.0, 4.0], [2.0, 2.0, 1.0, 4.0]
    # errors 1, 0, -2, 0
    assert rmse(truth, predicted) == pytest.approx(math.sqrt(5 / 4))
    assert mae(truth, predicted) == pytest.approx(3 / 4)


def test_metrics_of_no_pairs_are_refused() -> None:
    for metric in (accuracy, rmse, mae):
        with pytest.raises(ValueError):
            metric([], [])


def test_live_quality_of_a_classifier() -> None:
    ids = new_prediction_ids(4, NOW)
    pairs = [
        (prediction(ids[0], label="yes"), feedback(ids[0], label="yes")),
        (prediction(ids[1], label="yes"), feedback(ids[1], label="no")),
        (prediction(ids[2], label="no"), feedback(ids[2], label="no")),
        (prediction(ids[3], label="no"), feedback(ids[3], label="no")),
    ]
    quality = live_quality(pairs, "classification", ["no", "yes"])
    # accuracy 3/4; positive "yes": tp 1, fp 1, fn 0 -> F1 2/3
    assert quality == pytest.approx({"accuracy": 0.75, "f1": 2 / 3})


def test_live_quality_of_a_regressor_ignores_predictions_without_a_value() -> None:
    ids = new_prediction_ids(3, NOW)
    pairs = [
        (prediction(ids[0], value=10.0), feedback(ids[0], value=12.0)),
        (prediction(ids[1], value=5.0), feedback(ids[1], value=4.0)),
        (prediction(ids[2]), feedback(ids[2], value=4.0)),
    ]
    assert live_quality(pairs, "regression", []) == pytest.approx({"rmse": math.sqrt(5 / 2), "mae": 1.5})
    assert live_quality(pairs[2:], "regression", []) == {}
