"""Drift as the population stability index (PSI) of live data against the training baseline.

For two distributions over the same bins, expected ``e`` (training) and actual ``a`` (live)::

    PSI = sum_i (a_i - e_i) * ln(a_i / e_i)

Every term is >= 0, so PSI is 0 for identical distributions and grows with any shift. Rules of thumb: below 0.1
no real change, 0.1 to 0.25 a moderate shift, above 0.25 a large one (``monitoring.drift_threshold`` decides).

The bins are the baseline's own (:mod:`functions.common.distribution`): its quantile bins for a numeric feature,
its categories for a categorical one, with the live values outside them under ``__other__`` (an unseen category
is drift, not noise to drop). Missing values (null, NaN, infinite; for categoricals also ``__missing__``) are one
more bin, so a feature that suddenly arrives empty drifts too: the distribution compared is the binned shares
scaled by ``1 - missing``, followed by ``missing``. Athena counts the live values per bin
(:func:`functions.monitor.queries.drift_query`); :func:`live_summary` turns the counts into shares.

**Empty bins.** ``ln(a / e)`` is undefined when a bin is empty on one side, so every share is floored at
:data:`EPSILON` (1e-4, i.e. 0.01 %) before the sum; the shares are not renormalised. A bin empty on both sides
contributes exactly 0; a bin empty on one side contributes a large but finite amount: e.g. 50 % of live values
in a bin training never saw adds ``(0.5 - 1e-4) * ln(0.5 / 1e-4)`` = 4.26.

numpy and the standard library only.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from functions.common.distribution import OTHER_CATEGORY, CategoricalSummary, NumericSummary, Summary

# The floor of every bin's share: see the module docstring.
EPSILON = 1e-4
# The bin number of a missing value in the counts the drift query returns.
MISSING = -1
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
            raise ValueError("summarize the live values in the baseline's bins first (live_summary)")
        bins = _numeric_bins(baseline.edges)
        expected = _with_missing(baseline.proportions, baseline.missing)
        actual = _with_missing(live.proportions, live.missing)
    else:
        if not isinstance(live, CategoricalSummary):
            raise ValueError("summarize the live values in the baseline's bins first (live_summary)")
        # The baseline's categories, then __other__ when live values fell outside them (training had none there).
        bins = tuple(baseline.proportions) + tuple(k for k in live.proportions if k not in baseline.proportions)
        expected = _with_missing((baseline.proportions.get(k, 0.0) for k in bins), baseline.missing)
        actual = _with_missing((live.proportions.get(k, 0.0) for k in bins), live.missing)
    if expected is None or actual is None:
        return None
    return DriftScore(psi(expected, actual), (*bins, MISSING_BIN), expected, actual)


def live_summary(baseline: Summary, counts: Mapping[int, int]) -> Summary:
    """The live values' summary in ``baseline``'s bins, from their count per bin number (as
    :mod:`functions.monitor.queries` numbers them: ``-1`` missing, then the bins or categories, then ``__other__``).
    """
    total = sum(counts.values())
    missing = counts.get(MISSING, 0) / total if total else 0.0
    if isinstance(baseline, NumericSummary):
        present = [counts.get(index, 0) for index in range(len(baseline.edges) + 1)]
        return NumericSummary(baseline.edges, _shares(present), missing)
    categories = list(baseline.proportions)
    present = [counts.get(index, 0) for index in range(len(categories))]
    other = counts.get(len(categories), 0)
    keys = [*categories, OTHER_CATEGORY] if other else categories
    return CategoricalSummary(dict(zip(keys, _shares([*present, other] if other else present), strict=True)), missing)


def _shares(counts: Sequence[int]) -> tuple[float, ...]:
    total = sum(counts)
    return tuple(count / total if total else 0.0 for count in counts)


def drift_scores(summaries: Mapping[str, Summary], counts: Mapping[str, Mapping[int, int]]) -> dict[str, DriftScore]:
    """PSI per distribution with live values (a distribution with none on either side has no score)."""
    scores = {name: compare(s, live_summary(s, counts.get(name, {}))) for name, s in summaries.items()}
    return {name: score for name, score in scores.items() if score is not None}


def most_drifted(scores: Mapping[str, DriftScore], limit: int | None = None) -> list[tuple[str, float]]:
    """(name, PSI), largest first (ties by name)."""
    ranked = sorted(((name, score.psi) for name, score in scores.items()), key=lambda item: (-item[1], item[0]))
    return ranked if limit is None else ranked[:limit]
