"""Drift as the population stability index (PSI) of live data against the training baseline.

For two distributions over the same bins, expected ``e`` (training) and actual ``a`` (live)::

    PSI = sum_i (a_i - e_i) * ln(a_i / e_i)

Every term is >= 0, so PSI is 0 for identical distributions and grows with any shift. Rules of thumb: below 0.1
no real change, 0.1 to 0.25 a moderate shift, above 0.25 a large one (``monitoring.drift_threshold`` decides).

The bins are the baseline's own (:mod:`functions.common.distribution`): its quantile bins for a numeric feature,
its categories for a categorical one, with the live values outside them under ``__other__`` (an unseen category
is drift, not noise to drop). Missing values (null, NaN, infinite; for categoricals also ``__missing__``) are one
more bin, so a feature that suddenly arrives empty drifts too: the distribution compared is the binned shares
scaled by ``1 - missing``, followed by ``missing``.

**Empty bins.** ``ln(a / e)`` is undefined when a bin is empty on one side, so every share is floored at
:data:`EPSILON` (1e-4, i.e. 0.01 %) before the sum; the shares are not renormalised. A bin empty on both sides
contributes exactly 0; a bin empty on one side contributes a large but finite amount: e.g. 50 % of live values
in a bin training never saw adds ``(0.5 - 1e-4) * ln(0.5 / 1e-4)`` = 4.26.

numpy and the standard library only.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from functions.common.bundle import Task
from functions.common.distribution import (
    Baseline,
    CategoricalSummary,
    NumericSummary,
    Summary,
    summarize_like,
)
from functions.common.records import PredictionRecord

# The floor of every bin's share: see the module docstring.
EPSILON = 1e-4
MISSING_BIN = "missing"


def psi(expected: Sequence[float], actual: Sequence[float], epsilon: float = EPSILON) -> float:
    """The population stability index of ``actual`` against ``expected`` (shares over the same bins)."""
    if len(expected) != len(actual):
        raise ValueError(f"PSI needs the same bins on both sides, got {len(expected)} and {len(actual)}")
    e = np.maximum(np.asarray(expected, dtype=np.float64), epsilon)
    a = np.maximum(np.asarray(actual, dtype=np.float64), epsilon)
    return float(np.sum((a - e) * np.log(a / e)))


@dataclass(frozen=True)
class DriftScore:
    """The PSI of one distribution, with the bins and both sides' shares (missing values last)."""

    psi: float
    bins: tuple[str, ...]
    expected: tuple[float, ...]
    actual: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "psi": self.psi,
            "bins": list(self.bins),
            "expected": list(self.expected),
            "actual": list(self.actual),
        }


def _with_missing(shares: Iterable[float], missing: float) -> tuple[float, ...] | None:
    """Shares of all values, the missing ones last; None when there were no values at all."""
    present = tuple(float(share) * (1.0 - missing) for share in shares)
    distribution = (*present, float(missing))
    return distribution if sum(distribution) > 0 else None


def _numeric_bins(edges: Sequence[float]) -> tuple[str, ...]:
    if not edges:
        return ("all",)
    inner = tuple(f"({low:.4g}, {high:.4g}]" for low, high in itertools.pairwise(edges))
    return (f"<= {edges[0]:.4g}", *inner, f"> {edges[-1]:.4g}")


def compare(baseline: Summary, live: Summary) -> DriftScore | None:
    """PSI of ``live`` (summarised like ``baseline``) against ``baseline``; None when either side has no values."""
    if isinstance(baseline, NumericSummary):
        if not isinstance(live, NumericSummary) or live.edges != baseline.edges:
            raise ValueError("summarize the live values with summarize_like(baseline, values) first")
        bins = _numeric_bins(baseline.edges)
        expected = _with_missing(baseline.proportions, baseline.missing)
        actual = _with_missing(live.proportions, live.missing)
    else:
        if not isinstance(live, CategoricalSummary):
            raise ValueError("summarize the live values with summarize_like(baseline, values) first")
        # The baseline's categories, then __other__ when live values fell outside them (training had none there).
        bins = tuple(baseline.proportions) + tuple(k for k in live.proportions if k not in baseline.proportions)
        expected = _with_missing((baseline.proportions.get(k, 0.0) for k in bins), baseline.missing)
        actual = _with_missing((live.proportions.get(k, 0.0) for k in bins), live.missing)
    if expected is None or actual is None:
        return None
    return DriftScore(psi(expected, actual), (*bins, MISSING_BIN), expected, actual)


def numeric_value(value: Any) -> float | None:
    """A JSON number as a float; anything else (null, a string, a boolean) counts as missing."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def categorical_value(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value if isinstance(value, str) else str(value)


def _drift(baseline: Summary, values: Iterable[Any]) -> DriftScore | None:
    if isinstance(baseline, NumericSummary):
        return compare(baseline, summarize_like(baseline, [numeric_value(v) for v in values]))
    return compare(baseline, summarize_like(baseline, [categorical_value(v) for v in values]))


def feature_drift(baseline: Baseline, records: Sequence[PredictionRecord]) -> dict[str, DriftScore]:
    """PSI per baseline feature; a feature absent from a record counts as missing there."""
    scores = {}
    for name, summary in baseline.features.items():
        score = _drift(summary, (record.features.get(name) for record in records))
        if score is not None:
            scores[name] = score
    return scores


def prediction_drift(
    baseline: Baseline, records: Sequence[PredictionRecord], task: Task, classes: Sequence[str]
) -> dict[str, DriftScore]:
    """PSI of what the model answered: ``label`` (classification: the predicted labels, unseen ones under
    ``__other__``), ``positive_probability`` (binary: the probability of ``classes[1]``, in the baseline's bins),
    or ``value`` (regression: the predicted values, in the baseline's bins)."""
    scores: dict[str, DriftScore | None] = {}
    if task == "regression":
        scores["value"] = _drift(baseline.prediction, (record.value for record in records))
    else:
        scores["label"] = _drift(baseline.prediction, (record.label for record in records))
        if baseline.positive_probability is not None and len(classes) == 2:
            positive = classes[1]
            scores["positive_probability"] = _drift(
                baseline.positive_probability,
                ((record.probabilities or {}).get(positive) for record in records),
            )
    return {name: score for name, score in scores.items() if score is not None}


def most_drifted(scores: Mapping[str, DriftScore], limit: int | None = None) -> list[tuple[str, float]]:
    """(name, PSI), largest first (ties by name)."""
    ranked = sorted(((name, score.psi) for name, score in scores.items()), key=lambda item: (-item[1], item[0]))
    return ranked if limit is None else ranked[:limit]
