"""Check the training data before any model is fitted, and report every problem at once.

Rows whose target is missing are dropped (they carry no label to learn from) and counted; the job fails
instead when more than ``max_missing_fraction`` of the targets are missing.

Without declared feature lists, every column but the target and ``drop_columns`` is a feature, typed by
:func:`training.features.infer_type`. With ``numeric_features`` and/or ``categorical_features`` declared,
the features are exactly those columns.

The task, when not set, is inferred: a target that is not entirely numeric, or that holds at most
``MAX_INFERRED_CLASSES`` distinct integers, is classification; otherwise regression.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from functions.common.bundle import LABEL_OUTPUT, PROBABILITIES_OUTPUT, VALUE_OUTPUT, FeatureType, ModelMetadata, Task
from training.errors import TrainingFailure
from training.features import infer_type, model_inputs, parse_numbers
from training.hyperparameters import Hyperparameters

MAX_INFERRED_CLASSES = 10
SHOWN_VALUES = 5
# A feature named like an ONNX output would collide with it in the graph.
RESERVED_NAMES = (LABEL_OUTPUT, PROBABILITIES_OUTPUT, VALUE_OUTPUT)


@dataclass(frozen=True)
class Dataset:
    # Model inputs, one column per feature in data order (see training.features.model_inputs).
    inputs: pd.DataFrame
    # Classification: the labels as strings; regression: float64.
    target: pd.Series
    task: Task
    feature_types: dict[str, FeatureType]
    rows_without_target: int
    # Set when allow_schema_change let a schema different from the champion's through: why the champion
    # is not compared.
    schema_change: str | None = None


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
    numbers, bad = parse_numbers(target)
    if bad.any():
        return "classification"
    integral = bool(np.all(numbers == np.round(numbers)))
    return "classification" if integral and numbers.nunique() <= MAX_INFERRED_CLASSES else "regression"


def _feature_types(frame: pd.DataFrame, hp: Hyperparameters, problems: list[str]) -> dict[str, FeatureType]:
    declared: dict[str, FeatureType] = {
        **dict.fromkeys(hp.numeric_features or (), "numeric"),
        **dict.fromkeys(hp.categorical_features or (), "categorical"),
    }
    for setting, names in (
        ("numeric_features", hp.numeric_features),
        ("categorical_features", hp.categorical_features),
        ("drop_columns", hp.drop_columns),
    ):
        absent = [n for n in names or () if n not in frame.columns]
        if absent:
            problems.append(f"{setting} names columns that are not in the data: {_listing(absent)}")
    if hp.declares_features:
        return {name: kind for name, kind in declared.items() if name in frame.columns}
    skipped = {hp.target, *hp.drop_columns}
    return {str(name): infer_type(frame[name]) for name in frame.columns if name not in skipped}


def _check_features(
    frame: pd.DataFrame, feature_types: dict[str, FeatureType], hp: Hyperparameters, problems: list[str]
) -> None:
    if not feature_types:
        problems.append("there are no feature columns left to train on")
    reserved = [n for n in feature_types if n in RESERVED_NAMES]
    if reserved:
        problems.append(f"feature names reserved for the model's outputs: {_listing(reserved)}; rename them")
    constant = []
    for name, kind in feature_types.items():
        column = frame[name]
        missing = float(column.isna().mean()) if len(column) else 0.0
        if missing > hp.max_missing_fraction:
            problems.append(
                f"column {name!r} is {missing:.1%} missing (max_missing_fraction {hp.max_missing_fraction})"
            )
        elif column.nunique(dropna=True) <= 1 and len(column):
            constant.append(name)
        if kind == "numeric":
            _, bad = parse_numbers(column)
            if bad.any():
                shown = list(dict.fromkeys(column[bad].astype(str)))[:SHOWN_VALUES]
                problems.append(
                    f"numeric column {name!r} has {int(bad.sum())} non-numeric value(s), e.g. {_listing(shown)} "
                    "(fix the data, or declare the column in categorical_features)"
                )
    if constant:
        problems.append(
            f"constant column(s), a single distinct value: {_listing(constant)} (remove them with drop_columns)"
        )


def _check_target(target: pd.Series, task: Task, hp: Hyperparameters, problems: list[str]) -> None:
    if len(target) < hp.min_rows:
        problems.append(f"only {len(target)} rows have a target value (min_rows {hp.min_rows})")
    if task == "regression":
        _, bad = parse_numbers(target)
        if bad.any():
            shown = list(dict.fromkeys(target[bad].astype(str)))[:SHOWN_VALUES]
            problems.append(f"the regression target {hp.target!r} has non-numeric value(s), e.g. {_listing(shown)}")
        return
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


def schema_differences(
    champion: ModelMetadata, target: str, task: Task, feature_types: dict[str, FeatureType], classes: list[str]
) -> list[str]:
    """How this data's model would differ from the champion's; empty when they are comparable."""
    differences = []
    if champion.target != target or champion.task != task:
        differences.append(f"the champion predicts {champion.target!r} ({champion.task}), not {target!r} ({task})")
    old = {f.name: f.type for f in champion.features}
    added = [n for n in feature_types if n not in old]
    removed = [n for n in old if n not in feature_types]
    retyped = [f"{n} ({old[n]} -> {kind})" for n, kind in feature_types.items() if n in old and old[n] != kind]
    if added:
        differences.append(f"added features {_listing(added)}")
    if removed:
        differences.append(f"removed features {_listing(removed)}")
    if retyped:
        differences.append(f"features whose type changed: {', '.join(retyped)}")
    if task == "classification" and champion.task == task and set(champion.classes) != set(classes):
        differences.append(f"classes {sorted(classes)} instead of the champion's {sorted(champion.classes)}")
    return differences


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
    _check_features(labelled, feature_types, hp, problems)
    task: Task = hp.task or (infer_task(labelled[hp.target]) if has_target else "regression")
    if has_target:
        _check_target(labelled[hp.target], task, hp, problems)
    schema_change = None
    if champion is not None and has_target:
        classes = sorted(class_labels(labelled[hp.target]).unique()) if task == "classification" else []
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
        feature_types=feature_types,
        rows_without_target=rows_without_target,
        schema_change=schema_change,
    )
