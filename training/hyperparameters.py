"""Parse and check the job's hyperparameters (SageMaker passes every value as a string).

Unknown names are an error, so a typo never silently falls back to a default; SageMaker's own
``sagemaker_*`` keys are ignored. Standard library only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, get_args

from functions.common.bundle import TASKS, Task
from functions.common.gate import CLASSIFICATION_METRICS, DEFAULT_METRIC, REGRESSION_METRICS, GateSettings
from training.errors import TrainingFailure

ALGORITHMS = ("logistic_regression", "random_forest", "gradient_boosting", "hist_gradient_boosting")
DEFAULT_ALGORITHM = "random_forest"
TASK_METRICS: dict[Task, tuple[str, ...]] = {
    "classification": CLASSIFICATION_METRICS,
    "regression": REGRESSION_METRICS,
}

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


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError("must be an integer") from None


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError("must be a number") from None


def _positive_int(text: str) -> int:
    value = _integer(text)
    if value < 1:
        raise ValueError("must be an integer >= 1")
    return value


def _positive_float(text: str) -> float:
    value = _number(text)
    if not (math.isfinite(value) and value > 0):
        raise ValueError("must be a finite number > 0")
    return value


def _fraction(text: str) -> float:
    value = _number(text)
    if not 0 <= value <= 1:
        raise ValueError("must be a number between 0 and 1")
    return value


def _open_fraction(text: str) -> float:
    value = _number(text)
    if not 0 < value < 1:
        raise ValueError("must be a number strictly between 0 and 1")
    return value


def _finite(text: str) -> float:
    value = _number(text)
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


def _non_negative(text: str) -> float:
    value = _finite(text)
    if value < 0:
        raise ValueError("must be a finite number >= 0")
    return value


def _boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise ValueError("must be true or false")


def _names(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"lists {', '.join(duplicates)} more than once")
    return names


def _choice(options: tuple[str, ...]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return text

    return parse


def _text(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be empty")
    return text.strip()


KNOB_PARSERS: dict[str, Callable[[str], Knob]] = {
    "n_estimators": _positive_int,
    "max_depth": _positive_int,
    "min_samples_leaf": _positive_int,
    "max_iter": _positive_int,
    "learning_rate": _positive_float,
    "C": _positive_float,
}
PARSERS: dict[str, Callable[[str], Any]] = {
    "target": _text,
    "task": _choice(TASKS),
    "algorithm": _choice(ALGORITHMS),
    "test_size": _open_fraction,
    "random_seed": _integer,
    "numeric_features": _names,
    "categorical_features": _names,
    "drop_columns": _names,
    "metric": _choice(CLASSIFICATION_METRICS + REGRESSION_METRICS),
    "min_metric": _finite,
    "min_improvement": _non_negative,
    "min_rows": _positive_int,
    "min_class_count": _positive_int,
    "max_missing_fraction": _fraction,
    "champion_version": _text,
    "allow_schema_change": _boolean,
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
    # None: every column but the target and drop_columns is a feature, its type inferred.
    numeric_features: tuple[str, ...] | None = None
    categorical_features: tuple[str, ...] | None = None
    drop_columns: tuple[str, ...] = ()
    # None: gate.DEFAULT_METRIC for the task.
    metric: str | None = None
    min_metric: float | None = None
    min_improvement: float = 0.0
    min_rows: int = 50
    # Also at least 2: a stratified holdout needs two examples of every class.
    min_class_count: int = 10
    max_missing_fraction: float = 0.5
    champion_version: str | None = None
    allow_schema_change: bool = False

    @property
    def declares_features(self) -> bool:
        return self.numeric_features is not None or self.categorical_features is not None

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
        metric = self.metric or DEFAULT_METRIC[task]
        if metric not in TASK_METRICS[task]:
            raise TrainingFailure(
                "invalid hyperparameters",
                [f"hyperparameter 'metric'={metric!r} is not a {task} metric ({', '.join(TASK_METRICS[task])})"],
            )
        return GateSettings(metric=metric, min_metric=self.min_metric, min_improvement=self.min_improvement)

    def effective(self, task: Task) -> dict[str, str]:
        """Every setting the model was trained with, defaults included, as strings for the metadata."""
        values: dict[str, Any] = {
            "target": self.target,
            "task": task,
            "algorithm": self.algorithm,
            **self.knobs_for(task),
            "test_size": self.test_size,
            "random_seed": self.random_seed,
            "drop_columns": ",".join(self.drop_columns),
            "metric": self.gate_settings(task).metric,
            "min_metric": self.min_metric,
            "min_improvement": self.min_improvement,
            "min_rows": self.min_rows,
            "min_class_count": self.min_class_count,
            "max_missing_fraction": self.max_missing_fraction,
            "champion_version": self.champion_version,
            "allow_schema_change": str(self.allow_schema_change).lower(),
        }
        if self.numeric_features is not None:
            values["numeric_features"] = ",".join(self.numeric_features)
        if self.categorical_features is not None:
            values["categorical_features"] = ",".join(self.categorical_features)
        return {key: "" if value is None else str(value) for key, value in values.items()}


def parse_hyperparameters(raw: Mapping[str, Any]) -> Hyperparameters:
    """Check every hyperparameter and report all problems at once."""
    problems: list[str] = []
    values: dict[str, Any] = {}
    for name, value in raw.items():
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
            values[name] = parser(str(value))
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
    target = values.get("target")
    if target in declared or target in values.get("drop_columns", ()):
        problems.append(f"the target {target!r} cannot also be a feature or a dropped column")
    if problems:
        raise TrainingFailure("invalid hyperparameters", problems)
    knobs = {name: values.pop(name) for name in KNOB_PARSERS if name in values}
    return Hyperparameters(knobs=knobs, **values)
