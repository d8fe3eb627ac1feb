"""The promotion gate and the ``evaluation.json`` it produces.

The training program holds out a share of the data, scores the challenger and, when one is given, the live
champion on the holdout rows the champion was never fitted on, and the trusted ones among them (rows that are not
API callers' feedback), decides with :func:`decide`, and writes an :class:`Evaluation` to
``output/data/evaluation.json``. The workflow reads that file back with :meth:`Evaluation.from_dict` and recomputes
the verdict with :func:`reassess` under its own pinned settings instead of trusting the job's. The gate settings
are parsed from hyperparameter strings here only (:func:`parse_gate_settings`, :data:`GATE_PARSERS`).

Standard library only: the workflow Lambdas import this module.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from functions.common import text_values

EVALUATION_FILE = "evaluation.json"

# Metrics where a larger value is better; every other known metric is an error measure.
HIGHER_IS_BETTER = frozenset({"accuracy", "f1", "roc_auc", "r2"})
LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae"})
CLASSIFICATION_METRICS = ("accuracy", "f1", "roc_auc", "log_loss")
REGRESSION_METRICS = ("rmse", "mae", "r2")
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "classification": CLASSIFICATION_METRICS,
    "regression": REGRESSION_METRICS,
}
DEFAULT_METRIC = {"classification": "roc_auc", "regression": "rmse"}
# No regression at all on trusted rows by default: feedback may be poisoned, and any tolerance is a loss that
# successive poisoned promotions could each take again. Noise on few trusted rows can then reject a good
# challenger, which costs one retraining; promoting a poisoned one costs the live model.
DEFAULT_MAX_TRUSTED_REGRESSION = 0.0
# Below this many rows a metric is mostly noise (a standard error of several points of ROC AUC or accuracy).
DEFAULT_MIN_SCORED_ROWS = 50


class GateError(ValueError):
    """The gate settings or the evaluation file are invalid."""


def higher_is_better(metric: str) -> bool:
    if metric in HIGHER_IS_BETTER:
        return True
    if metric in LOWER_IS_BETTER:
        return False
    raise GateError(f"unknown metric {metric!r}; known: {sorted(HIGHER_IS_BETTER | LOWER_IS_BETTER)}")


# The gate's hyperparameters (strings, as SageMaker passes them) and their parsers; a parser's ValueError
# says what the value must be.
GATE_PARSERS: dict[str, Callable[[str], Any]] = {
    "metric": text_values.choice(CLASSIFICATION_METRICS + REGRESSION_METRICS),
    "min_metric": text_values.finite,
    "min_improvement": text_values.non_negative,
    "max_trusted_regression": text_values.non_negative,
    "min_scored_rows": text_values.positive_int,
    "allow_schema_change": text_values.boolean,
}


@dataclass(frozen=True)
class GateSettings:
    metric: str
    # The challenger's metric must be at least this good (at most, for error measures). None: no floor.
    min_metric: float | None = None
    # ...and better than the champion's by at least this much, on the holdout rows the champion never saw.
    min_improvement: float = 0.0
    # ...and, on the trusted ones among them, worse than the champion's by at most this much.
    max_trusted_regression: float = DEFAULT_MAX_TRUSTED_REGRESSION
    # The fewest rows a verdict may rest on: holdout rows the champion never saw, and trusted rows.
    min_scored_rows: int = DEFAULT_MIN_SCORED_ROWS
    # A champion given but not compared (its feature schema differs) does not fail the gate.
    allow_schema_change: bool = False

    def __post_init__(self) -> None:
        higher_is_better(self.metric)
        for name in ("min_improvement", "max_trusted_regression"):
            value = getattr(self, name)
            if value < 0 or not math.isfinite(value):
                raise GateError(f"{name} must be a finite number >= 0, got {value}")
        if self.min_scored_rows < 1:
            raise GateError(f"min_scored_rows must be an integer >= 1, got {self.min_scored_rows}")

    @classmethod
    def for_task(cls, task: str, metric: str | None = None, **settings: Any) -> GateSettings:
        """Settings for ``task``: the metric defaults per task and must be one of the task's."""
        if task not in TASK_METRICS:
            raise GateError(f"unknown task {task!r}; known: {', '.join(TASK_METRICS)}")
        chosen = metric or DEFAULT_METRIC[task]
        if chosen not in TASK_METRICS[task]:
            raise GateError(
                f"hyperparameter 'metric'={chosen!r} is not a {task} metric ({', '.join(TASK_METRICS[task])})"
            )
        return cls(metric=chosen, **settings)


