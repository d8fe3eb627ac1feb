"""The monitor's AWS adapters: reports to S3, metrics to CloudWatch (EMF). Captures and feedback are read by
Athena (:mod:`functions.common.athena`)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import EphemeralMetrics

from functions.common.layout import report_key
from functions.common.metrics import NAMESPACE
from functions.monitor.metrics import MetricSet

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


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
