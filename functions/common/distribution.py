"""Distribution summaries: the drift baseline that training writes and the drift monitor reads.

The baseline stored in a bundle's metadata is::

    {"rows": N, "prediction_rows": M,
     "features": {name: summary, ...},
     "prediction": summary,
     "positive_probability": numeric summary}   # binary classification only

A numeric summary is ``{"type": "numeric", "edges": [...], "proportions": [...], "missing": fraction}``:
``edges`` are the sorted, unique interior cut points of (at most) ten quantile bins, and bin ``i`` holds
``edges[i-1] < x <= edges[i]`` (``numpy.searchsorted(edges, x, side="left")``). A categorical summary is
``{"type": "categorical", "proportions": {category: p}, "missing": fraction}``.

Proportions are over the non-missing values and sum to 1; with no non-missing value at all they are all
zero (numeric) or empty (categorical). ``missing`` is the fraction of values that are null, NaN or
infinite (numeric) or null, NaN or :data:`~functions.common.bundle.MISSING_CATEGORY` (categorical); it is
0 for no values at all.

To compare live data with a baseline, bin it the same way: the monitor's Athena queries do
(:mod:`functions.monitor.queries`), by these rules. numpy and the standard library only.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from functions.common.bundle import MISSING_CATEGORY

DEFAULT_BINS = 10
# Live categories absent from the baseline are counted under this key by category_proportions.
OTHER_CATEGORY = "__other__"


class DistributionError(ValueError):
    """A summary or baseline does not follow the format above."""


@dataclass(frozen=True)
class NumericSummary:
    edges: tuple[float, ...]
    proportions: tuple[float, ...]
    missing: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "numeric",
            "edges": list(self.edges),
            "proportions": list(self.proportions),
            "missing": self.missing,
        }


@dataclass(frozen=True)
class CategoricalSummary:
    proportions: dict[str, float]
    missing: float

    def to_dict(self) -> dict[str, Any]:
        return {"type": "categorical", "proportions": dict(self.proportions), "missing": self.missing}


Summary = NumericSummary | CategoricalSummary


def _finite_values(values: Iterable[Any]) -> tuple[np.ndarray, int]:
    """The finite values as float64, and how many values there were in all (None counts as missing)."""
    # numpy reads None as NaN when asked for floats; a generator must be materialised first.
    array = np.asarray(values if isinstance(values, (Sequence, np.ndarray)) else list(values), dtype=np.float64)
    return array[np.isfinite(array)], array.size


def _fractions(counts: np.ndarray) -> tuple[float, ...]:
    total = counts.sum()
    return tuple(float(c / total) if total else 0.0 for c in counts)


def bin_proportions(edges: Sequence[float], values: Iterable[Any]) -> tuple[float, ...]:
    """The share of the finite ``values`` in each of the ``len(edges) + 1`` bins cut at ``edges``."""
    finite, _ = _finite_values(values)
    bins = np.searchsorted(np.asarray(edges, dtype=np.float64), finite, side="left")
    return _fractions(np.bincount(bins, minlength=len(edges) + 1))


def numeric_summary(values: Iterable[Any], bins: int = DEFAULT_BINS) -> NumericSummary:
    """Quantile-bin ``values``: at most ``bins - 1`` unique cut points (ties merge bins)."""
    if bins < 1:
        raise DistributionError(f"bins must be >= 1, got {bins}")
    finite, total = _finite_values(values)
    if finite.size:
        cuts = np.quantile(finite, np.linspace(0.0, 1.0, bins + 1)[1:-1])
        edges = tuple(float(e) for e in np.unique(cuts))
    else:
        edges = ()
    missing = (total - finite.size) / total if total else 0.0
    return NumericSummary(edges, bin_proportions(edges, finite), float(missing))


def _is_missing_category(value: Any) -> bool:
    return value is None or value == MISSING_CATEGORY or (isinstance(value, float) and math.isnan(value))


def category_proportions(categories: Iterable[str], values: Iterable[Any]) -> dict[str, float]:
    """The share of each baseline category among the non-missing ``values``; others under OTHER_CATEGORY.

    Every baseline category is present in the result (possibly 0); OTHER_CATEGORY only when some value
    falls outside them.
    """
    known = list(categories)
    known_set = set(known)
    counts = Counter(str(v) for v in values if not _is_missing_category(v))
    other = sum(n for category, n in counts.items() if category not in known_set)
    keys = [*known, OTHER_CATEGORY] if other else known
    shares = _fractions(np.array([counts.get(k, 0) for k in known] + ([other] if other else []), dtype=float))
    return dict(zip(keys, shares, strict=True))


def categorical_summary(values: Iterable[Any]) -> CategoricalSummary:
    """The share of each category seen (sorted by name), and the missing fraction."""
    items = list(values)
    present = [str(v) for v in items if not _is_missing_category(v)]
    missing = (len(items) - len(present)) / len(items) if items else 0.0
    return CategoricalSummary(category_proportions(sorted(set(present)), present), float(missing))


def _number(data: Mapping[str, Any], key: str) -> float:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DistributionError(f"summary field {key!r} must be a finite number, got {value!r}")
    return float(value)


def summary_from_dict(data: Mapping[str, Any]) -> Summary:
    """The inverse of ``to_dict``, checking the format invariants."""
    if not isinstance(data, Mapping):
        raise DistributionError(f"a summary must be an object, got {type(data).__name__}")
    missing = _number(data, "missing")
    kind = data.get("type")
    if kind == "numeric":
        edges = tuple(float(e) for e in data.get("edges", ()))
        proportions = tuple(float(p) for p in data.get("proportions", ()))
        if list(edges) != sorted(set(edges)):
            raise DistributionError("numeric summary edges must be sorted and unique")
        if len(proportions) != len(edges) + 1:
            raise DistributionError(
                f"numeric summary has {len(edges)} edges but {len(proportions)} proportions (expected {len(edges) + 1})"
            )
        return NumericSummary(edges, proportions, missing)
    if kind == "categorical":
        shares = data.get("proportions")
        if not isinstance(shares, Mapping):
            raise DistributionError("categorical summary proportions must be an object")
        return CategoricalSummary({str(k): float(v) for k, v in shares.items()}, missing)
    raise DistributionError(f"unknown summary type {kind!r}")


@dataclass(frozen=True)
class Baseline:
    """The training-time reference distributions of a model's features and predictions."""

    rows: int
    features: dict[str, Summary]
    prediction: Summary
    prediction_rows: int
    # Binary classification: the predicted probability of the positive class (metadata.classes[1]).
    positive_probability: NumericSummary | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "rows": self.rows,
            "prediction_rows": self.prediction_rows,
            "features": {name: summary.to_dict() for name, summary in self.features.items()},
            "prediction": self.prediction.to_dict(),
        }
        if self.positive_probability is not None:
            data["positive_probability"] = self.positive_probability.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Baseline:
        try:
            features = {str(name): summary_from_dict(s) for name, s in data["features"].items()}
            positive = data.get("positive_probability")
            probability = None if positive is None else summary_from_dict(positive)
            if probability is not None and not isinstance(probability, NumericSummary):
                raise DistributionError("positive_probability must be a numeric summary")
            return cls(
                rows=int(data["rows"]),
                features=features,
                prediction=summary_from_dict(data["prediction"]),
                prediction_rows=int(data.get("prediction_rows", data["rows"])),
                positive_probability=probability,
            )
        except DistributionError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DistributionError(f"baseline is malformed: {exc!r}") from exc
