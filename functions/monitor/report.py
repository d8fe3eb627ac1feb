"""One monitoring window, evaluated: what the monitor found, as the report it writes and the source of its metrics.

A window with fewer than ``min_records`` captured predictions is **insufficient**: no drift is computed or
published, only the counts, so that missing traffic never reads as "no drift". Live quality is computed when at
least ``min_feedback`` predictions got a label (feedback received in the window, whenever the prediction was
served), whether or not the capture window is sufficient.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, cast

from functions.common.bundle import TASKS, Task
from functions.common.distribution import Baseline, DistributionError
from functions.monitor.drift import DriftScore, drift_scores, most_drifted
from functions.monitor.quality import Labelled, live_quality
from functions.monitor.queries import prediction_distributions

Status = Literal["ok", "insufficient_data", "no_baseline"]


@dataclass(frozen=True)
class Limits:
    min_records: int
    min_feedback: int
    # Not applied here (the alarm applies it): recorded in the report and drawn on the chart.
    drift_threshold: float


@dataclass(frozen=True)
class FeedbackCounts:
    # Feedback records received in the window, dropped before the join, and usable but matching no capture.
    received: int = 0
    rejected: int = 0
    unmatched: int = 0
    # The rejected by reason (unlabelled, superseded, invalid_ids, expired).
    dropped: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class LiveCounts:
    """What Athena counted of the window's captures: how many, and per distribution (feature, prediction) its
    values per bin number (:mod:`functions.monitor.queries`)."""

    captured: int = 0
    features: Mapping[str, Mapping[int, int]] = field(default_factory=dict)
    predictions: Mapping[str, Mapping[int, int]] = field(default_factory=dict)


@dataclass(frozen=True)
class WindowReport:
    version: str
    task: Task
    time: datetime
    start: datetime
    end: datetime
    status: Status
    captured: int
    labelled: int
    limits: Limits
    features: dict[str, DriftScore] = field(default_factory=dict)
    prediction: dict[str, DriftScore] = field(default_factory=dict)
    # accuracy and f1, or rmse and mae; empty below min_feedback labelled predictions.
    quality: dict[str, float] = field(default_factory=dict)
    feedback: FeedbackCounts = field(default_factory=FeedbackCounts)
    notes: tuple[str, ...] = ()

    @property
    def max_feature_drift(self) -> tuple[str, float] | None:
        ranked = most_drifted(self.features, 1)
        return ranked[0] if ranked else None

    @property
    def prediction_drift(self) -> float | None:
        """The largest of the prediction PSIs (labels and positive probability, or values)."""
        return max((score.psi for score in self.prediction.values()), default=None)

    def to_dict(self) -> dict[str, Any]:
        top = self.max_feature_drift
        return {
            "version": self.version,
            "task": self.task,
            "time": _iso(self.time),
            "window": {"start": _iso(self.start), "end": _iso(self.end)},
            "status": self.status,
            "records": {
                "captured": self.captured,
                "labelled": self.labelled,
                "min_records": self.limits.min_records,
                "min_feedback": self.limits.min_feedback,
            },
            "feedback": {
                "received": self.feedback.received,
                "rejected": self.feedback.rejected,
                "unmatched": self.feedback.unmatched,
                "dropped": dict(sorted(self.feedback.dropped.items())),
            },
            "drift": None
            if self.status != "ok"
            else {
                "threshold": self.limits.drift_threshold,
                "max_feature": None if top is None else {"feature": top[0], "psi": top[1]},
                "above_threshold": [
                    name for name, value in most_drifted(self.features) if value > self.limits.drift_threshold
                ],
                "prediction": self.prediction_drift,
                "features": {name: score.to_dict() for name, score in sorted(self.features.items())},
                "predictions": {name: score.to_dict() for name, score in sorted(self.prediction.items())},
            },
            "quality": dict(self.quality) or None,
            "notes": list(self.notes),
        }


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def baseline(metadata: Mapping[str, Any]) -> Baseline:
    """The champion's drift baseline; raises DistributionError when its metadata has none usable."""
    try:
        return Baseline.from_dict(metadata["baseline"])
    except (KeyError, TypeError) as exc:
        raise DistributionError(f"no baseline: {exc!r}") from exc


def evaluate(
    *,
    version: str,
    metadata: Mapping[str, Any],
    time: datetime,
    start: datetime,
    end: datetime,
    live: LiveCounts,
    labelled: Labelled,
    feedback: FeedbackCounts,
    limits: Limits,
) -> WindowReport:
    """Drift of the ``live`` counts against the baseline in ``metadata``, and quality of the ``labelled`` join."""
    task = metadata.get("task")
    if task not in TASKS:
        raise ValueError(f"model {version} has no valid task in its metadata: {task!r}")
    task = cast(Task, task)
    classes = [str(c) for c in metadata.get("classes", ())]
    positive = None if metadata.get("positive_class") is None else str(metadata["positive_class"])
    notes: list[str] = []
    quality: dict[str, float] = {}
    if labelled.count >= limits.min_feedback:
        quality = live_quality(labelled, task, classes, positive)
    else:
        notes.append(f"{labelled.count} labelled predictions, fewer than {limits.min_feedback}: no quality metric")

    common: dict[str, Any] = {
        "version": version,
        "task": task,
        "time": time,
        "start": start,
        "end": end,
        "captured": live.captured,
        "labelled": labelled.count,
        "limits": limits,
        "quality": quality,
        "feedback": feedback,
    }
    if live.captured < limits.min_records:
        notes.append(f"{live.captured} captured predictions, fewer than {limits.min_records}: drift not measured")
        return WindowReport(status="insufficient_data", notes=tuple(notes), **common)
    try:
        reference = baseline(metadata)
    except DistributionError as exc:
        notes.append(f"the model's metadata has no usable drift baseline: {exc}")
        return WindowReport(status="no_baseline", notes=tuple(notes), **common)
    predictions = {d.name: d.summary for d in prediction_distributions(reference, task, classes, positive)}
    return WindowReport(
        status="ok",
        features=drift_scores(reference.features, live.features),
        prediction=drift_scores(predictions, live.predictions),
        notes=tuple(notes),
        **common,
    )
