"""Holdout metrics, computed the same way for the challenger and the champion.

Classification: ``f1`` and ``roc_auc`` of the positive class ``classes[1]`` when binary, macro f1 and
one-vs-rest ROC AUC otherwise; the class order is the model's own (sorted strings). Regression: rmse, mae, r2.
The gate also scores subsets of the holdout (:func:`subset_metrics`), where a metric can be undefined.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    log_loss,
    mean_absolute_error,
    r2_score,
    roc_auc_score,
    root_mean_squared_error,
)

from functions.common.bundle import Task
from functions.common.gate import Scores
from training.errors import TrainingFailure
from training.holdout import Split


def classification_metrics(classes: np.ndarray, target: pd.Series, probabilities: np.ndarray) -> dict[str, float]:
    labels = [str(c) for c in classes]
    predicted = np.asarray(labels, dtype=object)[probabilities.argmax(axis=1)]
    if len(labels) == 2:
        f1 = f1_score(target, predicted, pos_label=labels[1])
        auc = roc_auc_score(target == labels[1], probabilities[:, 1])
    else:
        f1 = f1_score(target, predicted, labels=labels, average="macro")
        auc = roc_auc_score(target, probabilities, multi_class="ovr", labels=labels)
    return {
        "accuracy": float(accuracy_score(target, predicted)),
        "f1": float(f1),
        "roc_auc": float(auc),
        "log_loss": float(log_loss(target, probabilities, labels=labels)),
    }


def regression_metrics(target: pd.Series, predicted: np.ndarray) -> dict[str, float]:
    return {
        "rmse": float(root_mean_squared_error(target, predicted)),
        "mae": float(mean_absolute_error(target, predicted)),
        "r2": float(r2_score(target, predicted)),
    }


def holdout_metrics(model: Any, task: Task, inputs: pd.DataFrame, target: pd.Series) -> dict[str, float]:
    """Score a fitted pipeline (challenger or champion) on the holdout."""
    if task == "classification":
        return classification_metrics(model.classes_, target, model.predict_proba(inputs))
    return regression_metrics(target, model.predict(inputs))


def subset_metrics(model: Any, task: Task, inputs: pd.DataFrame, target: pd.Series) -> dict[str, float] | None:
    """Metrics on some holdout rows; None without rows. A metric undefined on them (ROC AUC on a single class,
    r2 on one row) is left out, so the gate says it cannot be computed instead of comparing NaNs."""
    if not len(target):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        metrics = holdout_metrics(model, task, inputs, target)
    return {name: value for name, value in metrics.items() if math.isfinite(value)}


def gate_scores(
    challenger: Any,
    champion: Any | None,
    task: Task,
    inputs: pd.DataFrame,
    target: pd.Series,
    split: Split,
    *,
    champion_given: bool,
    champion_not_compared: str | None,
) -> Scores:
    """Both models on the holdout rows the gate scores and on the trusted ones among them. ``champion``: the
    champion's model when it is compared, else None."""

    def on(model: Any, positions: np.ndarray) -> dict[str, float] | None:
        return subset_metrics(model, task, inputs.iloc[positions], target.iloc[positions])

    champion_metrics = champion_trusted = None
    if champion is not None:
        try:
            champion_metrics, champion_trusted = on(champion, split.scored), on(champion, split.trusted)
        except Exception as exc:  # a pickled model can fail in any way; each means "cannot compare"
            raise TrainingFailure(f"the champion model cannot be scored on the holdout: {exc!r}") from exc
    return Scores(
        holdout_rows=len(split.holdout),
        challenger=on(challenger, split.scored),
        trusted_rows=len(split.trusted),
        challenger_trusted=on(challenger, split.trusted),
        champion_given=champion_given,
        champion=champion_metrics,
        champion_trusted=champion_trusted,
        champion_seen_rows=split.champion_seen,
        champion_not_compared=champion_not_compared,
    )
