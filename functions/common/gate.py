"""The promotion gate and the ``evaluation.json`` it produces.

The training program holds out a share of the data, scores the challenger and, when one is given, the live
champion on the holdout rows the champion was never fitted on, and the trusted ones among them (rows that are not
API callers' feedback), decides with :func:`decide`, and writes an :class:`Evaluation` to
``output/data/evaluation.json``. The workflow reads that file back with :meth:`Evaluation.from_dict` and recomputes
the verdict with :func:`reassess` under its own pinned settings instead of trusting the job's. The gate settings
are parsed from hyperparameter strings here only (:func:`parse_gate_settings`, :data:`GATE_PARSERS`).

Fewer rows than ``min_scored_rows`` (iris's 30) are judged on bootstrap bounds instead of point estimates
(:class:`Bootstrap`, :func:`_judge_small`), down to ``min_bootstrap_rows``.

Beside the metric, the verdict rests on guardrails judged from facts the evaluation records (a degenerate model,
per-class recall and F1 or MAE, slices of the trusted rows), and it has a third outcome: *held*
(:attr:`Verdict.held`, ``held`` in ``evaluation.json`` and in Register's result), a challenger that passed all else
but one of whose features alone scores near-perfectly. A held verdict is not passed: the workflow must send it to
the approval step whether or not approval is enabled, and promote it only on a person's approval.

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
# Fewer rows than min_scored_rows (iris and wine hold out 30-36) are judged on bootstrap bounds instead of point
# estimates; below this many, even those mean little (a resample of 10 rows repeats few distinct rows).
DEFAULT_MIN_BOOTSTRAP_ROWS = 20
# Each bound of a bootstrap interval is a one-sided bound at this confidence (the interval: 5th to 95th percentile).
BOOTSTRAP_CONFIDENCE = 0.95
# The guardrails beside the gate's metric, so that no single number decides: a challenger may lose this much to
# the champion on a secondary metric (per-class recall and F1, MAE) or on a slice of the trusted rows (one level of
# a categorical feature, the gate's metric). A loss is a difference, or for an error measure a share of the
# champion's value, so one tolerance fits every scale. Not 0: per-class and per-slice counts are small, so noisy.
DEFAULT_MAX_SECONDARY_REGRESSION = 0.05
DEFAULT_MAX_SLICE_REGRESSION = 0.05
# A slice with fewer trusted rows is not compared on its own (a ROC AUC on 100 rows already varies by ~0.05).
DEFAULT_MIN_SLICE_ROWS = 100
# One feature that alone scores this well (ROC AUC, or r2 for regression) is more likely a leak than a signal.
DEFAULT_MAX_SINGLE_FEATURE_SCORE = 0.99
# The score one feature earns alone, per task: scale-free, so one threshold fits every data set.
SINGLE_FEATURE_METRIC = {"classification": "roc_auc", "regression": "r2"}


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
    "min_bootstrap_rows": text_values.positive_int,
    "allow_schema_change": text_values.boolean,
    "max_secondary_regression": text_values.non_negative,
    "max_slice_regression": text_values.non_negative,
    "min_slice_rows": text_values.positive_int,
    "max_single_feature_score": text_values.fraction,
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
    # Fewer rows than min_scored_rows, but at least this many: judged on bootstrap bounds (see _judge_small).
    min_bootstrap_rows: int = DEFAULT_MIN_BOOTSTRAP_ROWS
    # A champion given but not compared (its feature schema differs) does not fail the gate.
    allow_schema_change: bool = False
    # ...and, against a compared champion, lose at most this on per-class recall and F1 (MAE for regression)...
    max_secondary_regression: float = DEFAULT_MAX_SECONDARY_REGRESSION
    # ...and on each slice of the trusted rows with at least min_slice_rows rows.
    max_slice_regression: float = DEFAULT_MAX_SLICE_REGRESSION
    min_slice_rows: int = DEFAULT_MIN_SLICE_ROWS
    # A challenger one of whose features alone scores at least this is held for a person's approval.
    max_single_feature_score: float = DEFAULT_MAX_SINGLE_FEATURE_SCORE

    def __post_init__(self) -> None:
        higher_is_better(self.metric)
        for name in ("min_improvement", "max_trusted_regression", "max_secondary_regression", "max_slice_regression"):
            value = getattr(self, name)
            if value < 0 or not math.isfinite(value):
                raise GateError(f"{name} must be a finite number >= 0, got {value}")
        for name in ("min_scored_rows", "min_bootstrap_rows", "min_slice_rows"):
            if getattr(self, name) < 1:
                raise GateError(f"{name} must be an integer >= 1, got {getattr(self, name)}")
        if not 0 <= self.max_single_feature_score <= 1:
            raise GateError(f"max_single_feature_score must be between 0 and 1, got {self.max_single_feature_score}")

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
    # Held for a person: every check passed but one only a person can settle (a near-perfect score from one
    # feature). Never set with ``passed``, so a workflow that does not read it rejects the version. The workflow
    # routes a held version to its approval step even when retraining.approval is off; approved, it is promoted.
    held: bool = False


@dataclass(frozen=True)
class Confusion:
    """A classifier's confusion matrix: ``counts[i][j]`` rows of class ``labels[i]`` predicted ``labels[j]``."""

    labels: tuple[str, ...]
    counts: tuple[tuple[int, ...], ...]

    def __post_init__(self) -> None:
        if len(self.counts) != len(self.labels) or any(len(row) != len(self.labels) for row in self.counts):
            size = len(self.labels)
            raise GateError(f"a confusion matrix over {size} labels must hold {size} rows of {size} counts")

    def recall(self, label: str) -> float | None:
        """None when no row is of this class."""
        i = self.labels.index(label)
        support = sum(self.counts[i])
        return None if support == 0 else self.counts[i][i] / support

    def f1(self, label: str) -> float | None:
        """None when the class is neither present nor predicted."""
        i = self.labels.index(label)
        hits = self.counts[i][i]
        misses = sum(self.counts[i]) + sum(row[i] for row in self.counts) - 2 * hits
        return None if hits + misses == 0 else 2 * hits / (2 * hits + misses)

    @property
    def classes_predicted(self) -> int:
        return sum(1 for i in range(len(self.labels)) if any(row[i] for row in self.counts))

    def per_class(self) -> dict[str, dict[str, float | int | None]]:
        """Per class: its rows, how often it was predicted, recall and F1 (for evaluation.json's readers)."""
        return {
            label: {
                "rows": sum(self.counts[i]),
                "predicted": sum(row[i] for row in self.counts),
                "recall": self.recall(label),
                "f1": self.f1(label),
            }
            for i, label in enumerate(self.labels)
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "labels": list(self.labels),
            "counts": [list(row) for row in self.counts],
            "per_class": self.per_class(),
        }

    @classmethod
    def from_dict(cls, data: Any) -> Confusion | None:
        if data is None:
            return None
        return cls(
            labels=tuple(str(label) for label in data["labels"]),
            counts=tuple(tuple(int(n) for n in row) for row in data["counts"]),
        )


