"""What one monitor run publishes, in the terms of the metrics contract (:mod:`functions.common.metrics`).

- every metric with ``[Service]`` alone: stable across model versions, so an alarm on it survives a promotion;
- and again with ``[Service, ModelVersion]``, for per-version views on the dashboard;
- ``FeatureDrift`` with ``[Service, Feature]`` and ``[Service, ModelVersion, Feature]``.

What is published when: ``CapturedRecords`` and ``LabelledRecords`` on every run with a champion;
``MaxFeatureDrift``, ``PredictionDrift`` and ``FeatureDrift`` only for a sufficient window; ``LiveAccuracy`` and
``LiveF1`` (classification) or ``LiveRMSE`` and ``LiveMAE`` (regression) only with ``min_feedback`` labels;
``UncoveredWindows``, the run's :class:`Outcome`, with ``[Service]`` alone on every run, failed or without a champion
too (:func:`outcome_set`): the alarm that watches it treats a run that reported nothing as one that failed.
``ConstraintViolations`` for a sufficient window checked against constraints that enable it (:func:`constraint_sets`):
with ``[Service]`` the violated constraints of all checks, with ``[Service, ConstraintCheck]`` those of each check
(0 included), and no more: per feature or version would multiply CloudWatch's metrics, the report lists them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from functions.common.metrics import QUALITY_METRICS, Dimension, MonitorMetric, Unit

if TYPE_CHECKING:
    from functions.monitor.data_quality import DataQuality
    from functions.monitor.report import WindowReport

SERVICE_SETS = ((Dimension.SERVICE,), (Dimension.SERVICE, Dimension.MODEL_VERSION))
FEATURE_SETS = tuple((*dimensions, Dimension.FEATURE) for dimensions in SERVICE_SETS)


class Outcome(StrEnum):
    """How a run went. Not covering its window is not a lack of traffic (an insufficient window is covered: too
    few predictions were read in full); it is a window whose drift the run could not measure."""

    COVERED = "covered"
    # Finished, but part of the window could not be read, or drift cannot be measured for this champion.
    NOT_COVERED = "not_covered"
    # Raised: published before the function fails (Lambda's Errors metric and retries see the failure as before).
    FAILED = "failed"


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


def constraint_sets(quality: DataQuality, service: str) -> list[MetricSet]:
    """``ConstraintViolations`` of a checked window: in all, then per check; none when its constraints disable
    metrics (``monitoring_config.emit_metrics``)."""
    if not quality.emit_metrics:
        return []
    name = MonitorMetric.CONSTRAINT_VIOLATIONS
    total = MetricSet({name: float(len(quality.violations))}, {Dimension.SERVICE: service}, SERVICE_SETS[:1])
    return [
        total,
        *(
            MetricSet(
                {name: float(count)},
                {Dimension.SERVICE: service, Dimension.CONSTRAINT_CHECK: check},
                ((Dimension.SERVICE, Dimension.CONSTRAINT_CHECK),),
            )
            for check, count in quality.by_check().items()
        ),
    ]


def outcome_set(outcome: Outcome, service: str) -> MetricSet:
    """``UncoveredWindows``: 0 for a covered window, 1 otherwise. A retried run publishes at the same time (the
    scheduled one), so the alarm's ``Minimum`` is 0 as soon as one attempt covered the window."""
    uncovered = 0.0 if outcome is Outcome.COVERED else 1.0
    return MetricSet({MonitorMetric.UNCOVERED_WINDOWS: uncovered}, {Dimension.SERVICE: service}, SERVICE_SETS[:1])


def metric_data(sets: list[MetricSet]) -> list[Datum]:
    """The data points ``sets`` make in CloudWatch."""
    return [datum for metric_set in sets for datum in metric_set.data()]
