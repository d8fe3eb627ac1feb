"""What one monitor run publishes, in the terms of the metrics contract (:mod:`functions.common.metrics`).

- every metric with ``[Service]`` alone: stable across model versions, so an alarm on it survives a promotion;
- and again with ``[Service, ModelVersion]``, for per-version views on the dashboard;
- ``FeatureDrift`` with ``[Service, Feature]`` and ``[Service, ModelVersion, Feature]``.

What is published when: ``CapturedRecords`` and ``LabelledRecords`` on every run with a champion;
``MaxFeatureDrift``, ``PredictionDrift`` and ``FeatureDrift`` only for a sufficient window; ``LiveAccuracy`` and
``LiveF1`` (classification) or ``LiveRMSE`` and ``LiveMAE`` (regression) only with ``min_feedback`` labels.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from functions.common.metrics import QUALITY_METRICS, Dimension, MonitorMetric, Unit

if TYPE_CHECKING:
    from functions.monitor.report import WindowReport

SERVICE_SETS = ((Dimension.SERVICE,), (Dimension.SERVICE, Dimension.MODEL_VERSION))
FEATURE_SETS = tuple((*dimensions, Dimension.FEATURE) for dimensions in SERVICE_SETS)


@dataclass(frozen=True)
class Datum:
    """One value of one metric under one set of dimensions: one CloudWatch data point."""

    name: MonitorMetric
    value: float
    dimensions: tuple[tuple[Dimension, str], ...]

    @property
    def unit(self) -> Unit:
        return self.name.unit


@dataclass(frozen=True)
class MetricSet:
    """Metrics that share the values of their dimensions, each published under every one of ``dimension_sets``
    (every dimension a set names has its value in ``dimensions``)."""

    values: Mapping[MonitorMetric, float]
    dimensions: Mapping[Dimension, str]
    dimension_sets: tuple[tuple[Dimension, ...], ...]

    def data(self) -> list[Datum]:
        return [
            Datum(name, value, tuple((dimension, self.dimensions[dimension]) for dimension in dimensions))
            for name, value in self.values.items()
            for dimensions in self.dimension_sets
        ]


def metric_sets(report: WindowReport, service: str) -> list[MetricSet]:
    """Every metric one run publishes for ``report`` (see the module docstring): the window's metrics, then one
    set per feature (each has its own ``Feature``)."""
    values = {
        MonitorMetric.CAPTURED_RECORDS: float(report.captured),
        MonitorMetric.LABELLED_RECORDS: float(report.labelled),
    }
    top = report.max_feature_drift
    if report.status == "ok" and top is not None:
        values[MonitorMetric.MAX_FEATURE_DRIFT] = float(top[1])
    if report.status == "ok" and (prediction := report.prediction_drift) is not None:
        values[MonitorMetric.PREDICTION_DRIFT] = float(prediction)
    values |= {QUALITY_METRICS[name]: float(value) for name, value in sorted(report.quality.items())}

    window = {Dimension.SERVICE: service, Dimension.MODEL_VERSION: report.version}
    sets = [MetricSet(values, window, SERVICE_SETS)]
    if report.status == "ok":
        sets += [
            MetricSet(
                {MonitorMetric.FEATURE_DRIFT: float(score.psi)}, {**window, Dimension.FEATURE: feature}, FEATURE_SETS
            )
            for feature, score in sorted(report.features.items())
        ]
    return sets


def metric_data(sets: list[MetricSet]) -> list[Datum]:
    """The data points ``sets`` make in CloudWatch."""
    return [datum for metric_set in sets for datum in metric_set.data()]