@dataclass(frozen=True)
class Slice:
    """Both models' metrics on the trusted rows where one categorical feature has one level."""

    feature: str
    level: str
    rows: int
    challenger: dict[str, float] | None
    champion: dict[str, float] | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "level": self.level,
            "rows": self.rows,
            "challenger": self.challenger,
            "champion": self.champion,
        }


Interval = tuple[float, float]


@dataclass(frozen=True)
class Bootstrap:
    """Resampled scores on rows too few for a point estimate: ``resamples`` draws of as many rows, with
    replacement, each scored by every model. Per metric, the ``confidence`` interval's ends (each a one-sided
    bound) of the challenger's value, and of its gain (positive: the challenger is better) over a no-skill baseline
    (each class's share of the rows as its probability, or the rows' mean) and over the champion on the same draw.
    A metric undefined on too many draws is left out."""

    rows: int
    resamples: int
    seed: int
    confidence: float
    challenger: dict[str, Interval]
    over_baseline: dict[str, Interval]
    # None: no champion compared.
    over_champion: dict[str, Interval] | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "resamples": self.resamples,
            "seed": self.seed,
            "confidence": self.confidence,
            "challenger": _interval_lists(self.challenger),
            "over_baseline": _interval_lists(self.over_baseline),
            "over_champion": None if self.over_champion is None else _interval_lists(self.over_champion),
        }

    @classmethod
    def from_dict(cls, data: Any) -> Bootstrap | None:
        if data is None:
            return None
        over_champion = data.get("over_champion")
        return cls(
            rows=int(data["rows"]),
            resamples=int(data["resamples"]),
            seed=int(data["seed"]),
            confidence=float(data["confidence"]),
            challenger=_intervals(data["challenger"]),
            over_baseline=_intervals(data["over_baseline"]),
            over_champion=None if over_champion is None else _intervals(over_champion),
        )


