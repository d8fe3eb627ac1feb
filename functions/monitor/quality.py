"""Live quality: ground-truth feedback joined with the predictions it is about, and the metrics over the pairs.

Feedback refers to a prediction by its id, and the id tells when the prediction was served
(:func:`functions.common.records.prediction_time`), hence the one capture partition (model version, day) that
holds it (:func:`~functions.monitor.adapters.capture_days`): the join reads only those days of the champion's
captures, however long ago they were. Feedback for
a prediction another version served, or one not captured (sampling), finds no capture and is counted unmatched.

- Classification: accuracy, and F1: of the positive class ``classes[1]`` for a binary model (the class whose
  probability the baseline tracks), else the macro average over every label seen in truth or predictions.
  A class never predicted nor true has no F1; a class with no true positive has F1 0.
- Regression: RMSE and MAE.

numpy and the standard library only.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import numpy as np

from functions.common.bundle import Task
from functions.common.records import FeedbackRecord, InvalidPredictionId, PredictionRecord, prediction_time


@dataclass(frozen=True)
class JoinPlan:
    """The usable feedback (one per prediction: the latest), and which capture days hold its predictions."""

    feedback: dict[str, FeedbackRecord]
    days: dict[date, set[str]]
    # Feedback dropped before the join: an id this service never issued, no truth for the task, a prediction
    # older than the feedback age limit, or superseded by later feedback for the same prediction.
    rejected: int = 0


@dataclass(frozen=True)
class Joined:
    pairs: list[tuple[PredictionRecord, FeedbackRecord]] = field(default_factory=list)
    # Usable feedback whose prediction is not among the champion's captures.
    unmatched: int = 0


def _truth(record: FeedbackRecord, task: Task) -> str | float | None:
    if task == "regression":
        value = record.value
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return None
        return float(value)
    return None if record.label is None else str(record.label)


def plan_join(
    feedback: Iterable[FeedbackRecord],
    task: Task,
    now: datetime,
    max_age: timedelta,
    partitions: Callable[[datetime], Iterable[date]] = lambda served: (served.date(),),
) -> JoinPlan:
    """Keep the latest feedback per prediction id (a client may correct itself) and locate each prediction in the
    capture days ``partitions`` gives for the time it was served."""
    latest: dict[str, FeedbackRecord] = {}
    rejected = 0
    for record in feedback:
        if _truth(record, task) is None:
            rejected += 1
            continue
        previous = latest.get(record.prediction_id)
        if previous is not None:
            rejected += 1  # superseded: of the two, the later one counts (ISO 8601 UTC times sort as strings)
        if previous is None or record.time >= previous.time:
            latest[record.prediction_id] = record
    usable: dict[str, FeedbackRecord] = {}
    days: dict[date, set[str]] = defaultdict(set)
    oldest = now - max_age
    for prediction_id, record in latest.items():
        try:
            served = prediction_time(prediction_id)
        except InvalidPredictionId:
            rejected += 1
            continue
        if served < oldest:
            rejected += 1
            continue
        usable[prediction_id] = record
        for day in partitions(served):
            days[day].add(prediction_id)
    return JoinPlan(usable, dict(days), rejected)


def join(plan: JoinPlan, captures: Mapping[str, PredictionRecord]) -> Joined:
    pairs = [(captures[pid], record) for pid, record in sorted(plan.feedback.items()) if pid in captures]
    return Joined(pairs, len(plan.feedback) - len(pairs))


def accuracy(truth: Sequence[str], predicted: Sequence[str]) -> float:
    if not truth:
        raise ValueError("accuracy of no pairs")
    return sum(t == p for t, p in zip(truth, predicted, strict=True)) / len(truth)


def _f1(truth: Sequence[str], predicted: Sequence[str], positive: str) -> float:
    tp = sum(t == positive and p == positive for t, p in zip(truth, predicted, strict=True))
    fp = sum(t != positive and p == positive for t, p in zip(truth, predicted, strict=True))
    fn = sum(t == positive and p != positive for t, p in zip(truth, predicted, strict=True))
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def f1(truth: Sequence[str], predicted: Sequence[str], classes: Sequence[str]) -> float:
    """F1 of ``classes[1]`` for two classes, else the macro F1 over the labels in ``truth`` or ``predicted``."""
    if not truth:
        raise ValueError("F1 of no pairs")
    if len(classes) == 2:
        return _f1(truth, predicted, classes[1])
    labels = sorted(set(truth) | set(predicted))
    return sum(_f1(truth, predicted, label) for label in labels) / len(labels)


def rmse(truth: Sequence[float], predicted: Sequence[float]) -> float:
    errors = np.asarray(predicted, dtype=np.float64) - np.asarray(truth, dtype=np.float64)
    if not errors.size:
        raise ValueError("RMSE of no pairs")
    return float(np.sqrt(np.mean(errors**2)))


def mae(truth: Sequence[float], predicted: Sequence[float]) -> float:
    errors = np.asarray(predicted, dtype=np.float64) - np.asarray(truth, dtype=np.float64)
    if not errors.size:
        raise ValueError("MAE of no pairs")
    return float(np.mean(np.abs(errors)))


def live_quality(
    pairs: Sequence[tuple[PredictionRecord, FeedbackRecord]], task: Task, classes: Sequence[str]
) -> dict[str, float]:
    """``accuracy`` and ``f1`` (classification) or ``rmse`` and ``mae`` (regression) over pairs whose prediction
    has an answer (a label or a finite value); empty when none has."""
    if task == "regression":
        numbers = [
            (float(truth), float(record.value))
            for record, feedback in pairs
            if (truth := _truth(feedback, task)) is not None
            and isinstance(record.value, int | float)
            and math.isfinite(record.value)
        ]
        if not numbers:
            return {}
        truths, values = zip(*numbers, strict=True)
        return {"rmse": rmse(truths, values), "mae": mae(truths, values)}
    labels = [
        (str(truth), str(record.label))
        for record, feedback in pairs
        if (truth := _truth(feedback, task)) is not None and record.label is not None
    ]
    if not labels:
        return {}
    true_labels, predicted = zip(*labels, strict=True)
    return {"accuracy": accuracy(true_labels, predicted), "f1": f1(true_labels, predicted, classes)}
