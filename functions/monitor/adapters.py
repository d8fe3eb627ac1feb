"""The monitor's AWS adapters: captured predictions and feedback in S3, reports to S3, metrics to CloudWatch (EMF).

A window's records are read by the layout of :mod:`functions.common.layout`: a window touches one partition per UTC
hour, and only objects written since the window began can hold records of it (Firehose writes an object after the
records in it arrived), so older objects of the first hour are skipped by their ``LastModified``. Partitions are
named by the hour a record arrived, so each read also looks at the hour
:data:`~functions.common.layout.ARRIVAL_SLACK` after the window; records are then selected by their own time.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import EphemeralMetrics

from functions.common.labelled import CaptureReader
from functions.common.layout import ARRIVAL_SLACK, hour_values, report_key
from functions.common.metrics import NAMESPACE
from functions.common.records import FeedbackRecord, PredictionRecord
from functions.common.text_values import parse_time
from functions.monitor.metrics import MetricSet

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


class CaptureStore(CaptureReader):
    """The captures and feedback of a monitoring window."""

    def predictions(self, version: str, start: datetime, end: datetime) -> list[PredictionRecord]:
        """The predictions ``version`` served in ``start < time <= end``."""
        hours = hour_values(start, end + ARRIVAL_SLACK)
        return [record for record in self.prediction_records(version, hours, start) if _within(record.time, start, end)]

    def feedback(self, start: datetime, end: datetime) -> list[FeedbackRecord]:
        """The feedback received in ``start < time <= end``."""
        hours = hour_values(start, end + ARRIVAL_SLACK)
        return [record for record in self.feedback_records(hours, start) if _within(record.time, start, end)]


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
