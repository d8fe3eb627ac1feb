"""Live quality: the metrics over the champion's predictions paired with their ground-truth feedback.

The pairs are joined by Athena (:func:`functions.monitor.queries.join_query`, by the join's rules of
:mod:`functions.common.labelled_sql`), over the champion's captures only: feedback for a prediction another version
served finds no capture and is counted unmatched. What comes back are aggregates, :class:`Labelled`, and every
metric is computed from them (none needs a pair of its own):

- Classification, from the (true, predicted) counts: accuracy, and F1: of the positive class for a binary model (the
  champion's metadata's ``positive_class``, else ``classes[1]``: the class whose probability the baseline tracks),
  else the macro average over every label seen in truth or predictions. A class never predicted nor true has no
  F1; a class with no true positive has F1 0.
- Regression, from the error sums: RMSE and MAE.

Standard library only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from functions.common.bundle import Task, positive_label

Confusion = Mapping[tuple[str, str], int]


@dataclass(frozen=True)
class Labelled:
    """The join's aggregates: how many predictions got a usable truth, and what the metrics need of them."""

    count: int = 0
    # Classification: (true label, predicted label) -> pairs, over the pairs whose prediction has a label.
    confusion: Confusion = field(default_factory=dict)
    # Regression: the pairs whose prediction is a finite number, and their errors' sums.
    scored: int = 0
    squared_error: float = 0.0
    absolute_error: float = 0.0


def accuracy(confusion: Confusion) -> float:
    total = sum(confusion.values())
    if not total:
        raise ValueError("accuracy of no pairs")
    return sum(n for (true, predicted), n in confusion.items() if true == predicted) / total


def _f1(confusion: Confusion, positive: str) -> float:
    tp = confusion.get((positive, positive), 0)
    fp = sum(n for (true, predicted), n in confusion.items() if true != positive and predicted == positive)
    fn = sum(n for (true, predicted), n in confusion.items() if true == positive and predicted != positive)
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def f1(confusion: Confusion, classes: Sequence[str], positive: str | None = None) -> float:
    """F1 of the positive class for two classes (``positive``, else ``classes[1]``), else the macro F1 over the labels
    in truth or predictions."""
    if not sum(confusion.values()):
        raise ValueError("F1 of no pairs")
    if len(classes) == 2:
        return _f1(confusion, str(positive_label(classes, positive)))
    labels = sorted({label for pair, n in confusion.items() if n for label in pair})
    return sum(_f1(confusion, label) for label in labels) / len(labels)


def rmse(scored: int, squared_error: float) -> float:
    if not scored:
        raise ValueError("RMSE of no pairs")
    return math.sqrt(squared_error / scored)


def mae(scored: int, absolute_error: float) -> float:
    if not scored:
        raise ValueError("MAE of no pairs")
    return absolute_error / scored


def live_quality(
    labelled: Labelled, task: Task, classes: Sequence[str], positive: str | None = None
) -> dict[str, float]:
    """``accuracy`` and ``f1`` (classification; ``positive``: a binary model's positive class, else ``classes[1]``)
    or ``rmse`` and ``mae`` (regression) over pairs whose prediction has an answer (a label or a finite value);
    empty when none has."""
    if task == "regression":
        if not labelled.scored:
            return {}
        return {
            "rmse": rmse(labelled.scored, labelled.squared_error),
            "mae": mae(labelled.scored, labelled.absolute_error),
        }
    if not sum(labelled.confusion.values()):
        return {}
    return {"accuracy": accuracy(labelled.confusion), "f1": f1(labelled.confusion, classes, positive)}
