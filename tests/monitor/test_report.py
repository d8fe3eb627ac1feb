"""Evaluating a window and the metrics it publishes, without AWS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from functions.common.records import FeedbackRecord
from functions.monitor.metrics import metric_data
from functions.monitor.report import FeedbackCounts, WindowReport, evaluate
from functions.monitor.settings import MonitorSettings, SettingsError
from tests.monitor.world import LIMITS, SERVICE, churn_rows, classification_metadata, iso, predictions

NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)
START = NOW - timedelta(hours=1)


def report(metadata: dict[str, Any], captured: int, labelled: int = 0) -> WindowReport:
    served = predictions(
        "v1", NOW - timedelta(minutes=5), churn_rows(max(captured, labelled), shifted=True), label="yes"
    )
    pairs = [(record, FeedbackRecord(record.prediction_id, iso(NOW), label="yes")) for record in served[:labelled]]
    return evaluate(
        version="v1",
        metadata=metadata,
        time=NOW,
        start=START,
        end=NOW,
        captures=served[:captured],
        labelled=pairs,
        feedback=FeedbackCounts(received=labelled),
        limits=LIMITS,
    )


def by_dimensions(report: WindowReport) -> dict[tuple[tuple[str, str], ...], set[str]]:
    found: dict[tuple[tuple[str, str], ...], set[str]] = {}
    for datum in metric_data(report, SERVICE):
        found.setdefault(datum.dimensions, set()).add(datum.name)
    return found


def test_a_sufficient_window_publishes_every_metric_per_service_and_per_version() -> None:
    found = by_dimensions(report(classification_metadata(), captured=30, labelled=10))
    alarm_metrics = {
        "CapturedRecords",
        "LabelledRecords",
        "MaxFeatureDrift",
        "PredictionDrift",
        "LiveAccuracy",
        "LiveF1",
    }
    assert found[(("Service", SERVICE),)] == alarm_metrics
    assert found[(("Service", SERVICE), ("ModelVersion", "v1"))] == alarm_metrics
    for feature in ("tenure", "plan"):
        assert found[(("Service", SERVICE), ("Feature", feature))] == {"FeatureDrift"}
        assert found[(("Service", SERVICE), ("ModelVersion", "v1"), ("Feature", feature))] == {"FeatureDrift"}


def test_an_insufficient_window_measures_no_drift_but_still_quality() -> None:
    result = report(classification_metadata(), captured=19, labelled=6)
    assert result.status == "insufficient_data"
    assert result.features == {}
    assert result.to_dict()["drift"] is None
    assert by_dimensions(result)[(("Service", SERVICE),)] == {
        "CapturedRecords",
        "LabelledRecords",
        "LiveAccuracy",
        "LiveF1",
    }


def test_exactly_min_records_is_sufficient() -> None:
    assert report(classification_metadata(), captured=LIMITS.min_records).status == "ok"


def test_a_model_without_a_baseline_is_reported_and_measures_no_drift() -> None:
    metadata = {key: value for key, value in classification_metadata().items() if key != "baseline"}
    result = report(metadata, captured=30)
    assert result.status == "no_baseline"
    assert {datum.name for datum in metric_data(result, SERVICE)} == {"CapturedRecords", "LabelledRecords"}


def test_a_model_without_a_task_is_refused() -> None:
    with pytest.raises(ValueError, match="no valid task"):
        report({"baseline": {}}, captured=30)


def test_settings_name_the_missing_or_malformed_variable() -> None:
    with pytest.raises(SettingsError, match="DRIFTLOOP_DATA_BUCKET is required"):
        MonitorSettings.from_env({})
    env = {
        "DRIFTLOOP_DATA_BUCKET": "d",
        "DRIFTLOOP_CAPTURE_PREFIX": "captures/",
        "DRIFTLOOP_FEEDBACK_PREFIX": "feedback/",
        "DRIFTLOOP_REPORT_PREFIX": "monitoring/",
        "DRIFTLOOP_MODEL_BUCKET": "m",
        "DRIFTLOOP_WINDOW_MINUTES": "sixty",
    }
    with pytest.raises(SettingsError, match="DRIFTLOOP_WINDOW_MINUTES must be an integer"):
        MonitorSettings.from_env(env)
