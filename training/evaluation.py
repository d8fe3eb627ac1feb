"""What the gate's scoring (functions.common.scoring) needs from the training job's frames and pipeline.

Scoring works on predictions, not models: this module turns the fitted pipeline's outputs and the validated
frame into :class:`~functions.common.scoring.Predictions` and a :class:`~functions.common.scoring.Holdout`;
the metrics and every fact the gate judges are computed there, the same way for the challenger and the champion.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from functions.common.bundle import FeatureType, Task
from functions.common.scoring import Holdout, Predictions, thresholded
from training.holdout import Split


def spread(outputs: np.ndarray, positions: np.ndarray, rows: int) -> np.ndarray:
    """Outputs of the rows at ``positions``, placed in an array over all ``rows`` rows (NaN elsewhere: rows no model
    is scored on, so none is predicted)."""
    outputs = np.asarray(outputs, dtype=np.float64)
    placed = np.full((rows, *outputs.shape[1:]), np.nan)
    placed[positions] = outputs
    return placed


def pipeline_predictions(
    model: Any, task: Task, inputs: pd.DataFrame, positions: np.ndarray, decision: tuple[str, float] | None = None
) -> Predictions:
    """A fitted pipeline's outputs on the rows of ``inputs`` at ``positions`` (see :func:`spread`); ``decision``:
    the positive class and the decision threshold the model answers by, as its exported graph will."""
    rows = inputs.iloc[positions]
    if task == "classification":
        labels = tuple(str(c) for c in model.classes_)
        probabilities = spread(model.predict_proba(rows), positions, len(inputs))
        if decision is None:
            return Predictions(labels, probabilities=probabilities)
        chosen = thresholded(probabilities, labels.index(decision[0]), decision[1])
        return Predictions(labels, probabilities=probabilities, chosen=chosen)
    return Predictions(values=spread(model.predict(rows), positions, len(inputs)))


def truth(task: Task, target: pd.Series) -> np.ndarray:
    """The target as scoring takes it: label strings, or floats."""
    if task == "regression":
        return target.to_numpy(dtype=np.float64)
    return target.astype(str).to_numpy(dtype=object)


def holdout(
    task: Task,
    inputs: pd.DataFrame,
    target: pd.Series,
    split: Split,
    types: Mapping[str, FeatureType],
    positive_class: str | None = None,
) -> Holdout:
    """The labelled rows, with the split's positions: each feature alone is fitted on the challenger's fit rows and
    scored on the scored rows. ``types``: the features the challenger uses; ``positive_class``: the class F1 is of."""
    columns = {
        name: inputs[name].to_numpy(dtype=object) if kind == "categorical" else inputs[name].to_numpy(dtype=np.float64)
        for name, kind in types.items()
    }
    return Holdout(
        task=task,
        truth=truth(task, target),
        columns=columns,
        types=dict(types),
        scored=split.scored,
        trusted=split.trusted,
        feature_fit=split.train,
        feature_scored=split.scored,
        holdout_rows=len(split.holdout),
        champion_seen=split.champion_seen,
        positive_class=positive_class,
    )
