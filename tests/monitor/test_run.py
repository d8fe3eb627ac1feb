"""A monitor run against moto: S3 captures and feedback in the records layout -> EMF metric lines and reports."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from functions.common import layout
from functions.common.athena import Athena, QueryFailed
from functions.common.layout import ARRIVAL_SLACK
from functions.common.records import FeedbackRecord, PredictionRecord
from functions.monitor import handler as handler_module
from functions.monitor.run import run_monitor
from infra.bundling import REPO_ROOT
from tests.monitor.world import (
    SERVICE,
    SETTINGS,
    Published,
    capture_hour_prefix,
    churn_rows,
    classification_metadata,
    emf_published,
    iso,
    predictions,
    publish_champion,
    regression_metadata,
    write_captures,
    write_feedback,
)
from tests.plugins.athena import LocalAthena
from tests.plugins.aws import DATA_BUCKET

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

VERSION = "v20261127-100000-abcdef"
# Real time: partition projection lists hours up to now.
NOW = datetime.now(UTC).replace(microsecond=0)


def published(capsys: pytest.CaptureFixture[str]) -> Published:
    """(metric name, sorted dimensions) -> the value the run published, read from its EMF lines."""
    return emf_published(capsys.readouterr().out, NOW)


def service_only(metrics: Published) -> dict[str, float]:
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
    s3: S3Client, athena: Athena, capsys: pytest.CaptureFixture[str], drifted_world: dict[str, Any]
) -> None:
    summary = run_monitor(SETTINGS, NOW, s3, athena)

    assert (summary["status"], summary["outcome"]) == ("ok", "covered")
    assert summary["model_version"] == VERSION
    assert (summary["captured"], summary["labelled"]) == (40, 8)
    assert summary["max_drift_feature"] == "tenure"
    metrics = published(capsys)
    overall = service_only(metrics)
    assert set(overall) == {
        "CapturedRecords",
        "LabelledRecords",
        "MaxFeatureDrift",
        "PredictionDrift",
        "LiveAccuracy",
        "LiveF1",
        "UncoveredWindows",
    }
    assert overall["UncoveredWindows"] == 0
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
    # The run's outcome is the Service's alone: the alarm on it must not depend on the champion.
    per_version = {name for (name, dims), _ in metrics.items() if ("ModelVersion", VERSION) in dims}
    assert per_version == set(overall) - {"UncoveredWindows"} | {"FeatureDrift"}


def test_the_report_and_its_chart_are_written_under_the_version(
    s3: S3Client, athena: Athena, drifted_world: dict[str, Any]
) -> None:
    summary = run_monitor(SETTINGS, NOW, s3, athena)

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
    assert report["feedback"] == {"received": 9, "rejected": 0, "unmatched": 1, "dropped": {}}
    assert report["drift"]["max_feature"]["feature"] == "tenure"
    assert report["drift"]["above_threshold"] == ["tenure"]
    assert set(report["drift"]["features"]) == {"tenure", "plan"}
    assert set(report["drift"]["predictions"]) == {"label", "positive_probability"}
    assert report["quality"] == pytest.approx({"accuracy": 0.75, "f1": 0.8})
    assert report["window"] == {"start": iso(NOW - timedelta(minutes=60)), "end": iso(NOW)}
    assert "MaxFeatureDrift" in report["metrics"]


def test_an_insufficient_window_publishes_only_the_counts(
    s3: S3Client, athena: Athena, capsys: pytest.CaptureFixture[str]
) -> None:
    publish_champion(s3, VERSION, classification_metadata())
    write_captures(s3, predictions(VERSION, NOW - timedelta(minutes=5), churn_rows(5, shifted=True), label="yes"))

    summary = run_monitor(SETTINGS, NOW, s3, athena)

    # Too little traffic is no failure of the monitor: the window was read whole, it is covered.
    assert (summary["status"], summary["outcome"]) == ("insufficient_data", "covered")
    assert summary["max_feature_drift"] is None
    metrics = published(capsys)
    assert {name for name, _ in metrics} == {"CapturedRecords", "LabelledRecords", "UncoveredWindows"}
    assert service_only(metrics) == {"CapturedRecords": 5, "LabelledRecords": 0, "UncoveredWindows": 0}
    objects = report_objects(s3)
    [key] = objects
    report = json.loads(objects[key])
    assert report["drift"] is None
    assert report["status"] == "insufficient_data"
    assert any("fewer than 20" in note for note in report["notes"])


def test_an_empty_window_is_reported_as_zero_records_not_zero_drift(
    s3: S3Client, athena: Athena, capsys: pytest.CaptureFixture[str]
) -> None:
    publish_champion(s3, VERSION, classification_metadata())

    summary = run_monitor(SETTINGS, NOW, s3, athena)

    assert summary["status"] == "insufficient_data"
    assert service_only(published(capsys)) == {"CapturedRecords": 0, "LabelledRecords": 0, "UncoveredWindows": 0}


def test_a_regression_champion_gets_rmse_mae_and_value_drift(
    s3: S3Client, athena: Athena, capsys: pytest.CaptureFixture[str]
) -> None:
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

    summary = run_monitor(SETTINGS, NOW, s3, athena)

    assert summary["status"] == "ok"
    overall = service_only(published(capsys))
    assert set(overall) == {
        "CapturedRecords",
        "LabelledRecords",
        "MaxFeatureDrift",
        "PredictionDrift",
        "LiveRMSE",
        "LiveMAE",
        "UncoveredWindows",
    }
    assert overall["LiveRMSE"] == pytest.approx(10.0)
    assert overall["LiveMAE"] == pytest.approx(10.0)
    # Every prediction is 50: one baseline bin of ten holds them all.
    assert overall["PredictionDrift"] > 1.0
    assert overall["MaxFeatureDrift"] < 0.1


def test_fewer_labels_than_min_feedback_publish_no_quality(
    s3: S3Client, athena: Athena, capsys: pytest.CaptureFixture[str]
) -> None:
    publish_champion(s3, VERSION, classification_metadata())
    served = predictions(VERSION, NOW - timedelta(minutes=15), churn_rows(25, shifted=False), label="no")
    write_captures(s3, served)
    write_feedback(s3, [FeedbackRecord(r.prediction_id, iso(NOW), label="no") for r in served[:4]])

    run_monitor(SETTINGS, NOW, s3, athena)

    overall = service_only(published(capsys))
    assert overall["LabelledRecords"] == 4
    assert not {"LiveAccuracy", "LiveF1"} & set(overall)


def test_the_report_says_why_feedback_was_dropped(s3: S3Client, athena: Athena) -> None:
    publish_champion(s3, VERSION, classification_metadata())
    served = predictions(VERSION, NOW - timedelta(minutes=15), churn_rows(3, shifted=False), label="no")
    write_captures(s3, served)
    received = iso(NOW - timedelta(minutes=5))
    write_feedback(
        s3,
        [
            FeedbackRecord(served[0].prediction_id, iso(NOW - timedelta(minutes=10)), label="yes"),
            FeedbackRecord(served[0].prediction_id, received, label="no"),
            FeedbackRecord(served[1].prediction_id, received, value=3.0),
            FeedbackRecord("0" * 31, received, label="no"),
        ],
    )

    summary = run_monitor(SETTINGS, NOW, s3, athena)

    report = json.loads(s3.get_object(Bucket=DATA_BUCKET, Key=summary["report"])["Body"].read())
    assert report["feedback"] == {
        "received": 4,
        "rejected": 3,
        "unmatched": 0,
        "dropped": {"invalid_ids": 1, "superseded": 1, "unlabelled": 1},
    }
    assert summary["labelled"] == 1


def test_without_a_champion_only_a_covered_window_is_published(
    s3: S3Client, athena: Athena, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nothing to watch is not a blind monitor: a new deployment must not raise the monitor-blind alarm."""
    summary = run_monitor(SETTINGS, NOW, s3, athena)

    assert (summary["status"], summary["outcome"]) == ("no_champion", "covered")
    assert published(capsys) == {("UncoveredWindows", (("Service", SERVICE),)): 0}
    assert report_objects(s3) == {}


