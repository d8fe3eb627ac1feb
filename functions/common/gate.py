"""The promotion gate and the ``evaluation.json`` it produces.

The training program scores the challenger and, when one is given, the live champion on the same fresh
holdout, decides with :func:`decide`, and writes an :class:`Evaluation` to ``output/data/evaluation.json``.
The workflow reads that file back with :meth:`Evaluation.from_dict`; nothing else re-implements the rule.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

EVALUATION_FILE = "evaluation.json"

# Metrics where a larger value is better; every other known metric is an error measure.
HIGHER_IS_BETTER = frozenset({"accuracy", "f1", "roc_auc", "r2"})
LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae"})
CLASSIFICATION_METRICS = ("accuracy", "f1", "roc_auc", "log_loss")
REGRESSION_METRICS = ("rmse", "mae", "r2")
DEFAULT_METRIC = {"classification": "roc_auc", "regression": "rmse"}


class GateError(ValueError):
    """The gate settings or the evaluation file are invalid."""


def higher_is_better(metric: str) -> bool:
    if metric in HIGHER_IS_BETTER:
        return True
    if metric in LOWER_IS_BETTER:
        return False
    raise GateError(f"unknown metric {metric!r}; known: {sorted(HIGHER_IS_BETTER | LOWER_IS_BETTER)}")


@dataclass(frozen=True)
class GateSettings:
    metric: str
    # The challenger's metric must be at least this good (at most, for error measures). None: no floor.
    min_metric: float | None = None
    # ...and better than the champion's by at least this much, on the same holdout.
    min_improvement: float = 0.0

    def __post_init__(self) -> None:
        higher_is_better(self.metric)
        if self.min_improvement < 0 or not math.isfinite(self.min_improvement):
            raise GateError(f"min_improvement must be a finite number >= 0, got {self.min_improvement}")


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reasons: tuple[str, ...]


def decide(settings: GateSettings, challenger: Mapping[str, float], champion: Mapping[str, float] | None) -> Verdict:
    """Pass when the challenger meets the floor and beats the champion by ``min_improvement``."""
    metric = settings.metric
    if metric not in challenger:
        raise GateError(f"challenger metrics lack the gate metric {metric!r}")
    better = higher_is_better(metric)
    score = challenger[metric]
    reasons: list[str] = []
    passed = True
    if not math.isfinite(score):
        return Verdict(False, (f"challenger {metric} is not a finite number ({score})",))
    if settings.min_metric is not None:
        meets = score >= settings.min_metric if better else score <= settings.min_metric
        relation = ">=" if better else "<="
        reasons.append(
            f"challenger {metric}={score:.6g} {'meets' if meets else 'fails'} min_metric "
            f"({relation} {settings.min_metric:.6g})"
        )
        passed = passed and meets
    if champion is None:
        reasons.append("no champion to compare with")
    else:
        if metric not in champion:
            raise GateError(f"champion metrics lack the gate metric {metric!r}")
        live = champion[metric]
        gain = score - live if better else live - score
        beats = gain >= settings.min_improvement
        reasons.append(
            f"challenger {metric}={score:.6g} vs champion {live:.6g} on the same holdout: "
            f"improvement {gain:+.6g} {'meets' if beats else 'is below'} min_improvement {settings.min_improvement:.6g}"
        )
        passed = passed and beats
    return Verdict(passed, tuple(reasons))


@dataclass(frozen=True)
class Evaluation:
    """``evaluation.json``: both models' holdout metrics and the gate verdict."""

    settings: GateSettings
    holdout_rows: int
    challenger: dict[str, float]
    verdict: Verdict
    champion: dict[str, float] | None = None
    champion_version: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.settings.metric,
            "min_metric": self.settings.min_metric,
            "min_improvement": self.settings.min_improvement,
            "holdout_rows": self.holdout_rows,
            "challenger": self.challenger,
            "champion": self.champion,
            "champion_version": self.champion_version,
            "passed": self.verdict.passed,
            "reasons": list(self.verdict.reasons),
            "details": self.details,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Evaluation:
        try:
            settings = GateSettings(
                metric=str(data["metric"]),
                min_metric=None if data.get("min_metric") is None else float(data["min_metric"]),
                min_improvement=float(data.get("min_improvement", 0.0)),
            )
            champion = data.get("champion")
            return cls(
                settings=settings,
                holdout_rows=int(data["holdout_rows"]),
                challenger={str(k): float(v) for k, v in data["challenger"].items()},
                champion=None if champion is None else {str(k): float(v) for k, v in champion.items()},
                champion_version=data.get("champion_version"),
                verdict=Verdict(bool(data["passed"]), tuple(str(r) for r in data.get("reasons", ()))),
                details=dict(data.get("details") or {}),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise GateError(f"evaluation is malformed: {exc!r}") from exc
