"""Test data for the monitor: a champion in the registry layout, captures and feedback in the records layout."""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from functions.common import layout
from functions.common.bundle import METADATA_FILE
from functions.common.distribution import Baseline, categorical_summary, numeric_summary
from functions.common.metrics import NAMESPACE
from functions.common.records import FeedbackRecord, PredictionRecord, new_prediction_ids, to_json_lines
from functions.common.registry import Registry
from functions.monitor.report import Limits
from functions.monitor.settings import MonitorSettings
from tests.plugins.athena import CAPTURE_PREFIX, DATABASE, FEEDBACK_PREFIX, WORKGROUP
from tests.plugins.aws import DATA_BUCKET, MODEL_BUCKET
from tests.prediction_ids import ID_KEY

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

SERVICE = "driftloop-test-monitor"
LIMITS = Limits(min_records=20, min_feedback=5, drift_threshold=0.2)
SETTINGS = MonitorSettings(
    data_bucket=DATA_BUCKET,
    report_prefix="monitoring/",
    model_bucket=MODEL_BUCKET,
    registry_prefix="registry/",
    window_minutes=60,
    window_lag_seconds=0,
    min_records=LIMITS.min_records,
    min_feedback=LIMITS.min_feedback,
    feedback_max_age_days=30,
    drift_threshold=LIMITS.drift_threshold,
    glue_database=DATABASE,
    athena_workgroup=WORKGROUP,
    service=SERVICE,
)
CLASSES = ["no", "yes"]

# (metric name, sorted (dimension, value) pairs) -> value
Published = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def emf_documents(stdout: str) -> list[dict[str, Any]]:
    """The embedded metric format documents among the lines a run printed."""
    documents = [json.loads(line) for line in stdout.splitlines() if line.startswith('{"_aws"')]
    return [document for document in documents if isinstance(document, dict)]


def emf_published(stdout: str, time: datetime) -> Published:
    """The data points CloudWatch makes of the EMF lines in ``stdout`` (in driftloop's namespace), checking that
    each has one value, taken at ``time``, and none repeats."""
    found: Published = {}
    for document in emf_documents(stdout):
        assert document["_aws"]["Timestamp"] == int(time.timestamp() * 1000)
        for directive in document["_aws"]["CloudWatchMetrics"]:
            if directive["Namespace"] != NAMESPACE:
                continue
            for dimensions in directive["Dimensions"]:
                key = tuple(sorted((name, document[name]) for name in dimensions))
                for metric in directive["Metrics"]:
                    [value] = document[metric["Name"]]
                    assert (metric["Name"], key) not in found, (metric["Name"], key)
                    found[(metric["Name"], key)] = value
    return found


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def classification_metadata() -> dict[str, Any]:
    """A binary churn model whose training data had tenure 0..99, 60 % basic plans and 30 % predicted churn."""
    baseline = Baseline(
        rows=100,
        features={
            "tenure": numeric_summary(list(range(100))),
            "plan": categorical_summary(["basic"] * 60 + ["premium"] * 40),
        },
        prediction=categorical_summary(["no"] * 70 + ["yes"] * 30),
        prediction_rows=100,
        positive_probability=numeric_summary([i / 100 for i in range(100)]),
    )
    return {"task": "classification", "target": "churned", "classes": CLASSES, "baseline": baseline.to_dict()}


def regression_metadata() -> dict[str, Any]:
    baseline = Baseline(
        rows=100,
        features={"tenure": numeric_summary(list(range(100)))},
        prediction=numeric_summary([float(v) for v in range(100)]),
        prediction_rows=100,
    )
    return {"task": "regression", "target": "spend", "classes": [], "baseline": baseline.to_dict()}


def publish_champion(s3: S3Client, version: str, metadata: dict[str, Any]) -> None:
    """The two registry objects the monitor reads: the champion pointer and the version's metadata."""
    registry = Registry(s3, MODEL_BUCKET, SETTINGS.registry_prefix)
    s3.put_object(Bucket=MODEL_BUCKET, Key=registry.version_key(version, METADATA_FILE), Body=json.dumps(metadata))
    pointer = {
        "version": version,
        "archive_key": registry.version_key(version, "model.tar.gz"),
        "sha256": "0" * 64,
        "promoted_at": iso(datetime.now(UTC)),
        "decision_id": "d-1",
    }
    s3.put_object(Bucket=MODEL_BUCKET, Key=registry.champion_key, Body=json.dumps(pointer))


def predictions(
    version: str, served: datetime, features: Sequence[dict[str, Any]], **answer: Any
) -> list[PredictionRecord]:
    ids = new_prediction_ids(len(features), served, ID_KEY)
    return [PredictionRecord(pid, iso(served), version, row, **answer) for pid, row in zip(ids, features, strict=True)]


def capture_hour_prefix(version: str, arrived: datetime) -> str:
    return layout.capture_hour_prefix(CAPTURE_PREFIX, version, layout.hour_value(arrived))


def feedback_hour_prefix(arrived: datetime) -> str:
    return layout.feedback_hour_prefix(FEEDBACK_PREFIX, layout.hour_value(arrived))


def _arrival(record: PredictionRecord | FeedbackRecord) -> datetime:
    return datetime.fromisoformat(record.time)


def write_captures(
    s3: S3Client,
    records: Sequence[PredictionRecord],
    name: str = "part-1.gz",
    *,
    arrived: datetime | None = None,
) -> None:
    """One gzip object of JSON lines per (version, hour) partition, as Firehose writes them; records arrive at
    their own time unless ``arrived`` says when."""
    partitions: dict[str, list[PredictionRecord]] = {}
    for record in records:
        prefix = capture_hour_prefix(record.model_version, arrived or _arrival(record))
        partitions.setdefault(prefix, []).append(record)
    for prefix, items in partitions.items():
        s3.put_object(Bucket=DATA_BUCKET, Key=prefix + name, Body=gzip.compress(to_json_lines(items)))


def write_feedback(s3: S3Client, records: Sequence[FeedbackRecord], name: str = "part-1.gz") -> None:
    partitions: dict[str, list[FeedbackRecord]] = {}
    for record in records:
        partitions.setdefault(feedback_hour_prefix(_arrival(record)), []).append(record)
    for prefix, items in partitions.items():
        s3.put_object(Bucket=DATA_BUCKET, Key=prefix + name, Body=gzip.compress(to_json_lines(items)))


def churn_rows(count: int, *, shifted: bool) -> list[dict[str, Any]]:
    """Tenure like training (0..99) or all near 95..99 (drifted); plans 60/40 like training either way."""
    return [
        {"tenure": (95 + i % 5) if shifted else (i * 7) % 100, "plan": "basic" if i % 5 < 3 else "premium"}
        for i in range(count)
    ]