def test_a_champion_without_a_drift_baseline_leaves_its_window_uncovered(
    s3: S3Client, athena: Athena, capsys: pytest.CaptureFixture[str]
) -> None:
    metadata = {key: value for key, value in classification_metadata().items() if key != "baseline"}
    publish_champion(s3, VERSION, metadata)
    write_captures(s3, predictions(VERSION, NOW - timedelta(minutes=15), churn_rows(25, shifted=True), label="no"))

    summary = run_monitor(SETTINGS, NOW, s3, athena)

    assert (summary["status"], summary["outcome"]) == ("no_baseline", "not_covered")
    assert service_only(published(capsys))["UncoveredWindows"] == 1
    report = json.loads(s3.get_object(Bucket=DATA_BUCKET, Key=summary["report"])["Body"].read())
    assert report["outcome"] == "not_covered"
    assert any(note.startswith("window not covered: drift cannot be measured") for note in report["notes"])


def test_a_query_athena_fails_fails_the_run_with_athenas_reason(s3: S3Client, athena: Athena) -> None:
    """A capture object Athena cannot read fails its query (the JSON SerDe refuses it): the run raises, and the
    handler publishes the failed run, rather than measuring part of the window."""
    publish_champion(s3, VERSION, classification_metadata())
    served = predictions(VERSION, NOW - timedelta(minutes=15), churn_rows(25, shifted=False), label="no")
    write_captures(s3, served)
    s3.put_object(
        Bucket=DATA_BUCKET,
        Key=capture_hour_prefix(VERSION, NOW - timedelta(minutes=15)) + "part-2.gz",
        Body=b"{not json",
    )

    with pytest.raises(QueryFailed, match="FAILED") as failure:
        run_monitor(SETTINGS, NOW, s3, athena)

    assert failure.value.reason
    assert report_objects(s3) == {}


