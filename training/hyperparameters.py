"""Parse and check the job's hyperparameters (SageMaker passes every value as a string).

Unknown names are an error, so a typo never silently falls back to a default; SageMaker's own
``sagemaker_*`` keys are ignored, but for the script-mode ones (:data:`SCRIPT_MODE_KEYS`): this program runs no
script, so a job that names one is refused rather than silently running something else. Values may also come
JSON-encoded, as the SageMaker Python SDK sends them (:func:`decoded`). Standard library only.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, get_args

from functions.common import text_values
from functions.common.bundle import TASKS, Task
from functions.common.gate import (
    DEFAULT_MAX_SECONDARY_REGRESSION,
    DEFAULT_MAX_SINGLE_FEATURE_SCORE,
    DEFAULT_MAX_SLICE_REGRESSION,
    DEFAULT_MAX_TRUSTED_REGRESSION,
    DEFAULT_MIN_BOOTSTRAP_ROWS,
    DEFAULT_MIN_SCORED_ROWS,
    DEFAULT_MIN_SLICE_ROWS,
    GATE_PARSERS,
    GateError,
    GateSettings,
)
from training.errors import TrainingFailure

ALGORITHMS = ("logistic_regression", "random_forest", "gradient_boosting", "hist_gradient_boosting")
# The default because its size is bounded whatever the rows (scikit-learn's defaults: at most 100 trees of at most
# 31 leaves, fewer with early stopping, on from 10,000 rows), so the serving Lambda loads it at any scale, and it fits
# on every core. An unbounded forest's leaves grow with the rows (README: "Training at scale").
DEFAULT_ALGORITHM = "hist_gradient_boosting"

Knob = int | float
# The estimator knobs that apply to each (task, algorithm). logistic_regression's regression counterpart
# is ridge regression, whose alpha is 1/C so that C means "inverse regularisation strength" in both tasks.
APPLICABLE_KNOBS: dict[tuple[Task, str], tuple[str, ...]] = {
    ("classification", "logistic_regression"): ("C", "max_iter"),
    ("regression", "logistic_regression"): ("C",),
    **{(task, "random_forest"): ("n_estimators", "max_depth", "min_samples_leaf") for task in get_args(Task)},
    **{
        (task, "gradient_boosting"): ("n_estimators", "max_depth", "learning_rate", "min_samples_leaf")
        for task in get_args(Task)
    },
    **{
        (task, "hist_gradient_boosting"): ("max_iter", "max_depth", "learning_rate", "min_samples_leaf")
        for task in get_args(Task)
    },
}
# Where a scikit-learn default is a poor fit for this use: logistic regression often needs more than
# 100 iterations to converge, and a forest's probabilities are better with more, slightly larger leaves.
DEFAULT_KNOBS: dict[str, dict[str, Knob]] = {
    "logistic_regression": {"max_iter": 1000},
    "random_forest": {"n_estimators": 200, "min_samples_leaf": 2},
}


# SageMaker's script mode: the SDK's framework estimators (SKLearn, PyTorch...) and entry_point/source_dir name the
# script the framework image's toolkit would run. This image runs only driftloop's program.
SCRIPT_MODE_KEYS = ("sagemaker_program", "sagemaker_submit_directory")


def decoded(text: str) -> str:
    """The text a hyperparameter means: a JSON string literal (``'"logistic_regression"'``, as the SDK's framework
    estimators and ModelTrainer encode strings) is decoded; anything else is kept as written, since the plain forms of
    numbers, booleans and JSON lists (``'5'``, ``'true'``, ``'["a","b"]'``) already are what the parsers read."""
    if not (len(text) >= 2 and text.startswith('"') and text.endswith('"')):
        return text
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return text
    return value if isinstance(value, str) else text


def _text(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be empty")
    return text.strip()


BALANCED = "balanced"
# ``balanced`` (each class weighted inversely to its frequency, as scikit-learn computes it), or a weight per label.
ClassWeight = str | dict[str, float]


def _class_weight(text: str) -> ClassWeight:
    if text.strip() == BALANCED:
        return BALANCED
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, dict) or not value:
        raise ValueError(f'must be {BALANCED!r} or a JSON object of label -> weight, e.g. {{"drizzle": 5}}')
    weights = {}
    for label, weight in value.items():
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight <= 0:
            raise ValueError(f"gives label {label!r} the weight {weight!r}; a weight must be a finite number > 0")
        weights[label] = float(weight)
    return weights


KNOB_PARSERS: dict[str, Callable[[str], Knob]] = {
    "n_estimators": text_values.positive_int,
    "max_depth": text_values.positive_int,
    "min_samples_leaf": text_values.positive_int,
    "max_iter": text_values.positive_int,
    "learning_rate": text_values.positive_float,
    "C": text_values.positive_float,
}
PARSERS: dict[str, Callable[[str], Any]] = {
    "target": _text,
    "task": text_values.choice(TASKS),
    "algorithm": text_values.choice(ALGORITHMS),
    "test_size": text_values.open_fraction,
    "random_seed": text_values.integer,
    "numeric_features": text_values.text_list,
    "categorical_features": text_values.text_list,
    "drop_columns": text_values.text_list,
    "missing_values": text_values.text_list,
    "max_categories": text_values.positive_int,
    "serving_memory_mb": text_values.positive_int,
    "serving_timeout_seconds": text_values.positive_float,
    "min_rows": text_values.positive_int,
    "min_class_count": text_values.positive_int,
    "max_missing_fraction": text_values.fraction,
    "champion_version": _text,
    "positive_class": _text,
    "class_weight": _class_weight,
    "decision_threshold": text_values.open_fraction,
    **GATE_PARSERS,
    **KNOB_PARSERS,
}


@dataclass(frozen=True)
class Hyperparameters:
    target: str
    # None: inferred from the target column (see training.validation).
    task: Task | None = None
    algorithm: str = DEFAULT_ALGORITHM
    # Only the knobs the user set; defaults are applied per algorithm by :meth:`knobs_for`.
    knobs: dict[str, Knob] = field(default_factory=dict)
    test_size: float = 0.2
    random_seed: int = 42
    # The types of the columns they name (None: not declared); every other column but the target and drop_columns
    # is a feature too, its type inferred.
    numeric_features: tuple[str, ...] | None = None
    categorical_features: tuple[str, ...] | None = None
    drop_columns: tuple[str, ...] = ()
    # Cell texts read as missing besides empty cells (pandas' NA, n/a, null... are values unless listed).
    missing_values: tuple[str, ...] = ()
    # A categorical feature with more levels is one-hot encoded on its most frequent ones (training.feature_spec).
    max_categories: int = 50
    # The serving Lambda's memory and timeout: the bundle must load well within them (None: not checked).
    serving_memory_mb: int | None = None
    serving_timeout_seconds: float | None = None
    # None: gate.DEFAULT_METRIC for the task.
    metric: str | None = None
    min_metric: float | None = None
    min_improvement: float = 0.0
    max_trusted_regression: float = DEFAULT_MAX_TRUSTED_REGRESSION
    min_scored_rows: int = DEFAULT_MIN_SCORED_ROWS
    min_bootstrap_rows: int = DEFAULT_MIN_BOOTSTRAP_ROWS
    max_secondary_regression: float = DEFAULT_MAX_SECONDARY_REGRESSION
    max_slice_regression: float = DEFAULT_MAX_SLICE_REGRESSION
    min_slice_rows: int = DEFAULT_MIN_SLICE_ROWS
    max_single_feature_score: float = DEFAULT_MAX_SINGLE_FEATURE_SCORE
    min_rows: int = 50
    # Also at least 2: a stratified holdout needs two examples of every class.
    min_class_count: int = 10
    max_missing_fraction: float = 0.5
    champion_version: str | None = None
    allow_schema_change: bool = False
    # Binary classification: the class F1 is of, and whose probability the decision threshold and drift baseline
    # follow. None: the second of the two sorted labels.
    positive_class: str | None = None
    # Classification: per-class weights in the fit (None: every row counts the same).
    class_weight: ClassWeight | None = None
    # Binary classification: the positive class is predicted when its probability is at least this (None: the most
    # probable class).
    decision_threshold: float | None = None

    def class_problems(self, task: Task, classes: Sequence[str]) -> list[str]:
        """What is wrong with the class settings for a ``task`` target of these (sorted) ``classes``."""
        problems = []
        binary_only = {"positive_class": self.positive_class, "decision_threshold": self.decision_threshold}
        for name, value in binary_only.items():
            if value is not None and (task != "classification" or len(classes) != 2):
                kind = task if task == "regression" else f"classification with {len(classes)} classes"
                problems.append(f"hyperparameter {name!r} applies to binary classification only, not {kind}")
        if self.positive_class is not None and len(classes) == 2 and self.positive_class not in classes:
            problems.append(
                f"hyperparameter 'positive_class'={self.positive_class!r} is not one of the target's classes "
                f"{', '.join(map(repr, classes))}"
            )
        if self.class_weight is not None and task != "classification":
            problems.append("hyperparameter 'class_weight' applies to classification only, not regression")
        elif isinstance(self.class_weight, dict):
            unknown = [label for label in self.class_weight if label not in classes]
            if unknown:
                problems.append(
                    f"hyperparameter 'class_weight' names label(s) {', '.join(map(repr, unknown))} that are not "
                    f"among the target's classes {', '.join(map(repr, classes))}"
                )
        return problems

    def knobs_for(self, task: Task) -> dict[str, Knob]:
        """The estimator knobs with defaults applied; fails when a set knob does not apply."""
        applicable = APPLICABLE_KNOBS[(task, self.algorithm)]
        stray = [name for name in self.knobs if name not in applicable]
        if stray:
            raise TrainingFailure(
                "invalid hyperparameters",
                [
                    f"hyperparameter {name!r} does not apply to algorithm {self.algorithm!r} for {task} "
                    f"(applicable: {', '.join(applicable)})"
                    for name in stray
                ],
            )
        defaults = {k: v for k, v in DEFAULT_KNOBS.get(self.algorithm, {}).items() if k in applicable}
        return {**defaults, **self.knobs}

    def gate_settings(self, task: Task) -> GateSettings:
        try:
            return GateSettings.for_task(
                task,
                metric=self.metric,
                min_metric=self.min_metric,
                min_improvement=self.min_improvement,
                max_trusted_regression=self.max_trusted_regression,
                min_scored_rows=self.min_scored_rows,
                min_bootstrap_rows=self.min_bootstrap_rows,
                allow_schema_change=self.allow_schema_change,
                max_secondary_regression=self.max_secondary_regression,
                max_slice_regression=self.max_slice_regression,
                min_slice_rows=self.min_slice_rows,
                max_single_feature_score=self.max_single_feature_score,
            )
        except GateError as exc:
            raise TrainingFailure("invalid hyperparameters", [str(exc)]) from exc

    def effective(self, task: Task) -> dict[str, str]:
        """Every setting the model was trained with, defaults included, as strings for the metadata."""
        values: dict[str, Any] = {
            "target": self.target,
            "task": task,
            "algorithm": self.algorithm,
            **self.knobs_for(task),
            "test_size": self.test_size,
            "random_seed": self.random_seed,
            "drop_columns": text_values.list_text(self.drop_columns),
            "missing_values": text_values.list_text(self.missing_values),
            "max_categories": self.max_categories,
            "serving_memory_mb": self.serving_memory_mb,
            "serving_timeout_seconds": self.serving_timeout_seconds,
            "metric": self.gate_settings(task).metric,
            "min_metric": self.min_metric,
            "min_improvement": self.min_improvement,
            "max_trusted_regression": self.max_trusted_regression,
            "min_scored_rows": self.min_scored_rows,
            "min_bootstrap_rows": self.min_bootstrap_rows,
            "max_secondary_regression": self.max_secondary_regression,
            "max_slice_regression": self.max_slice_regression,
            "min_slice_rows": self.min_slice_rows,
            "max_single_feature_score": self.max_single_feature_score,
            "min_rows": self.min_rows,
            "min_class_count": self.min_class_count,
            "max_missing_fraction": self.max_missing_fraction,
            "champion_version": self.champion_version,
            "allow_schema_change": str(self.allow_schema_change).lower(),
            "positive_class": self.positive_class,
            "class_weight": self.class_weight
            if not isinstance(self.class_weight, dict)
            else json.dumps(self.class_weight, ensure_ascii=False),
            "decision_threshold": self.decision_threshold,
        }
        if self.numeric_features is not None:
            values["numeric_features"] = text_values.list_text(self.numeric_features)
        if self.categorical_features is not None:
            values["categorical_features"] = text_values.list_text(self.categorical_features)
        return {key: "" if value is None else str(value) for key, value in values.items()}


def parse_hyperparameters(raw: Mapping[str, Any]) -> Hyperparameters:
    """Check every hyperparameter and report all problems at once."""
    problems: list[str] = []
    values: dict[str, Any] = {}
    for name, value in raw.items():
        if name in SCRIPT_MODE_KEYS:
            problems.append(
                f"hyperparameter {name!r}={value!r} asks SageMaker's script mode to run your code, which this image "
                "does not: it runs only driftloop's training program (leave out entry_point/source_dir/source_code "
                "and pass driftloop's hyperparameters)"
            )
            continue
        if name.startswith("sagemaker_"):
            continue
        parser = PARSERS.get(name)
        if parser is None:
            problems.append(f"unknown hyperparameter {name!r} (known: {', '.join(sorted(PARSERS))})")
            continue
        if isinstance(value, (dict, list)) or value is None:
            problems.append(f"hyperparameter {name!r} must be a string, got {type(value).__name__}")
            continue
        try:
            values[name] = parser(decoded(str(value)))
        except ValueError as exc:
            problems.append(f"hyperparameter {name!r}={value!r} {exc}")
    if "target" not in raw:
        problems.append("hyperparameter 'target' is required: the name of the column to predict")
    if values.get("min_class_count") == 1:
        problems.append("hyperparameter 'min_class_count' must be at least 2 (a stratified holdout needs it)")
    declared = [*values.get("numeric_features", ()), *values.get("categorical_features", ())]
    both = sorted({n for n in declared if declared.count(n) > 1})
    if both:
        problems.append(f"columns declared both numeric and categorical: {', '.join(both)}")
    dropped = sorted(set(declared) & set(values.get("drop_columns", ())))
    if dropped:
        problems.append(f"columns declared as features and also in drop_columns: {', '.join(dropped)}")
    target = values.get("target")
    if target in declared or target in values.get("drop_columns", ()):
        problems.append(f"the target {target!r} cannot also be a feature or a dropped column")
    if problems:
        raise TrainingFailure("invalid hyperparameters", problems)
    knobs = {name: values.pop(name) for name in KNOB_PARSERS if name in values}
    return Hyperparameters(knobs=knobs, **values)
