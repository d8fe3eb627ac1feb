"""Captured predictions and feedback as stored in S3 (plain or gzipped JSON lines, in the layout of
:mod:`functions.common.layout`), read record by record: for the tests that look at what Firehose delivered. The
deployed loop never reads records itself; Athena does (:mod:`functions.common.labelled_sql`).
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from functions.common.layout import capture_hour_prefix, feedback_hour_prefix
from functions.common.records import FeedbackRecord, PredictionRecord, parse_json_lines

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_GZIP_MAGIC = b"\x1f\x8b"


def object_records(body: bytes) -> list[dict[str, Any]]:
    """The records of one capture or feedback object: JSON lines, gzip-compressed (as Firehose writes them) or
    plain. Raises ValueError, OSError or EOFError for an object that is neither."""
    return list(parse_json_lines(gzip.decompress(body) if body[:2] == _GZIP_MAGIC else body))


@dataclass
class ReadCounts:
    objects: int = 0
    # Objects that are not JSON lines, and records that are not records of the expected kind.
    malformed_objects: int = 0
    malformed_records: int = 0


class CaptureReader:
    """Captured predictions and feedback in ``bucket``, under the prefixes the deployment configured."""

    def __init__(self, s3: S3Client, bucket: str, capture_prefix: str, feedback_prefix: str) -> None:
        self._s3 = s3
        self.bucket = bucket
        self.capture_prefix = capture_prefix
        self.feedback_prefix = feedback_prefix
        self.counts = ReadCounts()

    def feedback_records(
        self, hours: Iterable[str], modified_since: datetime | None = None
    ) -> Iterator[FeedbackRecord]:
        """The feedback that arrived in ``hours``, in objects written since ``modified_since`` (None: all)."""
        for hour in hours:
            for data in self._records(feedback_hour_prefix(self.feedback_prefix, hour), modified_since):
                try:
                    record = FeedbackRecord.from_dict(data)
                except TypeError:
                    record = None
                if record is None or not isinstance(record.prediction_id, str) or not isinstance(record.time, str):
                    self.counts.malformed_records += 1
                    continue
                yield record

    def prediction_records(
        self, version: str, hours: Iterable[str], modified_since: datetime | None = None
    ) -> Iterator[PredictionRecord]:
        """The predictions of ``version`` that arrived in ``hours``, in objects written since ``modified_since``."""
        for hour in hours:
            for data in self._records(capture_hour_prefix(self.capture_prefix, version, hour), modified_since):
                record = self._prediction(data)
                if record is not None and record.model_version == version:
                    yield record

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
                    records = object_records(body)
                except (ValueError, OSError, EOFError):
                    self.counts.malformed_objects += 1
                    continue
                yield from records
