"""The training data's data-quality baseline, in SageMaker Model Monitor's formats: ``statistics.json`` and the
``constraints.json`` it suggests (:mod:`functions.common.constraints`), written into the bundle before it is sealed.

Computed on the model's inputs (every labelled row, as the drift baseline is): numeric features as the float32
values the model sees, missing when NaN; categorical features as text, missing when
:data:`~functions.common.bundle.MISSING_CATEGORY`. A numeric feature is ``Integral`` when every present value is a
whole number, else ``Fractional``; a categorical one is ``String``, and so is a boolean one, of ``"false"`` and
``"true"`` (the text of a captured JSON boolean).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from functions.common.bundle import CONSTRAINTS_FILE, MISSING_CATEGORY, STATISTICS_FILE
from functions.common.constraints import (
    FeatureStatistics,
    NumericStatistics,
    Statistics,
    StringStatistics,
    suggest_constraints,
)
from training.feature_spec import FeatureSpec
from training.features import boolean_texts


def _numeric(name: str, column: pd.Series) -> FeatureStatistics:
    values = column.to_numpy(np.float64)
    present = values[np.isfinite(values)]
    whole = bool(present.size) and bool(np.all(present == np.floor(present)))
    if present.size:
        summary = (float(present.mean()), float(present.sum()), float(present.std()), present.min(), present.max())
    else:
        summary = (0.0, 0.0, 0.0, 0.0, 0.0)
    mean, total, std_dev, low, high = (float(value) for value in summary)
    stats = NumericStatistics(int(present.size), int(values.size - present.size), mean, total, std_dev, low, high)
    return FeatureStatistics(name, "Integral" if whole else "Fractional", stats)


def _categorical(name: str, column: pd.Series) -> FeatureStatistics:
    text = column.astype(str)
    present = text[text != MISSING_CATEGORY]
    counts = present.value_counts(sort=False)
    # Most frequent first, ties by value: the same file for the same data.
    ordered = sorted(
        ((str(value), int(count)) for value, count in counts.items()), key=lambda item: (-item[1], item[0])
    )
    stats = StringStatistics(len(present), len(text) - len(present), len(ordered), tuple(ordered))
    return FeatureStatistics(name, "String", stats)


def _feature(name: str, kind: str, column: pd.Series) -> FeatureStatistics:
    if kind == "numeric":
        return _numeric(name, column)
    if kind == "boolean":  # a String of "false"/"true", as a capture holds a JSON boolean
        return _categorical(name, boolean_texts(column).fillna(MISSING_CATEGORY))
    return _categorical(name, column)


def training_statistics(inputs: pd.DataFrame, spec: FeatureSpec) -> Statistics:
    features = tuple(_feature(name, kind, inputs[name]) for name, kind in spec.types.items())
    return Statistics(len(inputs), features)


def write_data_quality(model_dir: Path, inputs: pd.DataFrame, spec: FeatureSpec) -> Statistics:
    """Write ``statistics.json`` and ``constraints.json`` into ``model_dir`` (before the bundle is sealed, which
    records their checksums)."""
    statistics = training_statistics(inputs, spec)
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / STATISTICS_FILE).write_bytes(statistics.to_json())
    (model_dir / CONSTRAINTS_FILE).write_bytes(suggest_constraints(statistics).to_json())
    return statistics
