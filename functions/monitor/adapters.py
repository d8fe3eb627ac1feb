"""The monitor's AWS adapters: captured predictions and feedback in S3, reports to S3, metrics to CloudWatch (EMF).

Reads follow the layout of :mod:`functions.common.records`: a window touches one partition per UTC day, and only
objects written since the window began can hold records of it (Firehose writes an object after the records in
it arrived), so older objects of the first day are skipped by their ``LastModified``. Objects may be gzipped.

Firehose names a partition's day by when a record *arrived*, which can be just after the time in the record (a
prediction served at 23:59:59 may land in the next day's partition), so each read also looks at the day
:data:`ARRIVAL_SLACK` after the window; records are then selected by their own time.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import EphemeralMetrics

from functions.common.metrics import NAMESPACE
from functions.common.records import (
    FeedbackRecord,
    PredictionRecord,
    capture_day_prefix,
    days_between,
    feedback_day_prefix,
    parse_json_lines,
)
from functions.monitor.metrics import MetricSet

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# How long after its own time a record may reach Firehose (and so the partition of the next day).
ARRIVAL_SLACK = timedelta(minutes=15)
_GZIP_MAGIC = b"\x1f\x8b"


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time as an aware UTC datetime (naive times are UTC); None if it is not one."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass
class ReadCounts:
    objects: int = 0
    # Objects that are not JSON lines, and records that are not records of the expected kind.
    malformed_objects: int = 0
    malformed_records: int = 0


class CaptureStore:
    def __init__(self, s3: S3Client, bucket: str, capture_prefix: str, feedback_prefix: str) -> None:
        self._s3 = s3
        self.bucket = bucket
        self.capture_prefix = capture_prefix
        self.feedback_prefix = feedback_prefix
        self.counts = ReadCounts()

    def predictions(self, version: str, start: datetime, end: datetime) -> list[PredictionRecord]:
        """The predictions ``version`` served in ``start < time <= end``."""
        found = []
        for day in days_between(start, end + ARRIVAL_SLACK):
            for data in self._records(capture_day_prefix(self.capture_prefix, version, day), start):
                record = self._prediction(data)
                if record is not None and record.model_version == version and _within(record.time, start, end):
                    found.append(record)
        return found

    def feedback(self, start: datetime, end: datetime) -> list[FeedbackRecord]:
        """The feedback received in ``start < time <= end``."""
        found = []
        for day in days_between(start, end + ARRIVAL_SLACK):
            for data in self._records(feedback_day_prefix(self.feedback_prefix, day), start):
                try:
                    record = FeedbackRecord.from_dict(data)
                except TypeError:
                    self.counts.malformed_records += 1
                    continue
                if isinstance(record.prediction_id, str) and _within(record.time, start, end):
                    found.append(record)
        return found

    def predictions_by_id(self, version: str, days: Mapping[date, set[str]]) -> dict[str, PredictionRecord]:
        """The predictions of ``version`` with the given ids, each looked up in the days ``days`` names for it
        (see :func:`capture_days`)."""
        found: dict[str, PredictionRecord] = {}
        for day, ids in sorted(days.items()):
            for data in self._records(capture_day_prefix(self.capture_prefix, version, day), None):
                if data.get("prediction_id") in ids:
                    record = self._prediction(data)
                    if record is not None and record.model_version == version:
                        found[record.prediction_id] = record
        return found

    def _prediction(self, data: dict[str, Any]) -> PredictionRecord | None:
        try:
            record = PredictionRecord.from_dict(data)
        except TypeError:
            self.counts.malformed_records += 1
            return None
        if not isinstance(record.features, Mapping) or not isinstance(record.prediction_id, str):
            self.counts.malformed_records += 1
            return None
        return record

    def _records(self, prefix: str, modified_since: datetime | None) -> Iterator[dict[str, Any]]:
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                if modified_since is not None and item["LastModified"] < modified_since:
                    continue
                body = self._s3.get_object(Bucket=self.bucket, Key=item["Key"])["Body"].read()
                self.counts.objects += 1
                try:
                    records = list(parse_json_lines(gzip.decompress(body) if body[:2] == _GZIP_MAGIC else body))
                except (ValueError, OSError, EOFError):
                    self.counts.malformed_objects += 1
                    continue
                yield from records


def capture_days(served: datetime) -> tuple[date, ...]:
    """The capture partitions that may hold a prediction served at ``served``."""
    return tuple(days_between(served, served + ARRIVAL_SLACK))


def _within(value: Any, start: datetime, end: datetime) -> bool:
    moment = parse_time(value)
    return moment is not None and start < moment <= end


def report_key(report_prefix: str, version: str, time: datetime, suffix: str) -> str:
    """``<report_prefix><version>/<UTC time, e.g. 20261127T111717Z>.<suffix>``."""
    return f"{report_prefix}{version}/{time.astimezone(UTC):%Y%m%dT%H%M%SZ}.{suffix}"


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


def publish_metrics(sets: Sequence[MetricSet], timestamp: datetime) -> None:
    """Metrics as CloudWatch embedded metric format (EMF): one line on stdout per :class:`MetricSet`, which the
    function's log group turns into metrics, so the monitor makes no CloudWatch call. A set holds a handful of
    metrics, far below EMF's 100 per line; each feature's drift is a line of its own (a line has one value per
    dimension)."""
    for metric_set in sets:
        # service="": Powertools would add its own lower-case ``service`` dimension (from POWERTOOLS_SERVICE_NAME)
        # to the first dimension set; the contract's is ``Service``, added here.
        emf = EphemeralMetrics(namespace=NAMESPACE, service="")
        first, *others = metric_set.dimension_sets
        for dimension in first:
            emf.add_dimension(name=dimension, value=metric_set.dimensions[dimension])
        for dimensions in others:
            emf.add_dimensions(**{dimension: metric_set.dimensions[dimension] for dimension in dimensions})
        for name, value in metric_set.values.items():
            emf.add_metric(name=name, unit=name.unit, value=value)
        # The run's time (a scheduled run's scheduled time), not the time of writing: a retried run's points land
        # where the first attempt's would have.
        emf.set_timestamp(timestamp)
        emf.flush_metrics()
