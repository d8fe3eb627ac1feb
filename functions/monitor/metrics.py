"""The monitor's CloudWatch metrics: their names and dimensions (the alarms and the dashboard use these names).

Namespace ``driftloop`` (``infra.config.METRIC_NAMESPACE``), ``Service`` = ``<prefix>-<stage>-monitor``:

- every metric with ``[Service]`` alone: stable across model versions, so an alarm on it survives a promotion;
- and again with ``[Service, ModelVersion]``, for per-version views on the dashboard.
- ``FeatureDrift`` with ``[Service, Feature]`` and ``[Service, ModelVersion, Feature]``.

What is published when: ``CapturedRecords`` and ``LabelledRecords`` on every run with a champion;
``MaxFeatureDrift``, ``PredictionDrift`` and ``FeatureDrift`` only for a sufficient window; ``LiveAccuracy`` and
``LiveF1`` (classification) or ``LiveRMSE`` and ``LiveMAE`` (regression) only with ``min_feedback`` labels.
Standard library only: the CDK app imports this module for the names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from functions.monitor.report import WindowReport

SERVICE = "Service"
MODEL_VERSION = "ModelVersion"
FEATURE = "Feature"

MAX_FEATURE_DRIFT = "MaxFeatureDrift"
PREDICTION_DRIFT = "PredictionDrift"
FEATURE_DRIFT = "FeatureDrift"
LIVE_ACCURACY = "LiveAccuracy"
LIVE_F1 = "LiveF1"
LIVE_RMSE = "LiveRMSE"
LIVE_MAE = "LiveMAE"
CAPTURED_RECORDS = "CapturedRecords"
LABELLED_RECORDS = "LabelledRecords"

Unit = Literal["Count", "None"]

QUALITY_METRICS = {"accuracy": LIVE_ACCURACY, "f1": LIVE_F1, "rmse": LIVE_RMSE, "mae": LIVE_MAE}


@dataclass(frozen=True)
class Datum:
    name: str
    value: float
    unit: Unit
    dimensions: tuple[tuple[str, str], ...]


def metric_data(report: WindowReport, service: str) -> list[Datum]:
    """Every datum one run publishes for ``report`` (see the module docstring)."""
    values: list[tuple[str, float, Unit]] = [
        (CAPTURED_RECORDS, report.captured, "Count"),
        (LABELLED_RECORDS, report.labelled, "Count"),
    ]
    top = report.max_feature_drift
    if report.status == "ok" and top is not None:
        values.append((MAX_FEATURE_DRIFT, top[1], "None"))
    if report.status == "ok" and (prediction := report.prediction_drift) is not None:
        values.append((PREDICTION_DRIFT, prediction, "None"))
    values += [(QUALITY_METRICS[name], value, "None") for name, value in sorted(report.quality.items())]

    overall = ((SERVICE, service),)
    per_version = (*overall, (MODEL_VERSION, report.version))
    data = [Datum(name, float(value), unit, dims) for name, value, unit in values for dims in (overall, per_version)]
    if report.status == "ok":
        data += [
            Datum(FEATURE_DRIFT, score.psi, "None", (*dims, (FEATURE, feature)))
            for feature, score in sorted(report.features.items())
            for dims in (overall, per_version)
        ]
    return data
