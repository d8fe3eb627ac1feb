"""The drift baseline stored in the bundle metadata (format: :mod:`functions.common.distribution`).

Feature distributions come from every labelled training row; prediction distributions from the holdout,
because predictions on rows the model was fitted on are over-confident and would not look like live traffic.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from functions.common.bundle import FeatureType, Task
from functions.common.distribution import Baseline, Summary, categorical_summary, numeric_summary


def build_baseline(
    inputs: pd.DataFrame,
    feature_types: Mapping[str, FeatureType],
    model: Any,
    task: Task,
    holdout: pd.DataFrame,
) -> Baseline:
    features: dict[str, Summary] = {
        name: numeric_summary(inputs[name].to_numpy()) if kind == "numeric" else categorical_summary(inputs[name])
        for name, kind in feature_types.items()
    }
    if task == "regression":
        return Baseline(len(inputs), features, numeric_summary(model.predict(holdout)), len(holdout))
    probabilities = model.predict_proba(holdout)
    classes = np.asarray([str(c) for c in model.classes_], dtype=object)
    positive = numeric_summary(probabilities[:, 1]) if len(classes) == 2 else None
    labels = categorical_summary(classes[probabilities.argmax(axis=1)])
    return Baseline(len(inputs), features, labels, len(holdout), positive_probability=positive)
