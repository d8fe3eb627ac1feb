"""Live quality: the metrics over labelled predictions, with values worked out by hand."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import pytest

from functions.monitor.quality import Confusion, Labelled, accuracy, f1, live_quality, mae, rmse


def confusion(truth: Sequence[str], predicted: Sequence[str]) -> Confusion:
    return Counter(zip(truth, predicted, strict=True))


def test_accuracy_is_the_share_of_matching_labels() -> None:
    assert accuracy(confusion(["a", "b", "a", "b"], ["a", "b", "b", "b"])) == 0.75


def test_binary_f1_is_the_f1_of_the_second_class() -> None:
    truth = ["yes", "yes", "yes", "no", "no", "no"]
    predicted = ["yes", "yes", "no", "yes", "no", "no"]
    # positive "yes": tp 2, fp 1, fn 1 -> F1 = 2*2 / (2*2 + 1 + 1) = 2/3
    assert f1(confusion(truth, predicted), ["no", "yes"]) == pytest.approx(2 / 3)


def test_f1_without_a_true_positive_is_zero() -> None:
    assert f1(confusion(["no", "no"], ["no", "no"]), ["no", "yes"]) == 0.0


def test_multiclass_f1_is_the_macro_average_over_labels_seen() -> None:
    truth = ["a", "a", "b", "c"]
    predicted = ["a", "b", "b", "b"]
    # a: tp 1, fp 0, fn 1 -> 2/3; b: tp 1, fp 2, fn 0 -> 2/4; c: tp 0 -> 0. Mean: (2/3 + 1/2 + 0) / 3.
    assert f1(confusion(truth, predicted), ["a", "b", "c"]) == pytest.approx((2 / 3 + 1 / 2) / 3)


def test_rmse_and_mae_by_hand() -> None:
    # errors 1, 0, -2, 0
    assert rmse(4, 1 + 0 + 4 + 0) == pytest.approx(math.sqrt(5 / 4))
    assert mae(4, 1 + 0 + 2 + 0) == pytest.approx(3 / 4)


def test_metrics_of_no_pairs_are_refused() -> None:
    with pytest.raises(ValueError):
        accuracy({})
    with pytest.raises(ValueError):
        f1({}, ["no", "yes"])
    for metric in (rmse, mae):
        with pytest.raises(ValueError):
            metric(0, 0.0)


def test_live_quality_of_a_classifier() -> None:
    labelled = Labelled(count=4, confusion=confusion(["yes", "no", "no", "no"], ["yes", "yes", "no", "no"]))
    quality = live_quality(labelled, "classification", ["no", "yes"])
    # accuracy 3/4; positive "yes": tp 1, fp 1, fn 0 -> F1 2/3
    assert quality == pytest.approx({"accuracy": 0.75, "f1": 2 / 3})


def test_live_quality_of_a_regressor_ignores_predictions_without_a_value() -> None:
    # Two of three labelled predictions have a value: errors 2 and -1.
    labelled = Labelled(count=3, scored=2, squared_error=4 + 1, absolute_error=2 + 1)
    assert live_quality(labelled, "regression", []) == pytest.approx({"rmse": math.sqrt(5 / 2), "mae": 1.5})
    assert live_quality(Labelled(count=1), "regression", []) == {}
    assert live_quality(Labelled(count=1), "classification", ["no", "yes"]) == {}
