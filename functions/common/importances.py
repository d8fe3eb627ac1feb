"""Permutation importances: how much the gate's metric drops when one feature's values are shuffled among the rows.

A feature the model relies on loses its accuracy when its column no longer lines up with the rest of the row; a
feature it ignores changes nothing. Measured on held-out rows (Evaluate's holdout), from a model's outputs only
(a predict function), so ONNX bundles are measured as they are served. Informational: the gate does not judge them.

Bounded for a Lambda: a seeded sample of at most :data:`MAX_ROWS` rows, each feature shuffled :data:`REPEATS`
times, one predict call per feature; with many features the sample shrinks so that the model predicts at most
:data:`MAX_PREDICTED_ROWS` rows in all (``(features * REPEATS + 1) * rows``). A drop is
positive when shuffling made the metric worse, whichever way the metric points (``log_loss``, ``rmse``: lower is
better). Seeded: the same model on the same rows gets the same importances.

Numpy and the standard library only: a Lambda imports this module.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from functions.common.bundle import Task
from functions.common.gate import higher_is_better
from functions.common.scoring import Predictions, metrics

# The rows sampled: a few thousand rows rank features reliably, and bound the time (features * REPEATS calls'
# worth of rows) and memory (REPEATS copies of the sample) whatever the holdout's size.
MAX_ROWS = 2_000
REPEATS = 5
# ...and the rows predicted in all: about 10 s for a 100-tree forest, whatever the number of features.
MAX_PREDICTED_ROWS = 200_000
SEED = 0

Predict = Callable[[Mapping[str, np.ndarray]], Predictions]


@dataclass(frozen=True)
class FeatureImportance:
    feature: str
    # The metric's mean drop over the shuffles, and its standard deviation; None when the metric is undefined on
    # a shuffled copy.
    mean: float | None
    std: float | None


@dataclass(frozen=True)
class Importances:
    metric: str
    # The metric on the sampled rows, unshuffled.
    baseline: float
    rows: int
    repeats: int
    seed: int
    # Most important first.
    features: tuple[FeatureImportance, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": "permutation",
            "metric": self.metric,
            "baseline": self.baseline,
            "rows": self.rows,
            "repeats": self.repeats,
            "seed": self.seed,
            "features": [{"feature": f.feature, "mean": f.mean, "std": f.std} for f in self.features],
        }


def _metric(task: Task, metric: str, truth: np.ndarray, predictions: Predictions, positive: str | None) -> float | None:
    return (metrics(task, truth, predictions, positive) or {}).get(metric)


def permutation_importances(
    predict: Predict,
    task: Task,
    truth: np.ndarray,
    columns: Mapping[str, np.ndarray],
    metric: str,
    *,
    positive: str | None = None,
    max_rows: int = MAX_ROWS,
    max_predicted_rows: int = MAX_PREDICTED_ROWS,
    repeats: int = REPEATS,
    seed: int = SEED,
) -> Importances | None:
    """Each feature of ``columns`` (all the model's inputs, row for row with ``truth``) shuffled ``repeats`` times
    on a sample of at most ``max_rows`` rows, fewer when the model would otherwise predict more than
    ``max_predicted_rows`` rows; None when ``metric`` is undefined on the unshuffled sample (no rows, one class for
    ROC AUC). ``positive``: a binary classifier's positive class, as the gate scores it."""
    rng = np.random.default_rng(seed)
    bound = min(max_rows, max(1, max_predicted_rows // (len(columns) * repeats + 1)))
    sample = np.sort(rng.choice(len(truth), size=min(len(truth), bound), replace=False))
    truth = truth[sample]
    columns = {name: column[sample] for name, column in columns.items()}
    baseline = _metric(task, metric, truth, predict(columns), positive)
    if baseline is None:
        return None
    rows, sign = len(truth), 1.0 if higher_is_better(metric) else -1.0
    # Every feature but the shuffled one repeats as it is; one predict call scores all shuffles of a feature.
    tiled = {name: np.tile(column, repeats) for name, column in columns.items()}
    found = []
    for name, column in columns.items():
        shuffled = np.concatenate([column[rng.permutation(rows)] for _ in range(repeats)])
        outputs = predict({**tiled, name: shuffled})
        scores = [
            _metric(task, metric, truth, outputs.take(np.arange(repeat * rows, (repeat + 1) * rows)), positive)
            for repeat in range(repeats)
        ]
        drops = np.array([sign * (baseline - score) for score in scores if score is not None])
        defined = len(drops) == repeats
        found.append(
            FeatureImportance(name, float(drops.mean()) if defined else None, float(drops.std()) if defined else None)
        )
    found.sort(key=lambda importance: -np.inf if importance.mean is None else importance.mean, reverse=True)
    return Importances(metric, baseline, rows, repeats, seed, tuple(found))