def _interval_lists(intervals: Mapping[str, Interval]) -> dict[str, list[float]]:
    return {name: [low, high] for name, (low, high) in intervals.items()}


def _intervals(data: Any) -> dict[str, Interval]:
    return {str(name): (float(low), float(high)) for name, (low, high) in data.items()}


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
    # The guardrails' facts; None: not recorded (an older evaluation), and the gate then fails closed.
    # The distinct predictions (labels, or values for regression) of the challenger on the scored rows, and the
    # distinct targets there: one prediction for several targets is a degenerate model.
    distinct_predictions: int | None = None
    distinct_targets: int | None = None
    # Classification: both models' confusion matrices on the trusted rows (per-class recall and F1).
    challenger_confusion: Confusion | None = None
    champion_confusion: Confusion | None = None
    # Both models on each level of each categorical feature among the trusted rows, with min_slice_rows rows.
    slices: tuple[Slice, ...] | None = None
    # The score each feature earns alone on the scored rows (SINGLE_FEATURE_METRIC of the task).
    feature_scores: dict[str, float] | None = None
    # Bootstrap bounds on the scored rows, and on the trusted ones, when they are fewer than min_scored_rows;
    # None: not resampled (enough rows, or an evaluation written without them: the gate then fails closed).
    bootstrap: Bootstrap | None = None
    bootstrap_trusted: Bootstrap | None = None

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


