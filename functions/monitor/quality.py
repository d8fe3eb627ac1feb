"""Live quality: the metrics over the champion's predictions paired with their ground-truth feedback.

The pairs come from the one join of captures and feedback (:mod:`functions.common.labelled`), over the
champion's captures only: feedback for a prediction another version served finds no capture and is counted
unmatched.

- Classification: accuracy, and F1: of the positive class ``classes[1]`` for a binary model (the class whose
  probability the baseline tracks), else the macro average over every label seen in truth or predictions.
  A class never predicted nor true has no F1; a class with no true positive has F1 0.
- Regression: RMSE and MAE.

numpy and the standard library only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from functions.common.bundle import Task
from functions.common.labelled import truth
from functions.common.records import FeedbackRecord, PredictionRecord


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
            (float(found), float(record.value))
            for record, feedback in pairs
            if (found := truth(feedback, task)) is not None
            and isinstance(record.value, int | float)
            and math.isfinite(record.value)
        ]
        if not numbers:
            return {}
        truths, values = zip(*numbers, strict=True)
        return {"rmse": rmse(truths, values), "mae": mae(truths, values)}
    labels = [
        (str(found), str(record.label))
        for record, feedback in pairs
        if (found := truth(feedback, task)) is not None and record.label is not None
    ]
    if not labels:
        return {}
    true_labels, predicted = zip(*labels, strict=True)
    return {"accuracy": accuracy(true_labels, predicted), "f1": f1(true_labels, predicted, classes)}
