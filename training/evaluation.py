"""Holdout metrics, computed the same way for the challenger and the champion.

Classification: ``f1`` and ``roc_auc`` of the positive class ``classes[1]`` when binary, macro f1 and
one-vs-rest ROC AUC otherwise; the class order is the model's own (sorted strings). Regression: rmse, mae, r2.
The gate also scores subsets of the holdout (:func:`subset_metrics`), where a metric can be undefined, and records
the facts its guardrails judge (functions.common.gate): distinct predictions, confusion matrices, slices of the
trusted rows, and the score each feature earns alone.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
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

from functions.common.bundle import FeatureType, Task
from functions.common.gate import Confusion, Scores, Slice
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


# Numeric features are cut at this many quantiles of the training rows to score them alone: fine enough that a
# feature which sorts the target (an id numbered by outcome) reaches a near-perfect score.
SINGLE_FEATURE_BINS = 100


def distinct_count(values: np.ndarray | pd.Series) -> int:
    return int(pd.Series(values).nunique())


def confusion(model: Any, inputs: pd.DataFrame, target: pd.Series) -> Confusion:
    """Over the model's own classes; rows of a class the model does not know are left out (none in its own data)."""
    labels = tuple(str(c) for c in model.classes_)
    counts = np.zeros((len(labels), len(labels)), dtype=np.int64)
    if len(target):
        actual = pd.Categorical(target.astype(str), categories=labels).codes
        predicted = pd.Categorical([str(p) for p in model.predict(inputs)], categories=labels).codes
        known = actual >= 0
        np.add.at(counts, (actual[known], predicted[known]), 1)
    return Confusion(labels, tuple(tuple(int(n) for n in row) for row in counts))


def _bins(column: pd.Series, kind: FeatureType, train: np.ndarray) -> np.ndarray:
    """One integer key per row: the category, or the quantile bin of the training rows' values; missing values
    share a key of their own."""
    if kind == "categorical":
        codes = pd.factorize(column, use_na_sentinel=True)[0]
        return np.where(codes < 0, codes.max(initial=0) + 1, codes)
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
    known = values[train][~np.isnan(values[train])]
    cuts = np.linspace(0, 1, SINGLE_FEATURE_BINS + 1)[1:-1]
    edges = np.unique(np.quantile(known, cuts)) if len(known) else np.empty(0)
    return np.where(np.isnan(values), len(edges) + 1, np.searchsorted(edges, values, side="right"))


def _binned_alone(task: Task, keys: np.ndarray, target: np.ndarray, split: Split) -> float:
    """The target's mean (class shares) per key on the training rows, scored on the scored rows; a key the
    training rows lack gets the training rows' overall mean (shares)."""
    train, scored = split.train, split.scored
    size = int(keys.max(initial=0)) + 1
    rows = np.bincount(keys[train], minlength=size).astype(float)
    seen = rows[keys[scored]] > 0
    if task == "regression":
        means = np.bincount(keys[train], weights=target[train], minlength=size) / np.maximum(rows, 1)
        return float(r2_score(target[scored], np.where(seen, means[keys[scored]], target[train].mean())))
    classes = int(target.max()) + 1
    flat = np.bincount(keys[train] * classes + target[train], minlength=size * classes)
    counts = flat.reshape(size, classes).astype(float)
    shares = counts / np.maximum(rows, 1)[:, None]
    probabilities = np.where(seen[:, None], shares[keys[scored]], counts.sum(axis=0) / len(train))
    actual = target[scored]
    if classes == 2:
        return float(roc_auc_score(actual == 1, probabilities[:, 1]))
    present = np.unique(actual)
    probabilities = probabilities[:, present] / np.maximum(probabilities[:, present].sum(axis=1, keepdims=True), 1e-12)
    return float(roc_auc_score(actual, probabilities, multi_class="ovr", labels=present))


def _monotone_alone(task: Task, values: np.ndarray, target: np.ndarray) -> float:
    """How well a numeric feature's own order sorts the target, either way: bins blur an exact copy."""
    known = ~np.isnan(values)
    values, target = values[known], target[known]
    if task == "regression":
        return float(pd.Series(values).rank().corr(pd.Series(target).rank()) ** 2)
    if target.max(initial=0) != 1:  # binary only
        return math.nan
    auc = float(roc_auc_score(target == 1, values))
    return max(auc, 1 - auc)


