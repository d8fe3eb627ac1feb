"""The Kinesis Data Firehose sink against moto: feedback lands in the data bucket (captures go through the log:
``test_capture_log.py``).

moto delivers each PutRecordBatch call as one S3 object under the stream's prefix (no buffering), so the objects
show how the sink chunked its records.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import orjson
import pytest

from functions.common.records import (
    FeedbackRecord,
    PredictionRecord,
    new_prediction_ids,
    parse_json_lines,
    to_json_lines,
)
from functions.inference.capture import (
    MAX_BATCH_BYTES,
    MAX_RECORD_BYTES,
    DeliveryFailed,
    FirehoseSink,
    capture_sink,
    chunks,
    encode,
    feedback_sink,
)
from functions.inference.settings import InferenceSettings
from tests.inference.conftest import MakeApi
from tests.plugins.aws import DATA_BUCKET
from tests.prediction_ids import ID_KEY

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

FEEDBACK_STREAM = "driftloop-test-feedback"
FEEDBACK_PREFIX = "feedback/"


@pytest.fixture
def firehose(s3: S3Client) -> S3Client:
    """The feedback DirectPut stream into the data bucket (moto writes the prefix as given: no partitioning)."""
    client = boto3.client("firehose", region_name="us-east-1")
    for name, prefix in ((FEEDBACK_STREAM, FEEDBACK_PREFIX),):
        client.create_delivery_stream(
            DeliveryStreamName=name,
            DeliveryStreamType="DirectPut",
            ExtendedS3DestinationConfiguration={
                "RoleARN": "arn:aws:iam::123456789012:role/driftloop-test-delivery",
                "BucketARN": f"arn:aws:s3:::{DATA_BUCKET}",
                "Prefix": prefix,
            },
        )
    return s3


def delivered(s3: S3Client, prefix: str, *, remove: bool = False) -> list[list[dict[str, Any]]]:
    """The records of each object under ``prefix``, one list per object (per PutRecordBatch call), in no
    particular order; ``remove``: delete the objects once read."""
    objects = []
    for item in s3.list_objects_v2(Bucket=DATA_BUCKET, Prefix=prefix).get("Contents", []):
        objects.append(list(parse_json_lines(s3.get_object(Bucket=DATA_BUCKET, Key=item["Key"])["Body"].read())))
        if remove:
            s3.delete_object(Bucket=DATA_BUCKET, Key=item["Key"])
    return objects


def firehose_settings(bundle: Path, **settings: Any) -> InferenceSettings:
    options: dict[str, Any] = {
        "model_dir": bundle,
        "capture": "log",
        "feedback_stream": FEEDBACK_STREAM,
        "max_instances": 2000,
        "max_body_bytes": 6 * 1024 * 1024,
    }
    return InferenceSettings(**(options | settings))


def served(reply: Any) -> list[dict[str, Any]]:
    assert reply.status == 200, reply.body
    predictions: list[dict[str, Any]] = reply.json["predictions"]
    return predictions


def test_chunks_stay_within_4_mib_per_call() -> None:
    payloads = [b"x" * (900 * 1024)] * 10

    sizes = [[len(data) for data in chunk] for chunk in chunks(payloads)]

    assert [len(chunk) for chunk in sizes] == [4, 4, 2]
    assert all(sum(chunk) <= MAX_BATCH_BYTES for chunk in sizes)


class FakeFirehose:
    """Answers PutRecordBatch with the given responses (or exceptions), one per call, and records the calls."""

    def __init__(self, *responses: Mapping[str, Any] | Exception) -> None:
        self.responses = list(responses)
        self.calls: list[list[dict[str, bytes]]] = []

    def put_record_batch(self, *, DeliveryStreamName: str, Records: list[dict[str, bytes]]) -> Mapping[str, Any]:  # noqa: N803
        self.calls.append(Records)
        response = self.responses.pop(0)
        if isinstance(response, Exception):
            raise response
        return response


def accepted(count: int) -> dict[str, Any]:
    return {"FailedPutCount": 0, "RequestResponses": [{"RecordId": str(i)} for i in range(count)]}


def test_a_call_that_fails_after_earlier_chunks_counts_only_the_unsent_records() -> None:
    fake = FakeFirehose(accepted(500), ConnectionError("connection reset"))
    records = [_record(pid) for pid in new_prediction_ids(1200, datetime.now(UTC), ID_KEY)]

    with pytest.raises(DeliveryFailed) as failed:
        FirehoseSink("feedback", client=fake).write(records)

    assert failed.value.lost == 700
    assert len(fake.calls) == 2, "no call after the one that failed"
    assert "ConnectionError: connection reset" in str(failed.value)


def test_a_record_over_the_firehose_limit_is_not_sent_and_counted_as_lost() -> None:
    fake = FakeFirehose(accepted(1))
    small, large = (_record(pid) for pid in new_prediction_ids(2, datetime.now(UTC), ID_KEY))
    large = PredictionRecord(large.prediction_id, large.time, "v1", {"text": "x" * MAX_RECORD_BYTES}, label="0")

    with pytest.raises(DeliveryFailed, match="RecordTooLarge x1") as failed:
        FirehoseSink("feedback", client=fake).write([small, large])

    assert failed.value.lost == 1
    assert [[entry["Data"] for entry in call] for call in fake.calls] == [[encode(small)]]


def test_each_record_is_one_json_line_as_the_records_contract_writes_it() -> None:
    [pid] = new_prediction_ids(1, datetime.now(UTC), ID_KEY)
    record = _record(pid)
    feedback = FeedbackRecord(pid, record.time, label="1")
    unicode = PredictionRecord(pid, record.time, "v1", {"city": "Zürich", "n": None}, value=1.5)
    huge = PredictionRecord(pid, record.time, "v1", {"n": 10**30}, value=2.0)

    assert encode(record) == to_json_lines([record])
    assert encode(feedback) == to_json_lines([feedback])
    for other in (unicode, huge):
        data = encode(other)
        assert data.endswith(b"\n") and data.count(b"\n") == 1
        assert list(parse_json_lines(data)) == list(parse_json_lines(to_json_lines([other])))


def test_the_feedback_client_is_created_lazily_with_tight_timeouts_and_three_attempts(aws: None) -> None:
    feedback = feedback_sink("feedback")
    assert isinstance(feedback, FirehoseSink)
    assert feedback._client is None

    config = feedback.client.meta.config  # type: ignore[attr-defined]

    assert (config.connect_timeout, config.read_timeout) == (0.5, 1.0)
    assert config.retries["total_max_attempts"] == 3


def test_the_sinks_follow_the_settings() -> None:
    assert type(capture_sink("log")).__name__ == "CaptureLog"
    assert type(capture_sink("none")).__name__ == "NoCapture"
    assert type(feedback_sink(None)).__name__ == "LogSink"


def test_feedback_lands_in_the_bucket_as_feedback_records(
    firehose: S3Client, make_api: MakeApi, trained_bundle: Path, rows: list[dict[str, Any]]
) -> None:
    api = make_api(firehose_settings(trained_bundle))
    ids = [p["prediction_id"] for p in served(api.predict(rows[:2]))]

    reply = api.feedback(
        {"feedback": [{"prediction_id": ids[0], "label": "1"}, {"prediction_id": ids[1], "label": "0"}]}
    )

    assert reply.status == 202, reply.body
    [objects] = delivered(firehose, FEEDBACK_PREFIX)
    records = [FeedbackRecord.from_dict(line) for line in objects]
    assert [(r.prediction_id, r.label) for r in records] == [(ids[0], "1"), (ids[1], "0")]


def test_a_firehose_failure_for_feedback_returns_503(
    firehose: S3Client, make_api: MakeApi, trained_bundle: Path
) -> None:
    api = make_api(firehose_settings(trained_bundle, feedback_stream="no-such-stream"))
    [pid] = new_prediction_ids(1, datetime.now(UTC), ID_KEY)

    reply = api.feedback({"prediction_id": pid, "label": "1"})

    assert reply.status == 503
    assert reply.json["error"] == "feedback_unavailable"
    assert delivered(firehose, FEEDBACK_PREFIX) == []


def test_the_app_creates_the_feedback_client_at_start(
    firehose: S3Client, make_api: MakeApi, trained_bundle: Path, rows: list[dict[str, Any]]
) -> None:
    feedback = FirehoseSink(FEEDBACK_STREAM)

    api = make_api(InferenceSettings(model_dir=trained_bundle), feedback=feedback)

    assert feedback._client is not None
    [pid] = [p["prediction_id"] for p in served(api.predict(rows[:1]))]
    assert api.feedback({"prediction_id": pid, "label": "1"}).status == 202
    assert len(delivered(firehose, FEEDBACK_PREFIX)) == 1


def _record(prediction_id: str) -> PredictionRecord:
    return PredictionRecord(
        prediction_id,
        datetime.now(UTC).isoformat(timespec="milliseconds"),
        "v20260101-000000-abcdef",
        {"tenure_months": 3, "contract": "month-to-month", "age": None},
        label="1",
        probabilities={"0": 0.25, "1": 0.75},
        request_id="req-1",
    )


def test_json_lines_are_what_the_sink_sends(firehose: S3Client) -> None:
    records = [
        FeedbackRecord(pid, "2026-01-01T00:00:00.000+00:00", label="1")
        for pid in new_prediction_ids(3, datetime.now(UTC), ID_KEY)
    ]

    FirehoseSink(FEEDBACK_STREAM).write(records)

    [objects] = delivered(firehose, FEEDBACK_PREFIX)
    assert [FeedbackRecord.from_dict(line) for line in objects] == records
    raw = firehose.list_objects_v2(Bucket=DATA_BUCKET, Prefix=FEEDBACK_PREFIX)["Contents"][0]["Key"]
    body = firehose.get_object(Bucket=DATA_BUCKET, Key=raw)["Body"].read()
    assert body == b"".join(orjson.dumps(r, option=orjson.OPT_APPEND_NEWLINE) for r in records)