def test_records_still_in_the_capture_buffer_are_left_to_the_next_run(s3: S3Client, athena: Athena) -> None:
    publish_champion(s3, VERSION, classification_metadata())
    write_captures(s3, predictions(VERSION, NOW - timedelta(minutes=1), churn_rows(25, shifted=False), label="no"))
    lagged = dataclasses.replace(SETTINGS, window_lag_seconds=120)

    assert run_monitor(lagged, NOW, s3, athena)["captured"] == 0
    assert run_monitor(SETTINGS, NOW, s3, athena)["captured"] == 25


def test_the_report_names_each_query_and_the_bytes_athena_scanned(
    s3: S3Client, athena: Athena, local_athena: LocalAthena, drifted_world: dict[str, Any]
) -> None:
    summary = run_monitor(SETTINGS, NOW, s3, athena)

    report = json.loads(s3.get_object(Bucket=DATA_BUCKET, Key=summary["report"])["Body"].read())
    # Drift counts, feedback fates, the join: each Athena query once.
    assert [query["id"] for query in report["queries"]] == list(local_athena.executions)
    assert len(report["queries"]) == 3
    assert all(query["scanned_bytes"] > 0 for query in report["queries"])
    assert report["scanned_bytes"] == summary["scanned_bytes"] == sum(q["scanned_bytes"] for q in report["queries"])


