"""Check the training data before any model is fitted, and report every problem at once.

Rows whose target is missing are dropped (they carry no label to learn from) and counted; the job fails
instead when more than ``max_missing_fraction`` of the targets are missing.

Every column but the target and ``drop_columns`` is a feature, typed by :func:`training.features.infer_type`,
unless ``numeric_features`` or ``categorical_features`` declares its type: declarations set types, they never
drop a column (declaring some columns categorical once trained on those alone, silently).

What does not fail the job but deserves a look becomes a warning (job log and bundle metadata): a column that
looks like an identifier (a distinct integer, numbered densely or in row order, or a distinct text, on every
row), dates or timestamps fed as such, a categorical column with more than ``max_categories`` levels (capped,
see :mod:`training.feature_spec`), and a constant column (kept in the serving schema, ignored by the model).
Every check is one pass of vectorised pandas per column: the whole frame is checked, not a sample.

The task, when not set, is inferred: a target that is not entirely numeric, or that holds at most
``MAX_INFERRED_CLASSES`` distinct integers, is classification; otherwise regression.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from functions.common.bundle import (
    MISSING_CATEGORY,
    PANDAS_NA_SPELLINGS,
    FeatureType,
    ModelMetadata,
    Task,
    schema_differences,
)
from training.errors import TrainingFailure
from training.feature_spec import FeatureSpec, onnx_input_names
from training.features import boolean_values, infer_type, model_inputs, na_spellings, parse_numbers
from training.hyperparameters import Hyperparameters

MAX_INFERRED_CLASSES = 10
SHOWN_VALUES = 5
# Fewer rows than this say little about a column being unique per row.
ID_MIN_ROWS = 20
# ISO 8601 dates, with an optional time and offset: 2024-01-31, 2024-01-31T08:15:00Z, 2024-01-31 08:15.
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?")
# A text column is date-like when this share of (up to DATE_SAMPLE of) its distinct values are ISO dates.
DATE_SAMPLE = 1000
DATE_SHARE = 0.9
DROP_IDS = "if it is one, drop it (drop_columns): ids new rows bring were never seen in training"
DERIVE_DATES = "derive numbers from it (e.g. days since an event, month) and drop it (drop_columns)"


@dataclass(frozen=True)
class Dataset:
    # Model inputs, one column per feature in data order (see training.features.model_inputs).
    inputs: pd.DataFrame
    # Classification: the labels as strings; regression: float64.
    target: pd.Series
    task: Task
    spec: FeatureSpec
    rows_without_target: int
    # Set when allow_schema_change let a schema different from the champion's through: why the champion
    # is not compared.
    schema_change: str | None = None
    warnings: tuple[str, ...] = ()

    @property
    def feature_types(self) -> dict[str, FeatureType]:
        """Every feature of the serving schema (the model may ignore some: ``spec.ignored``)."""
        return self.spec.types


def _listing(values: list[str], limit: int = 20) -> str:
    # Bounded: the failure reason SageMaker shows is cut at 1024 characters.
    shown = ", ".join(repr(str(v)) for v in values[:limit])
    return shown if len(values) <= limit else f"{shown} and {len(values) - limit} more"


def class_labels(target: pd.Series) -> pd.Series:
    """Labels as strings; integral numbers lose their ``.0`` so CSV and Parquet agree (``1`` not ``1.0``)."""
    if pd.api.types.is_bool_dtype(target):
        return target.astype(str)  # "True"/"False", as a CSV file spells them
    numbers, bad = parse_numbers(target)
    if not bad.any() and np.all(numbers == np.round(numbers)):
        return numbers.astype(np.int64).astype(str)
    return target.astype(str)


def infer_task(target: pd.Series) -> Task:
    # pandas' missing spellings (NA...) aside: a numeric target holding them is reported with the fix.
    numbers, bad = parse_numbers(target)
    if (bad & ~na_spellings(target, bad)).any():
        return "classification"
    integral = bool(np.all(numbers == np.round(numbers)))
    return "classification" if integral and numbers.nunique() <= MAX_INFERRED_CLASSES else "regression"


def _feature_types(frame: pd.DataFrame, hp: Hyperparameters, problems: list[str]) -> dict[str, FeatureType]:
    for setting, names in (
        ("numeric_features", hp.numeric_features),
        ("categorical_features", hp.categorical_features),
        ("drop_columns", hp.drop_columns),
    ):
        absent = [n for n in names or () if n not in frame.columns]
        if absent:
            problems.append(f"{setting} names columns that are not in the data: {_listing(absent)}")
    declared: dict[str, FeatureType] = {
        **dict.fromkeys(hp.numeric_features or (), "numeric"),
        **dict.fromkeys(hp.categorical_features or (), "categorical"),
    }
    skipped = {hp.target, *hp.drop_columns}
    return {
        str(name): declared.get(str(name)) or infer_type(frame[name]) for name in frame.columns if name not in skipped
    }


def _na_spellings(what: str, column: pd.Series, bad: pd.Series, problems: list[str], otherwise: str) -> pd.Series:
    """Report the ``bad`` values of a column that must be numeric that are pandas' missing spellings (``NA``,
    ``null``...): text unless declared missing, so the problem names the declaration that fixes it. Returns the
    other bad values."""
    spelled = na_spellings(column, bad)
    if spelled.any():
        tokens = list(dict.fromkeys(column[spelled].astype(str)))
        problems.append(
            f"{what} holds {_listing(tokens)} in {int(spelled.sum())} cell(s): text, not a missing value, unless "
            f"declared (set missing_values={json.dumps(tokens)} if it means missing, or {otherwise})"
        )
    return bad & ~spelled


def _numeric_notes(name: str, column: pd.Series, problems: list[str], notes: list[str]) -> bool:
    """Check a numeric feature; returns whether it is constant (one distinct value, missing ones aside).

    Missing values do not make a numeric column informative: they are imputed with its one value.
    """
    numbers, bad = parse_numbers(column)
    bad = _na_spellings(f"numeric column {name!r}", column, bad, problems, "declare it in categorical_features")
    if bad.any():
        shown = list(dict.fromkeys(column[bad].astype(str)))[:SHOWN_VALUES]
        problems.append(
            f"numeric column {name!r} has {int(bad.sum())} non-numeric value(s), e.g. {_listing(shown)} "
            "(fix the data, or declare the column in categorical_features)"
        )
    if pd.api.types.is_datetime64_any_dtype(column):
        notes.append(
            f"column {name!r} holds timestamps, which the model sees as large numbers in float32 (to about two "
            f"minutes); {DERIVE_DATES}"
        )
    present = numbers.dropna()
    distinct = present.nunique()
    # An identifier: distinct integers, numbered densely or in row order (not, say, incomes in dollars).
    if len(present) >= ID_MIN_ROWS and distinct == len(present) and bool((present == np.round(present)).all()):
        dense = present.max() - present.min() < 2 * len(present)
        if dense or present.is_monotonic_increasing:
            notes.append(f"column {name!r} looks like an identifier (a distinct integer on every row); {DROP_IDS}")
    return distinct <= 1


def _categorical_notes(
    name: str, column: pd.Series, hp: Hyperparameters, notes: list[str], capped: dict[str, tuple[str, ...]]
) -> bool:
    """Check a categorical feature, capping its levels; returns whether it is constant (missing is a level)."""
    raw_counts = column.value_counts(dropna=True)
    raw_counts.index = raw_counts.index.map(str)
    counts = raw_counts.groupby(level=0).sum()
    missing = int(column.isna().sum())
    present = len(column) - missing
    if len(counts) + (missing > 0) <= 1:
        return True
    if present >= ID_MIN_ROWS and len(counts) == present:
        notes.append(f"column {name!r} looks like an identifier (a distinct value on every row); {DROP_IDS}")
    spelled = [str(level) for level in counts.index if level in PANDAS_NA_SPELLINGS]
    if spelled:
        notes.append(
            f"categorical column {name!r} has the level(s) {_listing(spelled)}, a category like any other (pandas "
            f"would read it as missing); if it means missing, set missing_values={json.dumps(spelled)}"
        )
    sample = [str(level) for level in counts.index[:DATE_SAMPLE]]
    if sum(bool(ISO_DATE.fullmatch(level)) for level in sample) >= DATE_SHARE * len(sample):
        notes.append(f"column {name!r} holds dates as text (e.g. {sample[0]!r}), each one a category; {DERIVE_DATES}")
    if len(counts) > hp.max_categories:
        # Most frequent first; equal counts in level order, so the choice is the same on every run.
        ranked = counts.rename_axis("level").reset_index(name="rows")
        ranked = ranked.sort_values(["rows", "level"], ascending=[False, True]).head(hp.max_categories)
        kept = tuple(str(level) for level in ranked["level"])
        capped[name] = (*kept, MISSING_CATEGORY) if missing else kept
        notes.append(
            f"categorical column {name!r} has {len(counts)} levels: the model tells apart its {len(kept)} most "
            f"frequent ({int(ranked['rows'].sum()) / present:.0%} of the rows with a value), and encodes the others "
            "like a category unseen in training (max_categories)"
        )
    return False


def _feature_spec(
    frame: pd.DataFrame, feature_types: dict[str, FeatureType], hp: Hyperparameters, problems: list[str]
) -> tuple[FeatureSpec, list[str]]:
    """The feature spec, and what is worth a warning; the problems that fail the job go to ``problems``."""
    notes: list[str] = []
    capped: dict[str, tuple[str, ...]] = {}
    constant = []
    for name, kind in feature_types.items():
        column = frame[name]
        missing = float(column.isna().mean()) if len(column) else 0.0
        if missing > hp.max_missing_fraction:
            problems.append(
                f"column {name!r} is {missing:.1%} missing (max_missing_fraction {hp.max_missing_fraction})"
            )
        if kind == "numeric":
            is_constant = _numeric_notes(name, column, problems, notes)
        elif kind == "boolean":
            is_constant = boolean_values(column)[0].nunique() <= 1
        else:
            is_constant = _categorical_notes(name, column, hp, notes, capped)
        if is_constant and len(column) and missing <= hp.max_missing_fraction:
            constant.append(name)
    if not feature_types:
        problems.append("there are no feature columns left to train on")
    elif len(constant) == len(feature_types):
        problems.append(f"every feature is constant, a single value: {_listing(constant)}")
    elif constant:
        # A fresh data window may hold a column that happens not to vary: the API keeps taking it, so clients
        # and the champion comparison are unaffected, and a later model can use it again.
        notes.append(
            f"constant column(s), a single value: {_listing(constant)}; the model ignores them (the API still "
            "takes them)"
        )
    spec = FeatureSpec(feature_types, onnx_input_names(feature_types), frozenset(constant), capped)
    return spec, notes


def _check_target(target: pd.Series, task: Task, hp: Hyperparameters, problems: list[str]) -> None:
    if len(target) < hp.min_rows:
        problems.append(f"only {len(target)} rows have a target value (min_rows {hp.min_rows})")
    if task == "regression":
        _, bad = parse_numbers(target)
        bad = _na_spellings(f"the regression target {hp.target!r}", target, bad, problems, "set task=classification")
        if bad.any():
            shown = list(dict.fromkeys(target[bad].astype(str)))[:SHOWN_VALUES]
            problems.append(f"the regression target {hp.target!r} has non-numeric value(s), e.g. {_listing(shown)}")
        return
    numbers, bad = parse_numbers(target)
    if bad.any() and numbers.notna().any():
        _na_spellings(f"the target {hp.target!r}", target, bad, problems, "fix the data")
    counts = class_labels(target).value_counts()
    if len(counts) < 2:
        problems.append(f"the target {hp.target!r} has a single class {_listing(list(counts.index))}")
    rare = counts[counts < hp.min_class_count]
    if len(rare) > SHOWN_VALUES:
        examples = ", ".join(f"{label!r} ({count})" for label, count in rare.head(SHOWN_VALUES).items())
        problems.append(
            f"{len(rare)} classes have fewer than {hp.min_class_count} examples (min_class_count), e.g. {examples}; "
            "if the target is a quantity, set task=regression"
        )
        return
    for label, count in rare.items():
        problems.append(f"class {label!r} has only {count} example(s) (min_class_count {hp.min_class_count})")


def validate(frame: pd.DataFrame, hp: Hyperparameters, champion: ModelMetadata | None) -> Dataset:
    problems: list[str] = []
    has_target = hp.target in frame.columns
    if not has_target:
        problems.append(f"target column {hp.target!r} is missing; the data has {_listing(list(frame.columns))}")
    rows_without_target = int(frame[hp.target].isna().sum()) if has_target else 0
    if has_target and len(frame) and rows_without_target / len(frame) > hp.max_missing_fraction:
        problems.append(
            f"target {hp.target!r} is missing in {rows_without_target / len(frame):.1%} of rows "
            f"(max_missing_fraction {hp.max_missing_fraction})"
        )
    labelled = frame[frame[hp.target].notna()].reset_index(drop=True) if has_target else frame
    feature_types = _feature_types(labelled, hp, problems)
    spec, warnings = _feature_spec(labelled, feature_types, hp, problems)
    task: Task = hp.task or (infer_task(labelled[hp.target]) if has_target else "regression")
    classes = sorted(class_labels(labelled[hp.target]).unique()) if has_target and task == "classification" else []
    if has_target:
        _check_target(labelled[hp.target], task, hp, problems)
        problems += hp.class_problems(task, classes)
    schema_change = None
    if champion is not None and has_target:
        differences = schema_differences(champion, hp.target, task, feature_types, classes)
        if differences and hp.allow_schema_change:
            schema_change = "the model schema differs from the champion's: " + "; ".join(differences)
        elif differences:
            problems.append(
                "the model schema differs from the champion's: "
                + "; ".join(differences)
                + " (set allow_schema_change=true to train anyway, without comparing with the champion)"
            )
    if problems:
        raise TrainingFailure("training data validation failed", problems)
    raw_target = labelled[hp.target]
    target = class_labels(raw_target) if task == "classification" else parse_numbers(raw_target)[0]
    return Dataset(
        inputs=model_inputs(labelled, feature_types),
        target=target.rename(hp.target),
        task=task,
        spec=spec,
        rows_without_target=rows_without_target,
        schema_change=schema_change,
        warnings=tuple(warnings),
    )
