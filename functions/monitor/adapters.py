"""The monitor's AWS adapters: captured predictions and feedback in S3, reports to S3, metrics to CloudWatch.

A window's records are read by the layout of :mod:`functions.common.layout`: a window touches one partition per UTC
day, and only objects written since the window began can hold records of it (Firehose writes an object after the
records in it arrived), so older objects of the first day are skipped by their ``LastModified``. Partitions are
named by the day a record arrived, so each read also looks at the day :data:`~functions.common.layout.ARRIVAL_SLACK`
after the window; records are then selected by their own time.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from functions.common.labelled import CaptureReader
from functions.common.layout import ARRIVAL_SLACK, days_between, report_key
from functions.common.records import FeedbackRecord, PredictionRecord
from functions.monitor.metrics import Datum

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_cloudwatch.type_defs import MetricDatumTypeDef
    from mypy_boto3_s3 import S3Client

# PutMetricData accepts up to 1000 metrics (and 1 MB) per request.
METRICS_PER_REQUEST = 500


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time as an aware UTC datetime (naive times are UTC); None if it is not one."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class CaptureStore(CaptureReader):
    """The captures and feedback of a monitoring window."""

    def predictions(self, version: str, start: datetime, end: datetime) -> list[PredictionRecord]:
        """The predictions ``version`` served in ``start < time <= end``."""
        days = days_between(start, end + ARRIVAL_SLACK)
        return [record for record in self.prediction_records(version, days, start) if _within(record.time, start, end)]

    def feedback(self, start: datetime, end: datetime) -> list[FeedbackRecord]:
        """The feedback received in ``start < time <= end``."""
        days = days_between(start, end + ARRIVAL_SLACK)
        return [record for record in self.feedback_records(days, start) if _within(record.time, start, end)]


def _within(value: Any, start: datetime, end: datetime) -> bool:
    moment = parse_time(value)
    return moment is not None and start < moment <= end


class ReportStore:
    def __init__(self, s3: S3Client, bucket: str, prefix: str) -> None:
        self._s3 = s3
        self.bucket = bucket
        self.prefix = prefix

    def write(self, version: str, time: datetime, report: Mapping[str, Any], chart: bytes | None) -> dict[str, str]:
        """The report JSON and, when there is one, its chart; returns their keys."""
        keys = {"report": report_key(self.prefix, version, time, "json")}
        self._s3.put_object(
            Bucket=self.bucket,
            Key=keys["report"],
            Body=json.dumps(report, indent=2, sort_keys=True).encode(),
            ContentType="application/json",
        )
        if chart is not None:
            keys["chart"] = report_key(self.prefix, version, time, "png")
            self._s3.put_object(Bucket=self.bucket, Key=keys["chart"], Body=chart, ContentType="image/png")
        return keys


class MetricPublisher:
    def __init__(self, cloudwatch: CloudWatchClient, namespace: str) -> None:
        self._cloudwatch = cloudwatch
        self.namespace = namespace

    def publish(self, data: Sequence[Datum], timestamp: datetime) -> None:
        items: list[MetricDatumTypeDef] = [
            {
                "MetricName": datum.name,
                "Dimensions": [{"Name": name, "Value": value} for name, value in datum.dimensions],
                "Value": datum.value,
                "Unit": datum.unit,
                "Timestamp": timestamp,
            }
            for datum in data
        ]
        for first in range(0, len(items), METRICS_PER_REQUEST):
            self._cloudwatch.put_metric_data(
                Namespace=self.namespace, MetricData=items[first : first + METRICS_PER_REQUEST]
            )
