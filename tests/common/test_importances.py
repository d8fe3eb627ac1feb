"""Permutation importances: a feature the label depends on outranks noise, on a bounded sample, for both tasks."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from sklearn.linear_model import LinearRegression, LogisticRegression

from functions.common.importances import (
    MAX_PREDICTED_ROWS,
    MAX_ROWS,
    REPEATS,
    Importances,
    permutation_importances,
)
from functions.common.scoring import Predictions


def _by_feature(found: Importances | None) -> dict[str, tuple[float, float]]:
    """Each feature's mean drop and its spread, all defined."""
    assert found is not None
    pairs = {}
    for importance in found.features:
        assert importance.mean is not None and importance.std is not None
        pairs[importance.feature] = (importance.mean, importance.std)
    return pairs


def test_the_feature_that_determines_the_label_is_clearly_more_important_than_noise() -> None:
    rng = np.random.default_rng(1)
    signal, noise = rng.standard_normal(3000), rng.standard_normal(3000)
    truth = np.where(signal + 0.2 * rng.standard_normal(3000) > 0, "yes", "no").astype(object)
    model = LogisticRegression().fit(np.column_stack([signal, noise]), truth)

    def predict(columns: Mapping[str, np.ndarray]) -> Predictions:
        rows = np.column_stack([columns["signal"], columns["noise"]])
        return Predictions(tuple(model.classes_), probabilities=model.predict_proba(rows))

    found = permutation_importances(predict, "classification", truth, {"signal": signal, "noise": noise}, "roc_auc")

    importances = _by_feature(found)
    assert found is not None and found.baseline > 0.95
    assert [f.feature for f in found.features] == ["signal", "noise"]  # most important first
    assert importances["signal"][0] > 0.3
    assert abs(importances["noise"][0]) < 0.01
    assert importances["signal"][0] > 10 * importances["signal"][1]  # the spread is small beside the drop


def test_importances_are_measured_on_at_most_the_bounded_sample_and_are_seeded() -> None:
    rng = np.random.default_rng(2)
    rows = MAX_ROWS * 3
    columns = {"a": rng.standard_normal(rows), "b": rng.standard_normal(rows), "c": rng.standard_normal(rows)}
    truth = (columns["a"] > 0).astype(str).astype(object)
    calls: list[int] = []

    def predict(part: Mapping[str, np.ndarray]) -> Predictions:
        calls.append(len(part["a"]))
        positive = 1 / (1 + np.exp(-4 * part["a"]))
        return Predictions(("False", "True"), probabilities=np.column_stack([1 - positive, positive]))

    found = permutation_importances(predict, "classification", truth, columns, "accuracy")
    again = permutation_importances(predict, "classification", truth, columns, "accuracy")

    assert found is not None and found.rows == MAX_ROWS and found.repeats == REPEATS
    assert max(calls) == MAX_ROWS * REPEATS  # one call per feature, its shuffles stacked
    assert sum(calls) == 2 * (MAX_ROWS + len(columns) * MAX_ROWS * REPEATS)
    assert found == again


def test_with_many_features_the_sample_shrinks_so_the_rows_predicted_stay_bounded() -> None:
    rng = np.random.default_rng(4)
    columns = {f"x{i}": rng.standard_normal(MAX_ROWS) for i in range(60)}
    truth = (columns["x0"] > 0).astype(str).astype(object)
    predicted: list[int] = []

    def predict(part: Mapping[str, np.ndarray]) -> Predictions:
        predicted.append(len(part["x0"]))
        positive = 1 / (1 + np.exp(-4 * part["x0"]))
        return Predictions(("False", "True"), probabilities=np.column_stack([1 - positive, positive]))

    found = permutation_importances(predict, "classification", truth, columns, "roc_auc")

    assert found is not None and found.rows == MAX_PREDICTED_ROWS // (60 * REPEATS + 1) < MAX_ROWS
    assert sum(predicted) <= MAX_PREDICTED_ROWS
    assert found.features[0].feature == "x0"


def test_a_regression_model_gets_importances_of_a_lower_is_better_metric_as_positive_drops() -> None:
    rng = np.random.default_rng(3)
    size, width = rng.standard_normal(1500), rng.standard_normal(1500)
    region = rng.choice(np.array(["north", "south"], dtype=object), 1500)
    truth = 3 * size + 0.1 * rng.standard_normal(1500)
    model = LinearRegression().fit(np.column_stack([size, width]), truth)

    def predict(columns: Mapping[str, np.ndarray]) -> Predictions:
        return Predictions(values=model.predict(np.column_stack([columns["size"], columns["width"]])))

    found = permutation_importances(
        predict, "regression", truth, {"size": size, "width": width, "region": region}, "rmse", max_rows=500
    )

    importances = _by_feature(found)
    assert found is not None and found.rows == 500 and found.metric == "rmse"
    assert importances["size"][0] > 2  # shuffling it makes rmse worse by about 3 * sqrt(2)
    assert abs(importances["width"][0]) < 0.05
    assert importances["region"] == (0.0, 0.0)  # the model does not read it


def test_no_importances_where_the_metric_is_undefined() -> None:
    truth = np.array(["yes"] * 10, dtype=object)

    def predict(columns: Mapping[str, np.ndarray]) -> Predictions:
        return Predictions(("no", "yes"), probabilities=np.tile([0.2, 0.8], (len(columns["a"]), 1)))

    assert permutation_importances(predict, "classification", truth, {"a": np.zeros(10)}, "roc_auc") is None
