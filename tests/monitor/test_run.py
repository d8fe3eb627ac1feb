"""A monitor run against moto: S3 captures and feedback in the records layout -> CloudWatch metrics and reports."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from functions.common.records import FeedbackRecord, PredictionRecord, to_json_lines
from functions.monitor import handler as handler_module
from functions.monitor.run import run_monitor
from tests.monitor.world import (
    SERVICE,
    SETTINGS,
    churn_rows,
    classification_metadata,
    iso,
    predictions,
    publish_champion,
    regression_metadata,
    write_captures,
    write_feedback,
)
from tests.plugins.aws import DATA_BUCKET

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_s3 import S3Client

VERSION = "v20261127-100000-abcdef"
# Real time: moto stamps objects with the real LastModified, which the window's reads rely on.
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def cloudwatch(aws: None) -> CloudWatchClient:
    return boto3.client("cloudwatch", region_name="us-east-1")


def published(cloudwatch: CloudWatchClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(metric name, sorted dimensions) -> the maximum published in the last hour."""
    found = {}
    for metric in cloudwatch.list_metrics(Namespace="driftloop")["Metrics"]:
        dimensions = metric.get("Dimensions", [])
        stats = cloudwatch.get_metric_statistics(
            Namespace="driftloop",
            MetricName=metric["MetricName"],
            Dimensions=dimensions,
            StartTime=NOW - timedelta(hours=1),
            EndTime=NOW + timedelta(hours=1),
            Period=60,
            Statistics=["Maximum"],
        )
        [point] = stats["Datapoints"]
        key = tuple(sorted((d["Name"], d["Value"]) for d in dimensions))
        found[(metric["MetricName"], key)] = point["Maximum"]
    return found