def encode_target(task: Task, target: pd.Series) -> np.ndarray:
    """Floats for regression; for classification each row's index among the sorted labels."""
    if task == "regression":
        return target.to_numpy(dtype=float)
    return np.unique(target.astype(str).to_numpy(), return_inverse=True)[1]


def feature_alone(task: Task, column: pd.Series, kind: FeatureType, target: np.ndarray, split: Split) -> float | None:
    """How well one feature alone predicts the target (:func:`encode_target`) on the scored rows
    (gate.SINGLE_FEATURE_METRIC: ROC AUC, or r2). None where undefined (one class, or no rows)."""
    actual = target[split.scored]
    if len(np.unique(actual)) < 2:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        scores = [_binned_alone(task, _bins(column, kind, split.train), target, split)]
        if kind == "numeric":
            values = pd.to_numeric(column.iloc[split.scored], errors="coerce").to_numpy(dtype=float)
            scores.append(_monotone_alone(task, values, actual))
    finite = [score for score in scores if math.isfinite(score)]
    return max(finite) if finite else None


def feature_scores(
    task: Task, inputs: pd.DataFrame, target: pd.Series, types: Mapping[str, FeatureType], split: Split
) -> dict[str, float]:
    """Per feature the model uses, its score alone (gate.SINGLE_FEATURE_METRIC); undefined ones left out."""
    encoded = encode_target(task, target)
    scores = {}
    for name, kind in types.items():
        score = feature_alone(task, inputs[name], kind, encoded, split)
        if score is not None:
            scores[name] = score
    return scores


def slices(
    challenger: Any,
    champion: Any,
    task: Task,
    inputs: pd.DataFrame,
    target: pd.Series,
    types: Mapping[str, FeatureType],
    trusted: np.ndarray,
    min_rows: int,
) -> tuple[Slice, ...]:
    """Both models on each level of each categorical feature among the trusted rows that has ``min_rows``."""
    found = []
    for name, kind in types.items():
        if kind != "categorical":
            continue
        levels = inputs[name].iloc[trusted]
        for level, rows in levels.value_counts().items():
            if rows < min_rows:
                continue
            positions = trusted[(levels == level).to_numpy()]
            found.append(
                Slice(
                    feature=name,
                    level=str(level),
                    rows=int(rows),
                    challenger=subset_metrics(challenger, task, inputs.iloc[positions], target.iloc[positions]),
                    champion=subset_metrics(champion, task, inputs.iloc[positions], target.iloc[positions]),
                )
            )
    return tuple(found)


def gate_scores(
    challenger: Any,
    champion: Any | None,
    task: Task,
    inputs: pd.DataFrame,
    target: pd.Series,
    split: Split,
    *,
    types: Mapping[str, FeatureType],
    min_slice_rows: int,
    champion_given: bool,
    champion_not_compared: str | None,
) -> Scores:
    """Both models on the holdout rows the gate scores and on the trusted ones among them, and the facts the
    gate's guardrails judge. ``champion``: the champion's model when it is compared, else None; ``types``: the
    features the challenger uses."""

    def on(model: Any, positions: np.ndarray) -> dict[str, float] | None:
        return subset_metrics(model, task, inputs.iloc[positions], target.iloc[positions])

    def matrix(model: Any) -> Confusion | None:
        if task != "classification":
            return None
        return confusion(model, inputs.iloc[split.trusted], target.iloc[split.trusted])

    scored_x = inputs.iloc[split.scored]
    champion_metrics = champion_trusted = champion_confusion = None
    parts: tuple[Slice, ...] | None = None
    if champion is not None:
        try:
            champion_metrics, champion_trusted = on(champion, split.scored), on(champion, split.trusted)
            champion_confusion = matrix(champion)
            parts = slices(challenger, champion, task, inputs, target, types, split.trusted, min_slice_rows)
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
        distinct_predictions=distinct_count(challenger.predict(scored_x)) if len(scored_x) else 0,
        distinct_targets=distinct_count(target.iloc[split.scored]),
        challenger_confusion=matrix(challenger),
        champion_confusion=champion_confusion,
        slices=parts,
        feature_scores=feature_scores(task, inputs, target, types, split),
    )
