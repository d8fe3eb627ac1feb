"""Feature types and the model's inputs, the same way in training, champion scoring and serving.

The model sees one column per feature: numeric features as floats (NaN for missing), boolean ones as 0.0/1.0
floats (NaN for missing), categorical features as strings (``MISSING_CATEGORY`` for missing). :func:`onnx_feeds`
is exactly what serving feeds the ONNX model.

A column is boolean when every value present is one, whatever the file format: a Parquet bool, or a text cell in
:data:`functions.common.bundle.BOOLEAN_TEXTS` (``True``/``false``/``TRUE``...): CSV and Parquet versions of the
same data train to the same schema.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from functions.common.bundle import BOOLEAN_TEXTS, MISSING_CATEGORY, PANDAS_NA_SPELLINGS, FeatureType

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


def _boolean(value: object) -> float:
    if isinstance(value, bool | np.bool_):
        return float(value)
    return BOOLEAN_TEXTS.get(value, np.nan) if isinstance(value, str) else np.nan


def boolean_values(column: pd.Series) -> tuple[pd.Series, pd.Series]:
    """The column as float64, 1.0 for true and 0.0 for false (NaN where missing or not a boolean), and a mask of
    the values present that are not booleans."""
    if pd.api.types.is_bool_dtype(column):
        values = column.astype(np.float64)
    elif pd.api.types.is_numeric_dtype(column):  # numbers are never booleans, not even 0 and 1
        values = pd.Series(np.nan, index=column.index)
    else:
        values = column.map(_boolean, na_action="ignore").astype(np.float64)
    return values, column.notna() & values.isna()


# A boolean input as the monitor reads a captured JSON true/false: the member's text.
BOOLEAN_CATEGORIES = {0.0: "false", 1.0: "true"}


def boolean_texts(inputs: pd.Series) -> pd.Series:
    """A boolean feature's model inputs (0.0, 1.0, NaN) as the texts a capture holds ("false", "true", NaN)."""
    return inputs.map(BOOLEAN_CATEGORIES)


def is_boolean(column: pd.Series) -> bool:
    """Whether every value present is a boolean (and one is)."""
    if pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
        return pd.api.types.is_bool_dtype(column) and len(column) > 0
    # By the distinct values: a text column with more of them than a boolean can spell is decided at once.
    present = pd.unique(column.dropna())
    return 0 < len(present) <= len(BOOLEAN_TEXTS) + 2 and not any(np.isnan(_boolean(v)) for v in present)


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
    if is_boolean(column):
        return "boolean"
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


def model_input(column: pd.Series, kind: FeatureType) -> pd.Series:
    if kind == "numeric":
        return float32_values(column)
    if kind == "boolean":
        return boolean_values(column)[0]
    return categories(column)


def model_inputs(frame: pd.DataFrame, feature_types: Mapping[str, FeatureType]) -> pd.DataFrame:
    columns = {name: model_input(frame[name], kind) for name, kind in feature_types.items()}
    return pd.DataFrame(columns, index=frame.index)


def onnx_feeds(
    inputs: pd.DataFrame, feature_types: Mapping[str, FeatureType], input_names: Mapping[str, str]
) -> dict[str, np.ndarray]:
    """One [N, 1] array per feature, under its ONNX input name (``input_names``): float32 for numeric and boolean,
    str objects for categorical."""
    return {
        input_names[name]: inputs[[name]].to_numpy(object)
        if kind == "categorical"
        else inputs[[name]].to_numpy(np.float32)
        for name, kind in feature_types.items()
    }