def gain(metric: str, challenger: float, champion: float) -> float:
    """How much better ``challenger`` is than ``champion`` in ``metric`` (negative: worse)."""
    return challenger - champion if higher_is_better(metric) else champion - challenger


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
        if scored < settings.min_bootstrap_rows:
            return False, [
                *reasons,
                f"only {scored} holdout rows the champion never saw (min_scored_rows {settings.min_scored_rows}, "
                f"min_bootstrap_rows {settings.min_bootstrap_rows}): too few to compare the models",
            ]
        small_passed, small_reason = _judge_small(
            settings,
            scores.bootstrap,
            scored,
            "holdout rows the champion never saw",
            ("min_improvement", settings.min_improvement),
        )
        return passed and small_passed, [*reasons, small_reason]
    live = _value(metric, scores.champion)
    if live is None:
        return False, [*reasons, f"champion {metric} cannot be computed on the {scored} scored holdout rows"]
    improvement = gain(metric, score, live)
    beats = improvement >= settings.min_improvement
    reasons.append(
        f"challenger {metric}={score:.6g} vs champion {live:.6g} on the same {scored} holdout rows: "
        f"improvement {improvement:+.6g} {'meets' if beats else 'is below'} min_improvement "
        f"{settings.min_improvement:.6g}"
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
    if rows < settings.min_bootstrap_rows:
        return False, (
            f"only {rows} trusted holdout rows (min_scored_rows {settings.min_scored_rows}, min_bootstrap_rows "
            f"{settings.min_bootstrap_rows}): too few to check the challenger on data that is not feedback"
        )
    if rows < settings.min_scored_rows:
        # Against a champion: no loss beyond the tolerance, the gain's lower bound at least its negation.
        least = ("-max_trusted_regression", 0.0 - settings.max_trusted_regression) if scores.champion_compared else None
        return _judge_small(settings, scores.bootstrap_trusted, rows, "trusted holdout rows", least)
    score = _value(metric, scores.challenger_trusted)
    if score is None:
        return False, f"challenger {metric} cannot be computed on the {rows} trusted holdout rows"
    if scores.champion_compared:
        live = _value(metric, scores.champion_trusted)
        if live is None:
            return False, f"champion {metric} cannot be computed on the {rows} trusted holdout rows"
        regression = gain(metric, live, score)
        within = regression <= settings.max_trusted_regression
        return within, (
            f"on the {rows} trusted holdout rows: challenger {metric}={score:.6g} vs champion {live:.6g}, "
            f"regression {regression:+.6g} {'within' if within else 'exceeds'} max_trusted_regression "
            f"{settings.max_trusted_regression:.6g}"
        )
    if settings.min_metric is None:
        return True, f"challenger {metric}={score:.6g} on the {rows} trusted holdout rows (no min_metric to meet)"
    return _meets_floor(settings, score, f" on the {rows} trusted holdout rows")


def _bounds(interval: Interval) -> str:
    return f"[{interval[0]:.4g}, {interval[1]:.4g}]"


def _judge_small(
    settings: GateSettings, boot: Bootstrap | None, rows: int, where: str, least: tuple[str, float] | None
) -> tuple[bool, str]:
    """Rows fewer than min_scored_rows (at least min_bootstrap_rows): the verdict rests on the pessimistic ends of
    the bootstrap intervals, so that noise on few rows cannot pass a challenger. Against a champion, the lower bound
    of the paired gain must reach ``least`` (the setting that sets it, and its value). Without one (``least``
    None), the challenger's pessimistic bound must meet min_metric, and the lower bound of its gain over a no-skill
    baseline must be above 0."""
    metric = settings.metric
    header = f"small data: {rows} {where}, fewer than min_scored_rows {settings.min_scored_rows}"
    if boot is None or boot.rows != rows:
        return False, f"{header}, and the evaluation records no bootstrap bounds for them: the gate fails closed"
    header += f", judged on bootstrap bounds ({boot.resamples} resamples, each bound {boot.confidence:.0%} one-sided)"
    checks: list[tuple[bool, str]] = []
    if least is not None:
        paired = (boot.over_champion or {}).get(metric)
        if paired is None:
            return False, f"{header}: the gain over the champion in {metric} cannot be bounded"
        name, value = least
        meets = paired[0] >= value
        checks.append(
            (meets, f"gain over the champion in {metric} {_bounds(paired)}, lower bound "
             f"{'meets' if meets else 'is below'} {name} {value:.6g}")
        )  # fmt: skip
    else:
        interval, paired = boot.challenger.get(metric), boot.over_baseline.get(metric)
        if interval is None or paired is None:
            return False, f"{header}: the challenger's {metric} cannot be bounded (undefined on too many resamples)"
        if settings.min_metric is not None:
            bound = interval[0] if higher_is_better(metric) else interval[1]
            checks.append(_meets_floor(settings, bound, f" at the pessimistic end of {_bounds(interval)}"))
        skilled = paired[0] > 0
        checks.append(
            (skilled, f"gain over a no-skill baseline (each class's share, or the mean) in {metric} {_bounds(paired)}, "
             f"{'lower bound above 0' if skilled else 'no skill shown: the lower bound is not above 0'}")
        )  # fmt: skip
    return all(ok for ok, _ in checks), f"{header}: " + "; ".join(reason for _, reason in checks)


def _loss(metric: str, challenger: float, champion: float) -> float:
    """How much worse the challenger is: a difference, or for an error measure a share of the champion's."""
    if metric in LOWER_IS_BETTER:
        worse = challenger - champion
        return worse / champion if champion > 0 else (math.inf if worse > 0 else 0.0)
    return champion - challenger


def _older(what: str) -> str:
    return f"the evaluation records no {what} (written by an older training program): the gate fails closed"


def _judge_degenerate(settings: GateSettings, scores: Scores) -> list[str]:
    predictions, targets = scores.distinct_predictions, scores.distinct_targets
    if predictions is None or targets is None:
        return [_older("count of distinct predictions")]
    if predictions > 1 or targets <= 1:
        return []
    what = "class" if settings.metric in CLASSIFICATION_METRICS else "value"
    return [
        f"the challenger predicts one {what} on all {scores.scored_rows} scored holdout rows, which hold {targets} "
        "distinct targets: a degenerate model never passes"
    ]


def _judge_secondary(settings: GateSettings, scores: Scores) -> list[str]:
    """Per-class recall and F1 (MAE for regression) on the trusted rows, against the champion's."""
    mine, theirs = scores.challenger_confusion, scores.champion_confusion
    checks: list[tuple[str, str, float | None, float | None]]
    if settings.metric in CLASSIFICATION_METRICS:
        if mine is None or theirs is None:
            return [_older("confusion matrices of the trusted rows")]
        if theirs.classes_predicted <= 1:  # a champion that predicts one class: its recall of 1 is no bar
            return []
        checks = [
            (f"{name} of class {label!r}", name, getattr(mine, name)(label), getattr(theirs, name)(label))
            for label in theirs.labels
            if label in mine.labels
            for name in ("recall", "f1")
        ]
    else:
        checks = [("mae", "mae", _value("mae", scores.challenger_trusted), _value("mae", scores.champion_trusted))]
    failures = []
    for what, metric, challenger, champion in checks:
        if challenger is None or champion is None:  # e.g. a class absent from the trusted rows
            continue
        where = f"the {scores.trusted_rows} trusted holdout rows"
        failures += _regression(where, what, metric, challenger, champion, "max_secondary_regression", settings)
    return failures


def _judge_slices(settings: GateSettings, scores: Scores) -> list[str]:
    """The gate's metric on each slice of the trusted rows with min_slice_rows rows, against the champion's."""
    if scores.slices is None:
        return [_older("slices of the trusted rows")]
    metric, failures = settings.metric, []
    for part in scores.slices:
        challenger, champion = _value(metric, part.challenger), _value(metric, part.champion)
        if part.rows < settings.min_slice_rows or challenger is None or champion is None:
            continue  # too few rows, or the metric is undefined there (a slice of one class)
        where = f"the {part.rows} trusted holdout rows with {part.feature}={part.level!r}"
        failures += _regression(where, metric, metric, challenger, champion, "max_slice_regression", settings)
    return failures


def _regression(
    where: str, what: str, metric: str, challenger: float, champion: float, limit: str, settings: GateSettings
) -> list[str]:
    """The reason the challenger lost more than the setting ``limit`` allows on ``what``, or none."""
    loss, allowed = _loss(metric, challenger, champion), getattr(settings, limit)
    if loss <= allowed:
        return []
    return [
        f"on {where}: challenger {what}={challenger:.6g} vs champion {champion:.6g}, a loss of {loss:.6g} beyond "
        f"{limit} {allowed:.6g}"
    ]


def _judge_single_feature(settings: GateSettings, scores: Scores) -> tuple[list[str], str | None]:
    """Failures (nothing recorded), and the reason to hold the challenger when one feature alone is near-perfect."""
    if scores.feature_scores is None:
        return [_older("score of each feature alone")], None
    if not scores.feature_scores:
        return [], None
    feature, score = max(scores.feature_scores.items(), key=lambda item: item[1])
    if score < settings.max_single_feature_score:
        return [], None
    metric = SINGLE_FEATURE_METRIC["classification" if settings.metric in CLASSIFICATION_METRICS else "regression"]
    return [], (
        f"held for approval: feature {feature!r} alone scores {metric}={score:.6g} on the scored holdout rows "
        f"(max_single_feature_score {settings.max_single_feature_score:.6g}), more likely a leak (an id or the "
        "target in disguise) than a signal"
    )


def decide(settings: GateSettings, scores: Scores) -> Verdict:
    """Pass when, on the holdout rows the champion never saw, the challenger meets the floor and beats the
    champion by ``min_improvement``, and, on the trusted ones among them, does not regress beyond
    ``max_trusted_regression`` (meets the floor, without a champion); each set holds ``min_scored_rows`` rows.
    A set with fewer, but at least ``min_bootstrap_rows``, is judged on its bootstrap bounds instead
    (:func:`_judge_small`).

    The guardrails: a degenerate challenger never passes; against a compared champion, no secondary metric and
    no slice of the trusted rows regresses beyond its tolerance. A challenger that passes all of that but one of
    whose features alone scores ``max_single_feature_score`` is held for approval (:attr:`Verdict.held`).
    Passing guardrails add no reason; each failing one adds its own, before the trusted rows' reason."""
    holdout_passed, reasons = _judge_holdout(settings, scores)
    trusted_passed, trusted_reason = _judge_trusted(settings, scores)
    failures = _judge_degenerate(settings, scores)
    if scores.champion_compared:
        failures += _judge_secondary(settings, scores) + _judge_slices(settings, scores)
    unrecorded, hold = _judge_single_feature(settings, scores)
    failures += unrecorded
    passed = holdout_passed and trusted_passed and not failures
    if passed and hold is not None:
        return Verdict(False, (*reasons, trusted_reason, hold), held=True)
    return Verdict(passed, (*reasons, *failures, trusted_reason))


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
    # Binary classification: the class ``f1`` is of (the run's ``positive_class``). None: not binary, or an older
    # evaluation (the second of the sorted classes).
    positive_class: str | None = None
    # The challenger's permutation importances (functions.common.importances), from Evaluate: informational, beside
    # the scores the verdict rests on. None: not computed (the training job's own evaluation, an older one).
    importances: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        scores = self.scores
        return {
            **{f.name: getattr(self.settings, f.name) for f in fields(self.settings)},
            "task": self.task,
            "positive_class": self.positive_class,
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
            "distinct_predictions": scores.distinct_predictions,
            "distinct_targets": scores.distinct_targets,
            "challenger_confusion": None
            if scores.challenger_confusion is None
            else scores.challenger_confusion.to_dict(),
            "champion_confusion": None if scores.champion_confusion is None else scores.champion_confusion.to_dict(),
            "slices": None if scores.slices is None else [part.to_dict() for part in scores.slices],
            "feature_scores": scores.feature_scores,
            "bootstrap": None if scores.bootstrap is None else scores.bootstrap.to_dict(),
            "bootstrap_trusted": None if scores.bootstrap_trusted is None else scores.bootstrap_trusted.to_dict(),
            "champion_version": self.champion_version,
            "passed": self.verdict.passed,
            "held": self.verdict.held,
            "reasons": list(self.verdict.reasons),
            "details": self.details,
            "importances": self.importances,
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
                min_bootstrap_rows=int(data.get("min_bootstrap_rows", DEFAULT_MIN_BOOTSTRAP_ROWS)),
                allow_schema_change=bool(data.get("allow_schema_change", False)),
                max_secondary_regression=float(data.get("max_secondary_regression", DEFAULT_MAX_SECONDARY_REGRESSION)),
                max_slice_regression=float(data.get("max_slice_regression", DEFAULT_MAX_SLICE_REGRESSION)),
                min_slice_rows=int(data.get("min_slice_rows", DEFAULT_MIN_SLICE_ROWS)),
                max_single_feature_score=float(data.get("max_single_feature_score", DEFAULT_MAX_SINGLE_FEATURE_SCORE)),
            )
            slices = data.get("slices")
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
                distinct_predictions=_optional_int(data.get("distinct_predictions")),
                distinct_targets=_optional_int(data.get("distinct_targets")),
                challenger_confusion=Confusion.from_dict(data.get("challenger_confusion")),
                champion_confusion=Confusion.from_dict(data.get("champion_confusion")),
                slices=None
                if slices is None
                else tuple(
                    Slice(
                        feature=str(part["feature"]),
                        level=str(part["level"]),
                        rows=int(part["rows"]),
                        challenger=_metrics(part.get("challenger")),
                        champion=_metrics(part.get("champion")),
                    )
                    for part in slices
                ),
                feature_scores=_metrics(data.get("feature_scores")),
                bootstrap=Bootstrap.from_dict(data.get("bootstrap")),
                bootstrap_trusted=Bootstrap.from_dict(data.get("bootstrap_trusted")),
            )
            details = dict(data.get("details") or {})
            return cls(
                settings=settings,
                scores=scores,
                verdict=Verdict(
                    bool(data["passed"]),
                    tuple(str(r) for r in data.get("reasons", ())),
                    held=bool(data.get("held", False)),
                ),
                task=_optional_text(data.get("task") or details.get("task")),
                champion_version=data.get("champion_version"),
                details=details,
                positive_class=_optional_text(data.get("positive_class")),
                importances=None if data.get("importances") is None else dict(data["importances"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise GateError(f"evaluation is malformed: {exc!r}") from exc


def reassess(evaluation: Evaluation, hyperparameters: Mapping[str, str]) -> Verdict:
    """The verdict recomputed from the scores recorded in ``evaluation``, under the gate settings among
    ``hyperparameters`` (the workflow's pinned ones, as strings); the task is the evaluation's.

    Fails closed (not passed, with the reason) on an evaluation that records no trusted rows (an older one), no
    task, or F1 of another class than the pinned ``positive_class``; raises :class:`GateError` when the settings
    themselves are invalid.
    """
    if evaluation.task not in TASK_METRICS:
        return Verdict(False, (f"the evaluation records no known task ({evaluation.task!r}): it cannot be reassessed",))
    positive = hyperparameters.get("positive_class") or None
    if positive is not None and evaluation.positive_class != positive:
        return Verdict(
            False,
            (
                f"the evaluation scored F1 of the class {evaluation.positive_class!r}, not the pinned positive_class "
                f"{positive!r}: it cannot be reassessed",
            ),
        )
    return decide(parse_gate_settings(hyperparameters, evaluation.task), evaluation.scores)