def service_only(metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> dict[str, float]:
    return {name: value for (name, dims), value in metrics.items() if dims == (("Service", SERVICE),)}


def report_objects(s3: S3Client) -> dict[str, bytes]:
    listing = s3.list_objects_v2(Bucket=DATA_BUCKET, Prefix=SETTINGS.report_prefix).get("Contents", [])
    return {item["Key"]: s3.get_object(Bucket=DATA_BUCKET, Key=item["Key"])["Body"].read() for item in listing}


@pytest.fixture
def drifted_world(s3: S3Client) -> dict[str, list[PredictionRecord]]:
    publish_champion(s3, VERSION, classification_metadata())
    in_window = predictions(
        VERSION,
        NOW - timedelta(minutes=30),
        churn_rows(40, shifted=True),
        label="yes",
        probabilities={"no": 0.1, "yes": 0.9},
    )
    too_old = predictions(VERSION, NOW - timedelta(minutes=90), churn_rows(30, shifted=False), label="no")
    other_version = predictions("v-other", NOW - timedelta(minutes=20), churn_rows(30, shifted=False), label="no")
    two_days_ago = predictions(VERSION, NOW - timedelta(days=2), churn_rows(5, shifted=False), label="no")
    write_captures(s3, in_window + too_old + two_days_ago, "part-1")
    write_captures(s3, other_version, "part-2")
    received = iso(NOW - timedelta(minutes=10))
    feedback = [
        # Six on this window's predictions: the model said "yes" to all; four were right.
        *(FeedbackRecord(r.prediction_id, received, label="yes") for r in in_window[:4]),
        *(FeedbackRecord(r.prediction_id, received, label="no") for r in in_window[4:6]),
        # Two on predictions served two days ago (the capture day comes from the id): "no", right.
        *(FeedbackRecord(r.prediction_id, received, label="no") for r in two_days_ago[:2]),
        # Unmatched (another version's prediction), and feedback received before the window.
        FeedbackRecord(other_version[0].prediction_id, received, label="no"),
        FeedbackRecord(in_window[10].prediction_id, iso(NOW - timedelta(hours=2)), label="no"),
    ]
    write_feedback(s3, feedback)
    return {"in_window": in_window, "two_days_ago": two_days_ago}


def test_a_drifted_window_publishes_drift_quality_and_counts(
    s3: S3Client, cloudwatch: CloudWatchClient, drifted_world: dict[str, Any]
) -> None:
    summary = run_monitor(SETTINGS, NOW, s3, cloudwatch)

    assert summary["status"] == "ok"
    assert summary["model_version"] == VERSION
    assert (summary["captured"], summary["labelled"]) == (40, 8)
    assert summary["max_drift_feature"] == "tenure"
    metrics = published(cloudwatch)
    overall = service_only(metrics)
    assert set(overall) == {
        "CapturedRecords",
        "LabelledRecords",
        "MaxFeatureDrift",
        "PredictionDrift",
        "LiveAccuracy",
        "LiveF1",
    }
    assert overall["CapturedRecords"] == 40
    assert overall["LabelledRecords"] == 8
    assert overall["MaxFeatureDrift"] == pytest.approx(summary["max_feature_drift"])
    assert overall["MaxFeatureDrift"] > SETTINGS.drift_threshold
    # 6 of 8 right; positive "yes": tp 4, fp 2, fn 0 -> F1 = 8 / 10.
    assert overall["LiveAccuracy"] == pytest.approx(6 / 8)
    assert overall["LiveF1"] == pytest.approx(0.8)
    # Per-feature drift, for alarms and per version.
    feature = ("FeatureDrift", (("Feature", "tenure"), ("Service", SERVICE)))
    assert metrics[feature] == pytest.approx(summary["max_feature_drift"])
    assert ("FeatureDrift", (("Feature", "plan"), ("Service", SERVICE))) in metrics
    per_version = {name for (name, dims), _ in metrics.items() if ("ModelVersion", VERSION) in dims}
    assert per_version == set(overall) | {"FeatureDrift"}


def test_the_report_and_its_chart_are_written_under_the_version(
    s3: S3Client, cloudwatch: CloudWatchClient, drifted_world: dict[str, Any]
) -> None:
    summary = run_monitor(SETTINGS, NOW, s3, cloudwatch)

    stamp = f"{NOW:%Y%m%dT%H%M%SZ}"
    json_key, png_key = f"monitoring/{VERSION}/{stamp}.json", f"monitoring/{VERSION}/{stamp}.png"
    assert (summary["report"], summary["chart"]) == (json_key, png_key)
    objects = report_objects(s3)
    assert set(objects) == {json_key, png_key}
    assert objects[png_key].startswith(b"\x89PNG\r\n\x1a\n")
    report = json.loads(objects[json_key])
    assert report["status"] == "ok"
    assert report["records"] == {"captured": 40, "labelled": 8, "min_records": 20, "min_feedback": 5}
    # Received in the window: 8 joined, 1 for another version's prediction; the one before the window is not read.
    assert report["feedback"] == {"received": 9, "rejected": 0, "unmatched": 1}
    assert report["drift"]["max_feature"]["feature"] == "tenure"
    assert report["drift"]["above_threshold"] == ["tenure"]
    assert set(report["drift"]["features"]) == {"tenure", "plan"}
    assert set(report["drift"]["predictions"]) == {"label", "positive_probability"}
    assert report["quality"] == pytest.approx({"accuracy": 0.75, "f1": 0.8})
    assert report["window"] == {"start": iso(NOW - timedelta(minutes=60)), "end": iso(NOW)}
    assert "MaxFeatureDrift" in report["metrics"]


def test_an_insufficient_window_publishes_only_the_counts(s3: S3Client, cloudwatch: CloudWatchClient) -> None:
    publish_champion(s3, VERSION, classification_metadata())
    write_captures(s3, predictions(VERSION, NOW - timedelta(minutes=5), churn_rows(5, shifted=True), label="yes"))

    summary = run_monitor(SETTINGS, NOW, s3, cloudwatch)

    assert summary["status"] == "insufficient_data"
    assert summary["max_feature_drift"] is None
    metrics = published(cloudwatch)
    assert {name for name, _ in metrics} == {"CapturedRecords", "LabelledRecords"}
    assert service_only(metrics) == {"CapturedRecords": 5, "LabelledRecords": 0}
    objects = report_objects(s3)
    [key] = objects
    report = json.loads(objects[key])
    assert report["drift"] is None
    assert report["status"] == "insufficient_data"
    assert any("fewer than 20" in note for note in report["notes"])


def test_an_empty_window_is_reported_as_zero_records_not_zero_drift(s3: S3Client, cloudwatch: CloudWatchClient) -> None:
    publish_champion(s3, VERSION, classification_metadata())

    summary = run_monitor(SETTINGS, NOW, s3, cloudwatch)

    assert summary["status"] == "insufficient_data"
    assert service_only(published(cloudwatch)) == {"CapturedRecords": 0, "LabelledRecords": 0}


def test_a_regression_champion_gets_rmse_mae_and_value_drift(s3: S3Client, cloudwatch: CloudWatchClient) -> None:
    publish_champion(s3, VERSION, regression_metadata())
    rows = [{"tenure": (i * 7) % 100} for i in range(30)]
    served = predictions(VERSION, NOW - timedelta(minutes=15), rows, value=50.0)
    write_captures(s3, served)
    received = iso(NOW - timedelta(minutes=5))
    # Every prediction is 50; truths 40 (three) and 60 (three): every error is 10.
    write_feedback(
        s3,
        [FeedbackRecord(r.prediction_id, received, value=40.0 if i < 3 else 60.0) for i, r in enumerate(served[:6])],
    )

    summary = run_monitor(SETTINGS, NOW, s3, cloudwatch)

    assert summary["status"] == "ok"
    overall = service_only(published(cloudwatch))
    assert set(overall) == {
        "CapturedRecords",
        "LabelledRecords",
        "MaxFeatureDrift",
        "PredictionDrift",
        "LiveRMSE",
        "LiveMAE",
    }
    assert overall["LiveRMSE"] == pytest.approx(10.0)
    assert overall["LiveMAE"] == pytest.approx(10.0)
    # Every prediction is 50: one baseline bin of ten holds them all.
    assert overall["PredictionDrift"] > 1.0
    assert overall["MaxFeatureDrift"] < 0.1


def test_fewer_labels_than_min_feedback_publish_no_quality(s3: S3Client, cloudwatch: CloudWatchClient) -> None:
    publish_champion(s3, VERSION, classification_metadata())
    served = predictions(VERSION, NOW - timedelta(minutes=15), churn_rows(25, shifted=False), label="no")
    write_captures(s3, served)
    write_feedback(s3, [FeedbackRecord(r.prediction_id, iso(NOW), label="no") for r in served[:4]])

    run_monitor(SETTINGS, NOW, s3, cloudwatch)

    overall = service_only(published(cloudwatch))
    assert overall["LabelledRecords"] == 4
    assert not {"LiveAccuracy", "LiveF1"} & set(overall)


def test_without_a_champion_nothing_is_published(s3: S3Client, cloudwatch: CloudWatchClient) -> None:
    assert run_monitor(SETTINGS, NOW, s3, cloudwatch)["status"] == "no_champion"
    assert cloudwatch.list_metrics(Namespace="driftloop")["Metrics"] == []
    assert report_objects(s3) == {}


def test_records_still_in_the_capture_buffer_are_left_to_the_next_run(
    s3: S3Client, cloudwatch: CloudWatchClient
) -> None:
    publish_champion(s3, VERSION, classification_metadata())
    write_captures(s3, predictions(VERSION, NOW - timedelta(minutes=1), churn_rows(25, shifted=False), label="no"))
    lagged = dataclasses.replace(SETTINGS, window_lag_seconds=120)

    assert run_monitor(lagged, NOW, s3, cloudwatch)["captured"] == 0
    assert run_monitor(SETTINGS, NOW, s3, cloudwatch)["captured"] == 25


def test_gzipped_objects_are_read_and_malformed_ones_counted(s3: S3Client, cloudwatch: CloudWatchClient) -> None:
    publish_champion(s3, VERSION, classification_metadata())
    served = predictions(VERSION, NOW - timedelta(minutes=15), churn_rows(25, shifted=False), label="no")
    write_captures(s3, served, "part-1.gz", compress=True)
    prefix = f"captures/model_version={VERSION}/date={NOW - timedelta(minutes=15):%Y-%m-%d}/"
    s3.put_object(Bucket=DATA_BUCKET, Key=prefix + "part-2", Body=b"{not json")
    s3.put_object(Bucket=DATA_BUCKET, Key=prefix + "part-3", Body=b'{"prediction_id": "x"}\n')

    summary = run_monitor(SETTINGS, NOW, s3, cloudwatch)

    assert summary["captured"] == 25
    report = json.loads(s3.get_object(Bucket=DATA_BUCKET, Key=summary["report"])["Body"].read())
    assert report["reads"] == {"objects": 3, "malformed_objects": 1, "malformed_records": 1}


def test_a_chart_that_fails_to_render_is_noted_and_the_run_succeeds(
    s3: S3Client, cloudwatch: CloudWatchClient, drifted_world: dict[str, Any]
) -> None:
    def broken(*args: Any, **kwargs: Any) -> bytes:
        raise RuntimeError("no fonts")

    summary = run_monitor(SETTINGS, NOW, s3, cloudwatch, render_chart=broken)

    assert "chart" not in summary
    report = json.loads(s3.get_object(Bucket=DATA_BUCKET, Key=summary["report"])["Body"].read())
    assert any("no fonts" in note for note in report["notes"])
    assert "MaxFeatureDrift" in service_only(published(cloudwatch))


@pytest.fixture
def lambda_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    env = {
        "DRIFTLOOP_DATA_BUCKET": SETTINGS.data_bucket,
        "DRIFTLOOP_CAPTURE_PREFIX": SETTINGS.capture_prefix,
        "DRIFTLOOP_FEEDBACK_PREFIX": SETTINGS.feedback_prefix,
        "DRIFTLOOP_REPORT_PREFIX": SETTINGS.report_prefix,
        "DRIFTLOOP_MODEL_BUCKET": SETTINGS.model_bucket,
        "DRIFTLOOP_REGISTRY_PREFIX": SETTINGS.registry_prefix,
        "DRIFTLOOP_WINDOW_MINUTES": "60",
        "DRIFTLOOP_WINDOW_LAG_SECONDS": "0",
        "DRIFTLOOP_MIN_RECORDS": "20",
        "DRIFTLOOP_MIN_FEEDBACK": "5",
        "DRIFTLOOP_FEEDBACK_MAX_AGE_DAYS": "30",
        "DRIFTLOOP_DRIFT_THRESHOLD": "0.2",
        "DRIFTLOOP_METRIC_NAMESPACE": "driftloop",
        "DRIFTLOOP_SERVICE": SERVICE,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for cached in (handler_module._settings, handler_module._s3, handler_module._cloudwatch):
        cached.cache_clear()
    yield
    for cached in (handler_module._settings, handler_module._s3, handler_module._cloudwatch):
        cached.cache_clear()


def test_the_handler_evaluates_the_window_ending_at_the_scheduled_time(
    s3: S3Client,
    cloudwatch: CloudWatchClient,
    drifted_world: dict[str, Any],
    lambda_env: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    event = {"source": "aws.events", "detail-type": "Scheduled Event", "time": iso(NOW)}

    summary = handler_module.handler(event, None)

    assert summary["status"] == "ok"
    assert summary["report"] == f"monitoring/{VERSION}/{NOW:%Y%m%dT%H%M%SZ}.json"
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["message"] == "monitor run"
    assert line["model_version"] == VERSION


def test_the_handler_runs_now_without_a_scheduled_time() -> None:
    before = datetime.now(UTC)
    assert before <= handler_module.run_time({}) <= datetime.now(UTC)
    assert handler_module.run_time({"time": "2026-11-27T11:00:00Z"}) == datetime(2026, 11, 27, 11, tzinfo=UTC)


def test_records_that_reached_the_next_days_partition_are_still_read(
    s3: S3Client, cloudwatch: CloudWatchClient
) -> None:
    """Firehose partitions by arrival: a prediction served just before midnight may sit in the next day's folder."""
    publish_champion(s3, VERSION, classification_metadata())
    now = datetime(2026, 11, 20, 0, 5, tzinfo=UTC)
    late = predictions(
        VERSION, datetime(2026, 11, 19, 23, 59, 59, tzinfo=UTC), churn_rows(20, shifted=False), label="no"
    )
    earlier = predictions(
        VERSION, datetime(2026, 11, 17, 23, 59, 58, tzinfo=UTC), churn_rows(5, shifted=False), label="no"
    )
    for records, day in ((late, "2026-11-20"), (earlier, "2026-11-18")):
        key = f"captures/model_version={VERSION}/date={day}/part-1"
        s3.put_object(Bucket=DATA_BUCKET, Key=key, Body=to_json_lines(records))
    write_feedback(s3, [FeedbackRecord(r.prediction_id, iso(now - timedelta(minutes=1)), label="no") for r in earlier])

    summary = run_monitor(SETTINGS, now, s3, cloudwatch)

    assert (summary["captured"], summary["labelled"]) == (20, 5)
    assert summary["quality"] == {"accuracy": 1.0, "f1": 0.0}