def test_the_window_reads_only_its_own_hours_and_the_join_only_the_hours_the_ids_name(
    s3: S3Client, athena: Athena, local_athena: LocalAthena, drifted_world: dict[str, Any]
) -> None:
    run_monitor(SETTINGS, NOW, s3, athena)

    drift, feedback, join = local_athena.queries
    hours = re.compile(r"'(\d{4}-\d\d-\d\d-\d\d)'")
    window = {layout.hour_value(NOW - timedelta(minutes=m)) for m in (0, 30, 60)} | {
        layout.hour_value(NOW + ARRIVAL_SLACK)
    }
    assert set(hours.findall(drift)) <= window
    # The join reads the window's feedback again, and the capture hours of the predictions the feedback names:
    # this window's and the two-day-old ones.
    assert set(hours.findall(feedback)) <= window
    [capture_hours] = re.findall(r'"hour" IN \(([^)]*)\)', join)
    named = set(hours.findall(capture_hours))
    assert layout.hour_value(NOW - timedelta(days=2)) in named
    assert layout.hour_value(NOW - timedelta(minutes=30)) in named
    assert len(named) <= 8
    assert "UNION" not in drift.upper()


def test_a_chart_that_fails_to_render_is_noted_and_the_run_succeeds(
    s3: S3Client, athena: Athena, capsys: pytest.CaptureFixture[str], drifted_world: dict[str, Any]
) -> None:
    def broken(*args: Any, **kwargs: Any) -> bytes:
        raise RuntimeError("no fonts")

    summary = run_monitor(SETTINGS, NOW, s3, athena, render_chart=broken)

    assert "chart" not in summary
    report = json.loads(s3.get_object(Bucket=DATA_BUCKET, Key=summary["report"])["Body"].read())
    assert any("no fonts" in note for note in report["notes"])
    assert "MaxFeatureDrift" in service_only(published(capsys))


@dataclass(frozen=True)
class LambdaContext:
    function_name: str = "driftloop-test-monitor"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:driftloop-test-monitor"
    aws_request_id: str = "request-1"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


@pytest.fixture
def lambda_env(monkeypatch: pytest.MonkeyPatch, local_athena: LocalAthena) -> Iterator[None]:
    for name, value in SETTINGS.to_env().items():
        monkeypatch.setenv(name, value)
    # moto's Athena runs nothing: the handler's queries go to the local engine.
    monkeypatch.setattr(handler_module, "_athena_client", lambda: local_athena)
    for cached in (handler_module._settings, handler_module._s3):
        cached.cache_clear()
    yield
    for cached in (handler_module._settings, handler_module._s3):
        cached.cache_clear()