def parse_gate_settings(hyperparameters: Mapping[str, str], task: str) -> GateSettings:
    """The gate settings among ``hyperparameters`` (other names are ignored); every bad value is reported."""
    problems: list[str] = []
    values: dict[str, Any] = {}
    for name, parse in GATE_PARSERS.items():
        text = hyperparameters.get(name)
        if text is None:
            continue
        try:
            values[name] = parse(str(text))
        except ValueError as exc:
            problems.append(f"hyperparameter {name!r}={text!r} {exc}")
    if problems:
        raise GateError("; ".join(problems))
    return GateSettings.for_task(task, **values)


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class Scores:
    """What the gate judges: both models' metrics on the holdout rows the champion never saw, and on the
    trusted rows among them. A metrics map is None when the model was not scored there (no champion, or no such
    rows); a metric undefined on those rows (e.g. ROC AUC on a single class) is left out of it."""

    # Rows held out of the challenger's training.
    holdout_rows: int
    challenger: dict[str, float] | None
    # Scored holdout rows that are not feedback. None: not recorded (an evaluation written before the gate
    # looked at trusted rows and fit rows); the gate then fails closed.
    trusted_rows: int | None
    challenger_trusted: dict[str, float] | None
    champion_given: bool = False
    champion: dict[str, float] | None = None
    champion_trusted: dict[str, float] | None = None
    # Holdout rows the champion was fitted on, excluded from scoring. None with a champion: unknown (its bundle
    # records no fit rows, an older bundle), so every holdout row was scored.
    champion_seen_rows: int | None = None
    # Set when allow_schema_change let a schema different from the champion's through: why it was not compared.
    champion_not_compared: str | None = None

    @property
    def scored_rows(self) -> int:
        return self.holdout_rows - (self.champion_seen_rows or 0)

    @property
    def champion_compared(self) -> bool:
        return self.champion_given and self.champion_not_compared is None


def _value(metric: str, metrics: Mapping[str, float] | None) -> float | None:
    value = None if metrics is None else metrics.get(metric)
    return value if value is not None and math.isfinite(value) else None


def _meets_floor(settings: GateSettings, score: float, where: str) -> tuple[bool, str]:
    assert settings.min_metric is not None
    better = higher_is_better(settings.metric)
    meets = score >= settings.min_metric if better else score <= settings.min_metric
    relation = ">=" if better else "<="
    return meets, (
        f"challenger {settings.metric}={score:.6g}{where} {'meets' if meets else 'fails'} min_metric "
        f"({relation} {settings.min_metric:.6g})"
    )


def _gain(settings: GateSettings, challenger: float, champion: float) -> float:
    return challenger - champion if higher_is_better(settings.metric) else champion - challenger


def _judge_holdout(settings: GateSettings, scores: Scores) -> tuple[bool, list[str]]:
    """The challenger on the holdout rows the champion never saw: the floor, then the improvement."""
    metric = settings.metric
    scored = scores.scored_rows
    score = _value(metric, scores.challenger)
    if score is None:
        return False, [f"challenger {metric} cannot be computed on the {scored} scored holdout rows"]
    passed, reasons = True, []
    if settings.min_metric is not None:
        passed, reason = _meets_floor(settings, score, "")
        reasons.append(reason)
    if not scores.champion_given:
        return passed, [*reasons, "no champion to compare with"]
    if scores.champion_not_compared is not None:
        if settings.allow_schema_change:
            return passed, [*reasons, f"champion not compared: {scores.champion_not_compared}"]
        return False, [
            *reasons,
            f"champion not compared ({scores.champion_not_compared}) while allow_schema_change is false",
        ]
    if scores.champion_seen_rows is None:
        reasons.append(
            "rows the champion was fitted on: unknown (its bundle records none, an older bundle), so both models "
            f"were scored on all {scored} holdout rows, some of which the champion may have been fitted on"
        )
    else:
        reasons.append(
            f"{scores.champion_seen_rows} of {scores.holdout_rows} holdout rows excluded: the champion was fitted "
            "on them"
        )
    if scored < settings.min_scored_rows:
        return False, [
            *reasons,
            f"only {scored} holdout rows the champion never saw (min_scored_rows {settings.min_scored_rows}): "
            "too few to compare the models",
        ]
    live = _value(metric, scores.champion)
    if live is None:
        return False, [*reasons, f"champion {metric} cannot be computed on the {scored} scored holdout rows"]
    gain = _gain(settings, score, live)
    beats = gain >= settings.min_improvement
    reasons.append(
        f"challenger {metric}={score:.6g} vs champion {live:.6g} on the same {scored} holdout rows: "
        f"improvement {gain:+.6g} {'meets' if beats else 'is below'} min_improvement {settings.min_improvement:.6g}"
    )
    return passed and beats, reasons


def _judge_trusted(settings: GateSettings, scores: Scores) -> tuple[bool, str]:
    """The challenger on trusted rows: no worse than the champion beyond the tolerance, or, without a champion
    to compare with, up to the floor. Feedback alone never decides."""
    metric = settings.metric
    rows = scores.trusted_rows
    if rows is None:
        return False, (
            "the evaluation records no trusted holdout rows and no rows excluded as seen by the champion "
            "(written by an older training program): it cannot be judged"
        )
    if rows == 0:
        return False, "no trusted holdout rows (every scored row is feedback): the gate cannot rest on feedback alone"
    if rows < settings.min_scored_rows:
        return False, (
            f"only {rows} trusted holdout rows (min_scored_rows {settings.min_scored_rows}): too few to check the "
            "challenger on data that is not feedback"
        )
    score = _value(metric, scores.challenger_trusted)
    if score is None:
        return False, f"challenger {metric} cannot be computed on the {rows} trusted holdout rows"
    if scores.champion_compared:
        live = _value(metric, scores.champion_trusted)
        if live is None:
            return False, f"champion {metric} cannot be computed on the {rows} trusted holdout rows"
        regression = _gain(settings, live, score)
        within = regression <= settings.max_trusted_regression
        return within, (
            f"on the {rows} trusted holdout rows: challenger {metric}={score:.6g} vs champion {live:.6g}, "
            f"regression {regression:+.6g} {'within' if within else 'exceeds'} max_trusted_regression "
            f"{settings.max_trusted_regression:.6g}"
        )
    if settings.min_metric is None:
        return True, f"challenger {metric}={score:.6g} on the {rows} trusted holdout rows (no min_metric to meet)"
    return _meets_floor(settings, score, f" on the {rows} trusted holdout rows")


