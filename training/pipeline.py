"""The scikit-learn pipeline: per-type preprocessing and one of four estimators.

Numeric features: median imputation, then (for the linear models only) standard scaling. Categorical
features arrive with
``MISSING_CATEGORY`` already in place of nulls (:func:`training.features.model_inputs`, the same as
serving feeds the ONNX model), then one-hot encoding that ignores categories unseen in training.
Every step has an skl2onnx converter; the one-hot output is dense because the histogram-based
estimators refuse sparse input.

Why trees get no scaler: scaling cannot change a tree's splits, but it can break ONNX parity. ONNX scales
in float32, scikit-learn in float64 before casting to float32 for the tree, and the one-ulp difference
flips comparisons at split thresholds (seen: 0.04 probability differences on a quarter of the rows).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from functions.common.bundle import FeatureType, Task
from training.hyperparameters import Knob

PREPROCESS_STEP = "preprocess"
SCALED_ALGORITHMS = frozenset({"logistic_regression"})
ESTIMATOR_STEP = "estimator"


def build_estimator(task: Task, algorithm: str, knobs: Mapping[str, Knob], seed: int) -> Any:
    params = dict(knobs)
    if algorithm == "logistic_regression":
        if task == "classification":
            return LogisticRegression(**params)
        # Ridge is the regression counterpart; C keeps its meaning as inverse regularisation strength.
        return Ridge(alpha=1.0 / params.pop("C", 1.0), **params)
    estimators = {
        "random_forest": (RandomForestClassifier, RandomForestRegressor),
        "gradient_boosting": (GradientBoostingClassifier, GradientBoostingRegressor),
        "hist_gradient_boosting": (HistGradientBoostingClassifier, HistGradientBoostingRegressor),
    }
    classifier, regressor = estimators[algorithm]
    return (classifier if task == "classification" else regressor)(random_state=seed, **params)


def build_pipeline(
    task: Task, algorithm: str, knobs: Mapping[str, Knob], feature_types: Mapping[str, FeatureType], seed: int
) -> Pipeline:
    numeric = [name for name, kind in feature_types.items() if kind == "numeric"]
    categorical = [name for name, kind in feature_types.items() if kind == "categorical"]
    branches: list[tuple[str, Any, list[str]]] = []
    if numeric:
        # keep_empty_features: an all-missing column must not vanish, or the ONNX inputs would not line up.
        steps: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy="median", keep_empty_features=True))]
        if algorithm in SCALED_ALGORITHMS:
            steps.append(("scale", StandardScaler()))
        branches.append(("numeric", Pipeline(steps), numeric))
    if categorical:
        branches.append(("categorical", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical))
    return Pipeline(
        [
            (PREPROCESS_STEP, ColumnTransformer(branches)),
            (ESTIMATOR_STEP, build_estimator(task, algorithm, knobs, seed)),
        ]
    )