@pytest.fixture
def log(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """What the handler's logger writes (it holds the stdout of when it was created, not pytest's)."""
    stream = io.StringIO()
    monkeypatch.setattr(handler_module.logger.registered_handler, "stream", stream)
    return stream


def test_the_handler_evaluates_the_window_ending_at_the_scheduled_time(
    s3: S3Client,
    drifted_world: dict[str, Any],
    lambda_env: None,
    log: io.StringIO,
    capsys: pytest.CaptureFixture[str],
) -> None:
    event = {"source": "aws.events", "detail-type": "Scheduled Event", "time": iso(NOW)}

    summary = handler_module.handler(event, LambdaContext())

    assert summary["status"] == "ok"
    assert summary["report"] == f"monitoring/{VERSION}/{NOW:%Y%m%dT%H%M%SZ}.json"
    line = json.loads(log.getvalue().strip().splitlines()[-1])
    assert line["message"] == "monitor run"
    assert (line["model_version"], line["outcome"]) == (VERSION, "covered")
    # A Powertools line: the Lambda request it belongs to, and the summary fields the dashboard's table reads.
    assert (line["level"], line["function_request_id"]) == ("INFO", "request-1")
    assert line["quality"] == pytest.approx({"accuracy": 0.75, "f1": 0.8})
    assert service_only(published(capsys))["CapturedRecords"] == 40


def test_a_run_that_raises_publishes_its_failure_and_the_handler_still_fails(
    s3: S3Client, lambda_env: None, log: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    publish_champion(s3, VERSION, {**classification_metadata(), "task": "ranking"})
    event = {"source": "aws.events", "detail-type": "Scheduled Event", "time": iso(NOW)}

    # Raised again, as before: Lambda counts the error and retries the event.
    with pytest.raises(ValueError, match="no valid task"):
        handler_module.handler(event, LambdaContext())

    # Published at the scheduled time, where a retry that covers the window would publish 0.
    assert published(capsys) == {("UncoveredWindows", (("Service", SERVICE),)): 1}
    line = json.loads(log.getvalue().strip().splitlines()[-1])
    assert (line["message"], line["level"], line["status"], line["outcome"]) == (
        "monitor run",
        "ERROR",
        "failed",
        "failed",
    )
    assert "no valid task" in line["exception"]
    assert report_objects(s3) == {}


def test_the_handler_gives_matplotlib_a_writable_cache_directory() -> None:
    """Lambda's file system is read-only outside /tmp: without MPLCONFIGDIR, matplotlib would fail to cache fonts."""
    environment = {name: value for name, value in os.environ.items() if name != "MPLCONFIGDIR"}
    probe = "import os, functions.monitor.handler; print(os.environ['MPLCONFIGDIR'])"
    result = subprocess.run(
        [sys.executable, "-c", probe], env=environment, cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "/tmp/matplotlib"


def test_the_handlers_queries_must_end_before_the_function_would_time_out(lambda_env: None) -> None:
    """A query still running then is stopped, leaving the handler time to publish the failed run."""
    before = time.monotonic()
    athena = handler_module.athena(SETTINGS, LambdaContext())

    remaining = LambdaContext().get_remaining_time_in_millis() / 1000
    assert before + remaining - handler_module.REPORT_MARGIN_SECONDS <= athena.deadline
    assert athena.deadline <= time.monotonic() + remaining - handler_module.REPORT_MARGIN_SECONDS
    assert (athena.workgroup, athena.database) == (SETTINGS.athena_workgroup, SETTINGS.glue_database)


def test_the_handler_runs_now_without_a_scheduled_time() -> None:
    before = datetime.now(UTC)
    assert before <= handler_module.run_time({}) <= datetime.now(UTC)
    assert handler_module.run_time({"time": "2026-11-27T11:00:00Z"}) == datetime(2026, 11, 27, 11, tzinfo=UTC)


# Its fixed date is more than 14 days old, so Powertools warns that CloudWatch would drop the metrics.
@pytest.mark.filterwarnings("ignore:This metric doesn't meet the requirements")
def test_records_that_reached_the_next_hours_partition_are_still_read(s3: S3Client, athena: Athena) -> None:
    """Firehose partitions by arrival: a prediction served just before the hour may sit in the next hour's folder,
    and one served days ago is found by the hour its id names."""
    publish_champion(s3, VERSION, classification_metadata())
    now = datetime(2026, 11, 20, 0, 5, tzinfo=UTC)
    late = predictions(
        VERSION, datetime(2026, 11, 19, 23, 59, 59, tzinfo=UTC), churn_rows(20, shifted=False), label="no"
    )
    earlier = predictions(
        VERSION, datetime(2026, 11, 17, 23, 59, 58, tzinfo=UTC), churn_rows(5, shifted=False), label="no"
    )
    write_captures(s3, late, arrived=datetime(2026, 11, 20, 0, 1, tzinfo=UTC))
    write_captures(s3, earlier, arrived=datetime(2026, 11, 18, 0, 0, 30, tzinfo=UTC))
    write_feedback(s3, [FeedbackRecord(r.prediction_id, iso(now - timedelta(minutes=1)), label="no") for r in earlier])

    summary = run_monitor(SETTINGS, now, s3, athena)

    assert (summary["captured"], summary["labelled"]) == (20, 5)
    assert summary["quality"] == {"accuracy": 1.0, "f1": 0.0}