def decide(settings: GateSettings, scores: Scores) -> Verdict:
    """Pass when, on the holdout rows the champion never saw, the challenger meets the floor and beats the
    champion by ``min_improvement``, and, on the trusted ones among them, does not regress beyond
    ``max_trusted_regression`` (meets the floor, without a champion); each set holds ``min_scored_rows`` rows."""
    holdout_passed, reasons = _judge_holdout(settings, scores)
    trusted_passed, trusted_reason = _judge_trusted(settings, scores)
    return Verdict(holdout_passed and trusted_passed, (*reasons, trusted_reason))


def _metrics(data: Any) -> dict[str, float] | None:
    return None if data is None else {str(k): float(v) for k, v in data.items()}


def _optional_int(data: Any) -> int | None:
    return None if data is None else int(data)


def _optional_text(data: Any) -> str | None:
    return None if data is None else str(data)


@dataclass(frozen=True)
class Evaluation:
    """``evaluation.json``: the settings, the scores the verdict rests on, and the verdict."""

    settings: GateSettings
    scores: Scores
    verdict: Verdict
    task: str | None = None
    champion_version: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        scores = self.scores
        return {
            **{f.name: getattr(self.settings, f.name) for f in fields(self.settings)},
            "task": self.task,
            "holdout_rows": scores.holdout_rows,
            "champion_seen_rows": scores.champion_seen_rows,
            "scored_rows": scores.scored_rows,
            "trusted_rows": scores.trusted_rows,
            "challenger": scores.challenger,
            "champion": scores.champion,
            "challenger_trusted": scores.challenger_trusted,
            "champion_trusted": scores.champion_trusted,
            "champion_given": scores.champion_given,
            "champion_not_compared": scores.champion_not_compared,
            "champion_version": self.champion_version,
            "passed": self.verdict.passed,
            "reasons": list(self.verdict.reasons),
            "details": self.details,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Evaluation:
        """Also reads the older shape, without trusted rows or fit-row exclusions (``trusted_rows`` None)."""
        try:
            settings = GateSettings(
                metric=str(data["metric"]),
                min_metric=None if data.get("min_metric") is None else float(data["min_metric"]),
                min_improvement=float(data.get("min_improvement", 0.0)),
                max_trusted_regression=float(data.get("max_trusted_regression", DEFAULT_MAX_TRUSTED_REGRESSION)),
                min_scored_rows=int(data.get("min_scored_rows", DEFAULT_MIN_SCORED_ROWS)),
                allow_schema_change=bool(data.get("allow_schema_change", False)),
            )
            champion = _metrics(data.get("champion"))
            scores = Scores(
                holdout_rows=int(data["holdout_rows"]),
                challenger=_metrics(data["challenger"]),
                trusted_rows=_optional_int(data.get("trusted_rows")),
                challenger_trusted=_metrics(data.get("challenger_trusted")),
                champion_given=bool(data.get("champion_given", champion is not None)),
                champion=champion,
                champion_trusted=_metrics(data.get("champion_trusted")),
                champion_seen_rows=_optional_int(data.get("champion_seen_rows")),
                champion_not_compared=_optional_text(data.get("champion_not_compared")),
            )
            details = dict(data.get("details") or {})
            return cls(
                settings=settings,
                scores=scores,
                verdict=Verdict(bool(data["passed"]), tuple(str(r) for r in data.get("reasons", ()))),
                task=_optional_text(data.get("task") or details.get("task")),
                champion_version=data.get("champion_version"),
                details=details,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise GateError(f"evaluation is malformed: {exc!r}") from exc


def reassess(evaluation: Evaluation, hyperparameters: Mapping[str, str]) -> Verdict:
    """The verdict recomputed from the scores recorded in ``evaluation``, under the gate settings among
    ``hyperparameters`` (the workflow's pinned ones, as strings); the task is the evaluation's.

    Fails closed (not passed, with the reason) on an evaluation that records no trusted rows (an older one) or
    no task; raises :class:`GateError` when the settings themselves are invalid.
    """
    if evaluation.task not in TASK_METRICS:
        return Verdict(False, (f"the evaluation records no known task ({evaluation.task!r}): it cannot be reassessed",))
    return decide(parse_gate_settings(hyperparameters, evaluation.task), evaluation.scores)
