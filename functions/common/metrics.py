"""driftloop's CloudWatch metrics: the namespace, the dimensions and every metric's name and unit.

The Lambdas that publish them (inference, monitor) and the CDK constructs that watch them (alarms, dashboard)
import the names from here, so renaming a metric renames it on both sides. Standard library only: the inference
Lambda imports it on its cold-start path and the CDK app at synth.

Every metric carries the ``Service`` dimension, ``<name_prefix>-<stage>-<component>``, so stages never mix.
"""

from __future__ import annotations

from enum import StrEnum

NAMESPACE = "driftloop"


class Dimension(StrEnum):
    SERVICE = "Service"
    MODEL_VERSION = "ModelVersion"
    FEATURE = "Feature"
    # A data-quality check (functions.common.constraints.CheckType: completeness_check, data_type_check, ...).
    CONSTRAINT_CHECK = "ConstraintCheck"


class Unit(StrEnum):
    COUNT = "Count"
    MILLISECONDS = "Milliseconds"
    NONE = "None"


class InferenceMetric(StrEnum):
    """Published by the inference Lambda for each request, with ``[Service, ModelVersion]`` and ``[Service]``."""

    LATENCY = "Latency"
    BATCH_SIZE = "BatchSize"
    PREDICTIONS = "Predictions"
    CLIENT_ERRORS = "ClientErrors"
    SERVER_ERRORS = "ServerErrors"
    CAPTURE_FAILURES = "CaptureFailures"
    FEEDBACK = "Feedback"
    FEEDBACK_FAILURES = "FeedbackFailures"
    MODEL_LOAD_FAILURES = "ModelLoadFailures"

    @property
    def unit(self) -> Unit:
        return Unit.MILLISECONDS if self is InferenceMetric.LATENCY else Unit.COUNT


class MonitorMetric(StrEnum):
    """Published by the monitor for each window, with ``[Service]`` and ``[Service, ModelVersion]``;
    ``FeatureDrift`` adds ``Feature`` to both. ``UncoveredWindows`` is the run's own outcome, with ``[Service]``
    alone, on every run (failed ones too): 0 when it covered its window, 1 when it failed or could not.
    ``ConstraintViolations``: the data-quality constraints the window's captures violated, with ``[Service]`` (all
    checks) and ``[Service, ConstraintCheck]`` (per check), never per feature or version (the report names them)."""

    CAPTURED_RECORDS = "CapturedRecords"
    LABELLED_RECORDS = "LabelledRecords"
    MAX_FEATURE_DRIFT = "MaxFeatureDrift"
    PREDICTION_DRIFT = "PredictionDrift"
    FEATURE_DRIFT = "FeatureDrift"
    LIVE_ACCURACY = "LiveAccuracy"
    LIVE_F1 = "LiveF1"
    LIVE_RMSE = "LiveRMSE"
    LIVE_MAE = "LiveMAE"
    UNCOVERED_WINDOWS = "UncoveredWindows"
    CONSTRAINT_VIOLATIONS = "ConstraintViolations"

    @property
    def unit(self) -> Unit:
        counts = (
            MonitorMetric.CAPTURED_RECORDS,
            MonitorMetric.LABELLED_RECORDS,
            MonitorMetric.UNCOVERED_WINDOWS,
            MonitorMetric.CONSTRAINT_VIOLATIONS,
        )
        return Unit.COUNT if self in counts else Unit.NONE


# The live-quality metric of each quality measure the monitor computes.
QUALITY_METRICS = {
    "accuracy": MonitorMetric.LIVE_ACCURACY,
    "f1": MonitorMetric.LIVE_F1,
    "rmse": MonitorMetric.LIVE_RMSE,
    "mae": MonitorMetric.LIVE_MAE,
}
