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


def _bins(column: pd.Series, kind: FeatureType, train: np.ndarray) -> pd.Series:
    """One key per row: the category, or the quantile bin of the training rows' values; missing is a key too."""
    if kind == "categorical":
        return column.astype(str).where(column.notna(), "<missing>")
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
    known = values[train][~np.isnan(values[train])]
    cuts = np.linspace(0, 1, SINGLE_FEATURE_BINS + 1)[1:-1]
    edges = np.unique(np.quantile(known, cuts)) if len(known) else np.empty(0)
    keys = np.searchsorted(edges, values, side="right").astype(str)
    return pd.Series(np.where(np.isnan(values), "<missing>", keys), index=column.index)


def feature_alone(
    task: Task, keys: pd.Series, target: pd.Series, train: np.ndarray, scored: np.ndarray
) -> float | None:
    """How well the target is predicted on the scored rows from one feature's keys alone, by the target's mean
    (class shares) per key on the training rows: ROC AUC, or r2. None where undefined (one class)."""
    fitted, truth = keys.iloc[train], target.iloc[train]
    wanted = keys.iloc[scored].to_numpy()
    actual = target.iloc[scored]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        if task == "regression":
            means = truth.groupby(fitted.to_numpy()).mean()
            predicted = means.reindex(wanted).fillna(truth.mean()).to_numpy()
            score = r2_score(actual, predicted) if len(actual) > 1 else math.nan
        else:
            labels = sorted(str(c) for c in truth.unique())
            shares = pd.crosstab(fitted.to_numpy(), truth.astype(str).to_numpy(), normalize="index")
            shares = shares.reindex(columns=labels, fill_value=0.0)
            prior = truth.astype(str).value_counts(normalize=True).reindex(labels, fill_value=0.0)
            probabilities = shares.reindex(wanted).fillna(prior).to_numpy()
            present = actual.astype(str)
            if present.nunique() < 2:
                return None
            if len(labels) == 2:
                score = roc_auc_score(present == labels[1], probabilities[:, 1])
            else:
                known = present.isin(labels).to_numpy()
                rows = probabilities[known] / probabilities[known].sum(axis=1, keepdims=True)
                score = roc_auc_score(present[known], rows, multi_class="ovr", labels=labels)
    return float(score) if math.isfinite(score) else None


def feature_scores(
    task: Task, inputs: pd.DataFrame, target: pd.Series, types: Mapping[str, FeatureType], split: Split
) -> dict[str, float]:
    """Per feature the model uses, its score alone (gate.SINGLE_FEATURE_METRIC); undefined ones left out."""
    scores = {}
    for name, kind in types.items():
        score = feature_alone(task, _bins(inputs[name], kind, split.train), target, split.train, split.scored)
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
