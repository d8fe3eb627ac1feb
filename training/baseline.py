"""The drift baseline stored in the bundle metadata (format: :mod:`functions.common.distribution`).

Feature distributions come from every labelled training row; prediction distributions from the holdout,
because predictions on rows the model was fitted on are over-confident and would not look like live traffic.
A capped categorical (:mod:`training.feature_spec`) is summarised on the levels the model tells apart, the rest
under ``OTHER_CATEGORY``, as the monitor counts live values outside the baseline: thousands of rare levels
would only bloat the metadata.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from functions.common.bundle import MISSING_CATEGORY, Task
from functions.common.distribution import OTHER_CATEGORY, Baseline, Summary, categorical_summary, numeric_summary
from functions.common.scoring import thresholded
from training.feature_spec import FeatureSpec
from training.features import boolean_texts


def _summary(name: str, column: pd.Series, spec: FeatureSpec) -> Summary:
    if spec.types[name] == "numeric":
        return numeric_summary(column.to_numpy())
    if spec.types[name] == "boolean":
        return categorical_summary(boolean_texts(column))
    kept = spec.capped.get(name)
    if kept is None:
        return categorical_summary(column)
    return categorical_summary(column.where(column.isin([*kept, MISSING_CATEGORY]), OTHER_CATEGORY))


def build_baseline(
    inputs: pd.DataFrame,
    spec: FeatureSpec,
    model: Any,
    task: Task,
    holdout: pd.DataFrame,
    positive: str | None = None,
    threshold: float | None = None,
) -> Baseline:
    """``positive``: a binary model's positive class, whose probability is tracked (None: the second class);
    ``threshold``: its decision threshold, by which the model answers (None: the most probable class)."""
    features = {name: _summary(name, inputs[name], spec) for name in spec.types}
    if task == "regression":
        return Baseline(len(inputs), features, numeric_summary(model.predict(holdout)), len(holdout))
    probabilities = model.predict_proba(holdout)
    classes = np.asarray([str(c) for c in model.classes_], dtype=object)
    column = list(classes).index(positive) if positive is not None else 1
    answers = probabilities.argmax(axis=1) if threshold is None else thresholded(probabilities, column, threshold)
    probability = numeric_summary(probabilities[:, column]) if len(classes) == 2 else None
    labels = categorical_summary(classes[answers])
    return Baseline(len(inputs), features, labels, len(holdout), positive_probability=probability)
