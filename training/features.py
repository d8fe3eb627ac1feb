"""Feature types and the model's inputs, the same way in training, champion scoring and serving.

The model sees one column per feature: numeric features as floats (NaN for missing), categorical
features as strings (``MISSING_CATEGORY`` for missing). :func:`onnx_feeds` is exactly what serving feeds
the ONNX model.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from functions.common.bundle import MISSING_CATEGORY, PANDAS_NA_SPELLINGS, FeatureType

# An undeclared column is numeric when at least this share of its values parse as numbers; the few that
# do not are then reported as bad values instead of turning the column into a categorical one.
NUMERIC_SHARE = 0.9


def parse_numbers(column: pd.Series) -> tuple[pd.Series, pd.Series]:
    """The column as float64 (NaN where missing or unparseable), and a mask of the bad values.

    A value is bad when present but not a finite number (text, ``inf``).
    """
    if pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
        numbers = column.astype(np.float64)
    else:
        numbers = pd.to_numeric(column, errors="coerce").astype(np.float64)
    bad = column.notna() & ~np.isfinite(numbers)
    return numbers.where(~bad), bad


def na_spellings(column: pd.Series, bad: pd.Series) -> pd.Series:
    """A mask of the ``bad`` values (see :func:`parse_numbers`) that pandas would have read as missing (``NA``,
    ``null``, ``n/a``...): text unless declared in missing_values."""
    return bad & column.isin(PANDAS_NA_SPELLINGS)


def infer_type(column: pd.Series) -> FeatureType:
    """Numeric when ``NUMERIC_SHARE`` of the values present are numbers. pandas' missing spellings count as numbers
    when there is a number: such a column stays numeric, and validation names the token and the fix, instead of
    the column turning categorical because its missing values are spelled ``NA``."""
    present = int(column.notna().sum())
    if present == 0:
        return "numeric"
    _, bad = parse_numbers(column)
    numbers = present - int(bad.sum())
    if numbers == 0:
        return "categorical"
    spelled = int(na_spellings(column, bad).sum())
    return "numeric" if numbers + spelled >= NUMERIC_SHARE * present else "categorical"


def categories(column: pd.Series) -> pd.Series:
    """The column as text, missing values as ``MISSING_CATEGORY``."""
    return column.astype(object).where(column.notna(), MISSING_CATEGORY).map(str)


def float32_values(column: pd.Series) -> pd.Series:
    """Numbers rounded to float32 (kept as float64): serving feeds float32, so training sees the same values."""
    return parse_numbers(column)[0].astype(np.float32).astype(np.float64)


def model_inputs(frame: pd.DataFrame, feature_types: Mapping[str, FeatureType]) -> pd.DataFrame:
    columns = {
        name: float32_values(frame[name]) if kind == "numeric" else categories(frame[name])
        for name, kind in feature_types.items()
    }
    return pd.DataFrame(columns, index=frame.index)


def onnx_feeds(
    inputs: pd.DataFrame, feature_types: Mapping[str, FeatureType], input_names: Mapping[str, str]
) -> dict[str, np.ndarray]:
    """One [N, 1] array per feature, under its ONNX input name (``input_names``): float32 for numeric, str objects
    for categorical."""
    return {
        input_names[name]: inputs[[name]].to_numpy(np.float32) if kind == "numeric" else inputs[[name]].to_numpy(object)
        for name, kind in feature_types.items()
    }
