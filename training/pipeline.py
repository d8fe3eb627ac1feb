"""The scikit-learn pipeline: per-type preprocessing and one of four estimators.

Only the features the model uses (:attr:`training.feature_spec.FeatureSpec.model_types`) are selected;
the pipeline ignores any other column it is given. Numeric features: median imputation, then (for the linear
models only) standard scaling. Categorical features arrive with ``MISSING_CATEGORY`` already in place of
nulls (:func:`training.features.model_inputs`, the same as serving feeds the ONNX model), then one-hot
encoding that ignores categories unseen in training; a capped column (``FeatureSpec.capped``) is encoded on
its kept levels only, so the others count as unseen. (scikit-learn's own ``max_categories`` has no ONNX
converter.) Every step has an skl2onnx converter; the one-hot output is dense because the histogram-based
estimators refuse sparse input.

Why trees get no scaler: scaling cannot change a tree's splits, but it can break ONNX parity. ONNX scales
in float32, scikit-learn in float64 before casting to float32 for the tree, and the one-ulp difference
flips comparisons at split thresholds (seen: 0.04 probability differences on a quarter of the rows).

Why hist_gradient_boosting gets its numbers cast to float32 first: it compares float64 values where the other
trees cast to float32, so its median imputation would fill in a value ONNX (float32) cannot represent, and
sit on the other side of a split threshold than ONNX's rounded copy. Cast first, the median is a float32
already (the thresholds are dealt with by :mod:`training.onnx_export`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import joblib
import numpy as np
import pandas as pd
from skl2onnx.sklapi import CastTransformer
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
from sklearn.utils._openmp_helpers import _openmp_effective_n_threads
from sklearn.utils.class_weight import compute_sample_weight

from functions.common.bundle import Task
from training.feature_spec import FeatureSpec
from training.hyperparameters import ClassWeight, Knob

PREPROCESS_STEP = "preprocess"
# The ColumnTransformer's branches: their names are how training.bundle_writer finds the encoders.
NUMERIC_BRANCH = "numeric"
CATEGORICAL_BRANCH = "categorical"
CAPPED_BRANCH = "capped"
SCALED_ALGORITHMS = frozenset({"logistic_regression"})
FLOAT64_ALGORITHMS = frozenset({"hist_gradient_boosting"})
ESTIMATOR_STEP = "estimator"


def build_estimator(
    task: Task, algorithm: str, knobs: Mapping[str, Knob], seed: int, class_weight: ClassWeight | None = None
) -> Any:
    params: dict[str, Any] = dict(knobs)
    if class_weight is not None and task == "classification" and algorithm != "gradient_boosting":
        params["class_weight"] = class_weight  # gradient_boosting has none: see fit
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
    if algorithm == "random_forest":
        # Trees are fitted in parallel on every core (hist_gradient_boosting uses them all through OpenMP; classic
        # gradient boosting cannot: each tree fits the previous ones' errors).
        params["n_jobs"] = -1
    return (classifier if task == "classification" else regressor)(random_state=seed, **params)


def parallelism() -> str:
    """The cores a forest's ``n_jobs=-1`` resolves to, and the OpenMP threads hist_gradient_boosting will use (as it
    computes them: OMP_NUM_THREADS would cap them, and nothing sets it), for the job's log."""
    return f"{joblib.cpu_count()} cores, {_openmp_effective_n_threads()} OpenMP threads"


def _one_hot(categories: Any = "auto") -> OneHotEncoder:
    return OneHotEncoder(categories=categories, handle_unknown="ignore", sparse_output=False)


def build_pipeline(
    task: Task,
    algorithm: str,
    knobs: Mapping[str, Knob],
    spec: FeatureSpec,
    seed: int,
    class_weight: ClassWeight | None = None,
) -> Pipeline:
    types = spec.model_types
    # Booleans are 0/1 floats (functions.common.bundle.FeatureType): imputed like numbers.
    numeric = [name for name, kind in types.items() if kind != "categorical"]
    categorical = [name for name, kind in types.items() if kind == "categorical" and name not in spec.capped]
    capped = [name for name, kind in types.items() if kind == "categorical" and name in spec.capped]
    branches: list[tuple[str, Any, list[str]]] = []
    if numeric:
        steps: list[tuple[str, Any]] = []
        if algorithm in FLOAT64_ALGORITHMS:
            steps.append(("float32", CastTransformer(dtype=np.float32)))
        # keep_empty_features: an all-missing column must not vanish, or the ONNX inputs would not line up.
        steps.append(("impute", SimpleImputer(strategy="median", keep_empty_features=True)))
        if algorithm in SCALED_ALGORITHMS:
            steps.append(("scale", StandardScaler()))
        branches.append((NUMERIC_BRANCH, Pipeline(steps), numeric))
    if categorical:
        branches.append((CATEGORICAL_BRANCH, _one_hot(), categorical))
    if capped:
        branches.append((CAPPED_BRANCH, _one_hot([list(spec.capped[name]) for name in capped]), capped))
    return Pipeline(
        [
            (PREPROCESS_STEP, ColumnTransformer(branches)),
            (ESTIMATOR_STEP, build_estimator(task, algorithm, knobs, seed, class_weight)),
        ]
    )


def fit(pipeline: Pipeline, inputs: pd.DataFrame, target: pd.Series, class_weight: ClassWeight | None) -> None:
    """Fit the pipeline. Classic gradient boosting takes no ``class_weight``, so its rows carry their class's weight
    instead (the same weights: scikit-learn's other estimators multiply them into the rows' weights too)."""
    if class_weight is not None and isinstance(pipeline.named_steps[ESTIMATOR_STEP], GradientBoostingClassifier):
        weights = compute_sample_weight(class_weight, target)
        pipeline.fit(inputs, target, **{f"{ESTIMATOR_STEP}__sample_weight": weights})
    else:
        pipeline.fit(inputs, target)
