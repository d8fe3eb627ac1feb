"""Reading captured predictions and feedback from the data bucket (moto): the hours asked only, gzip or plain."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from functions.common.layout import capture_hour_prefix, feedback_hour_prefix, hour_value
from functions.common.records import FeedbackRecord, PredictionRecord, new_prediction_ids, to_json_lines
from tests.plugins.aws import DATA_BUCKET
from tests.prediction_ids import ID_KEY
from tests.stored_records import CaptureReader

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def prediction(prediction_id: str, model_version: str = "v1", **answer: Any) -> PredictionRecord:
    return PredictionRecord(prediction_id, "2026-11-27T11:00:00Z", model_version, {}, **answer)


def feedback(prediction_id: str, time: str = "2026-11-27T11:30:00Z", **truth: Any) -> FeedbackRecord:
    return FeedbackRecord(prediction_id, time, **truth)


def put(s3: S3Client, key: str, body: bytes) -> None:
    s3.put_object(Bucket=DATA_BUCKET, Key=key, Body=body)


def reader(s3: S3Client) -> CaptureReader:
    return CaptureReader(s3, DATA_BUCKET, "captures/", "feedback/")


def test_only_the_partitions_of_the_version_and_hours_asked_are_read(s3: S3Client) -> None:
    served = NOW - timedelta(days=3)
    [wanted, other] = new_prediction_ids(2, served, ID_KEY)
    hour, next_hour = hour_value(served), hour_value(served + timedelta(hours=1))
    put(s3, capture_hour_prefix("captures/", "v1", hour) + "a", to_json_lines([prediction(wanted, label="yes")]))
    put(s3, capture_hour_prefix("captures/", "v1", next_hour) + "a", to_json_lines([prediction(other, label="no")]))
    put(s3, capture_hour_prefix("captures/", "v2", hour) + "a", gzip.compress(b"{}\n"))
    store = reader(s3)

    found = list(store.prediction_records("v1", [hour]))

    assert [record.prediction_id for record in found] == [wanted]
    assert store.counts.objects == 1  # v1's object of that hour: not v2's, not another hour's


def test_gzipped_objects_are_read_and_malformed_ones_counted(s3: S3Client) -> None:
    [pid] = new_prediction_ids(1, NOW, ID_KEY)
    prefix = feedback_hour_prefix("feedback/", hour_value(NOW))
    put(s3, prefix + "a.gz", gzip.compress(to_json_lines([feedback(pid, label="yes")])))
    put(s3, prefix + "b", b'{"prediction_id": ["not", "an", "id"], "time": "2026-11-27T11:00:00Z"}\n{"time": 1}\n')
    put(s3, prefix + "c", b"not json")
    store = reader(s3)

    assert [record.prediction_id for record in store.feedback_records([hour_value(NOW)])] == [pid]
    assert (store.counts.objects, store.counts.malformed_objects, store.counts.malformed_records) == (3, 1, 2)
