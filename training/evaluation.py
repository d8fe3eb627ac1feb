"""Holdout metrics, computed the same way for the challenger and the champion.

Classification: ``f1`` and ``roc_auc`` of the positive class ``classes[1]`` when binary, macro f1 and
one-vs-rest ROC AUC otherwise; the class order is the model's own (sorted strings). Regression: rmse, mae, r2.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
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
