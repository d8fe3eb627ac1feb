"""The Kinesis Data Firehose sinks against moto: captured predictions and feedback land in the data bucket.

moto delivers each PutRecordBatch call as one S3 object under the stream's prefix (no buffering), so the objects
show how the sink chunked its records.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import orjson
import pandas as pd
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
from tests.inference.conftest import MakeApi, instances
from tests.plugins.aws import DATA_BUCKET

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

CAPTURE_STREAM = "driftloop-test-captures"
FEEDBACK_STREAM = "driftloop-test-feedback"
CAPTURE_PREFIX = "captures/"
FEEDBACK_PREFIX = "feedback/"


@pytest.fixture
def firehose(s3: S3Client) -> S3Client:
    """Two DirectPut streams into the data bucket (moto writes the prefix as given: no partitioning)."""
    client = boto3.client("firehose", region_name="us-east-1")
    for name, prefix in ((CAPTURE_STREAM, CAPTURE_PREFIX), (FEEDBACK_STREAM, FEEDBACK_PREFIX)):
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
        "capture": "firehose",
        "capture_stream": CAPTURE_STREAM,
        "feedback_stream": FEEDBACK_STREAM,
        "max_instances": 2000,
        "max_body_bytes": 6 * 1024 * 1024,
    }
    return InferenceSettings(**(options | settings))


def served(reply: Any) -> list[dict[str, Any]]:
    assert reply.status == 200, reply.body
    predictions: list[dict[str, Any]] = reply.json["predictions"]
    return predictions


def test_every_prediction_lands_in_the_bucket_as_a_prediction_record_at_sample_rate_1(
    firehose: S3Client, make_api: MakeApi, trained_bundle: Path, rows: list[dict[str, Any]]
) -> None:
    api = make_api(firehose_settings(trained_bundle))

    reply = api.predict(rows)

    [objects] = delivered(firehose, CAPTURE_PREFIX)
    records = [PredictionRecord.from_dict(line) for line in objects]
    predictions = served(reply)
    assert [r.prediction_id for r in records] == [p["prediction_id"] for p in predictions]
    assert [r.features for r in records] == rows
    assert [(r.label, r.probabilities) for r in records] == [(p["label"], p["probabilities"]) for p in predictions]
    assert {r.model_version for r in records} == {reply.json["model_version"]}
    assert {r.request_id for r in records} == {reply.event["requestContext"]["requestId"]}
    [request] = api.log_messages("request")
    assert request["CaptureFailures"] == 0


def test_nothing_is_sent_at_sample_rate_0(
    firehose: S3Client, make_api: MakeApi, trained_bundle: Path, rows: list[dict[str, Any]]
) -> None:
    api = make_api(firehose_settings(trained_bundle, capture_sample_rate=0.0))

    served(api.predict(rows))

    assert delivered(firehose, CAPTURE_PREFIX) == []


def test_at_sample_rate_half_each_prediction_is_drawn_independently_and_reproducibly_with_a_seed(
    firehose: S3Client, make_api: MakeApi, trained_bundle: Path, churn_data: pd.DataFrame
) -> None:
    rows = instances(churn_data, 400)
    picks = []
    for _ in range(2):
        api = make_api(firehose_settings(trained_bundle, capture_sample_rate=0.5), rng=random.Random(42))
        positions = {p["prediction_id"]: index for index, p in enumerate(served(api.predict(rows)))}
        [objects] = delivered(firehose, CAPTURE_PREFIX, remove=True)
        picks.append([positions[line["prediction_id"]] for line in objects])

    first, second = picks
    assert first == second, "the same seed must pick the same predictions"
    assert 150 <= len(first) <= 250
    assert first == sorted(first) and len(set(first)) == len(first)
    expected = random.Random(42)
    assert first == [index for index in range(len(rows)) if expected.random() < 0.5]


def test_more_than_500_records_are_sent_in_chunks_of_at_most_500(
    firehose: S3Client, make_api: MakeApi, trained_bundle: Path, churn_data: pd.DataFrame
) -> None:
    api = make_api(firehose_settings(trained_bundle))
    rows = instances(churn_data, 1201)

    predictions = served(api.predict(rows))

    ids = [p["prediction_id"] for p in predictions]
    objects = sorted(delivered(firehose, CAPTURE_PREFIX), key=lambda lines: ids.index(lines[0]["prediction_id"]))
    assert [len(lines) for lines in objects] == [500, 500, 201]
    assert [line["prediction_id"] for lines in objects for line in lines] == ids


def test_chunks_stay_within_4_mib_per_call() -> None:
    payloads = [b"x" * (900 * 1024)] * 10

    sizes = [[len(data) for data in chunk] for chunk in chunks(payloads)]

    assert [len(chunk) for chunk in sizes] == [4, 4, 2]
    assert all(sum(chunk) <= MAX_BATCH_BYTES for chunk in sizes)


def test_a_failing_firehose_call_never_fails_the_prediction_and_is_counted(
    firehose: S3Client, make_api: MakeApi, trained_bundle: Path, rows: list[dict[str, Any]]
) -> None:
    api = make_api(firehose_settings(trained_bundle, capture_stream="no-such-stream"))

    reply = api.predict(rows)

    assert len(served(reply)) == len(rows)
    [failure] = api.log_messages("capture failed; the predictions were served but not captured")
    assert failure["lost"] == len(rows)
    assert "ResourceNotFoundException" in failure["exception"]
    [request] = api.log_messages("request")
    assert (request["status"], request["CaptureFailures"]) == (200, len(rows))


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


def test_records_firehose_rejects_are_counted_as_capture_failures(
    make_api: MakeApi, trained_bundle: Path, rows: list[dict[str, Any]]
) -> None:
    responses = [{"RecordId": "a"}, {"ErrorCode": "ServiceUnavailableException", "ErrorMessage": "slow down"}]
    responses += [{"RecordId": "b"}, {"ErrorCode": "ServiceUnavailableException"}, {"ErrorCode": "InternalFailure"}]
    fake = FakeFirehose({"FailedPutCount": 3, "RequestResponses": responses})
    api = make_api(InferenceSettings(model_dir=trained_bundle), sink=FirehoseSink("captures", client=fake))

    reply = api.predict(rows)

    assert len(served(reply)) == 5
    [failure] = api.log_messages("capture failed; the predictions were served but not captured")
    assert failure["lost"] == 3
    assert "InternalFailure x1, ServiceUnavailableException x2" in failure["exception"]
    [request] = api.log_messages("request")
    assert request["CaptureFailures"] == 3


def test_a_call_that_fails_after_earlier_chunks_counts_only_the_unsent_records() -> None:
    fake = FakeFirehose(accepted(500), ConnectionError("connection reset"))
    records = [_record(pid) for pid in new_prediction_ids(1200, datetime.now(UTC))]

    with pytest.raises(DeliveryFailed) as failed:
        FirehoseSink("captures", client=fake).write(records)

    assert failed.value.lost == 700
    assert len(fake.calls) == 2, "no call after the one that failed"
    assert "ConnectionError: connection reset" in str(failed.value)


def test_a_record_over_the_firehose_limit_is_not_sent_and_counted_as_lost() -> None:
    fake = FakeFirehose(accepted(1))
    small, large = (_record(pid) for pid in new_prediction_ids(2, datetime.now(UTC)))
    large = PredictionRecord(large.prediction_id, large.time, "v1", {"text": "x" * MAX_RECORD_BYTES}, label="0")

    with pytest.raises(DeliveryFailed, match="RecordTooLarge x1") as failed:
        FirehoseSink("captures", client=fake).write([small, large])

    assert failed.value.lost == 1
    assert [[entry["Data"] for entry in call] for call in fake.calls] == [[encode(small)]]


def test_each_record_is_one_json_line_as_the_records_contract_writes_it() -> None:
    [pid] = new_prediction_ids(1, datetime.now(UTC))
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


def test_the_client_is_created_lazily_with_tight_timeouts_and_a_single_attempt_for_captures(aws: None) -> None:
    sink = FirehoseSink("captures")
    assert sink._client is None

    config = sink.client.meta.config  # type: ignore[attr-defined]

    assert (config.connect_timeout, config.read_timeout) == (0.5, 1.0)
    assert config.retries["total_max_attempts"] == 1
    feedback = feedback_sink("feedback")
    assert isinstance(feedback, FirehoseSink)
    assert feedback.client.meta.config.retries["total_max_attempts"] == 3  # type: ignore[attr-defined]


def test_the_sinks_follow_the_settings() -> None:
    assert isinstance(capture_sink("firehose", "captures"), FirehoseSink)
    assert type(capture_sink("log", None)).__name__ == "LogSink"
    assert type(capture_sink("none", None)).__name__ == "NoCapture"
    assert type(feedback_sink(None)).__name__ == "LogSink"
    with pytest.raises(ValueError, match="needs a delivery stream name"):
        capture_sink("firehose", None)


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
    [pid] = new_prediction_ids(1, datetime.now(UTC))

    reply = api.feedback({"prediction_id": pid, "label": "1"})

    assert reply.status == 503
    assert reply.json["error"] == "feedback_unavailable"
    assert delivered(firehose, FEEDBACK_PREFIX) == []


def test_the_app_creates_the_firehose_clients_at_start(
    firehose: S3Client, make_api: MakeApi, trained_bundle: Path, rows: list[dict[str, Any]]
) -> None:
    capture, feedback = FirehoseSink(CAPTURE_STREAM), FirehoseSink(FEEDBACK_STREAM)

    api = make_api(InferenceSettings(model_dir=trained_bundle), sink=capture, feedback=feedback)

    assert capture._client is not None and feedback._client is not None
    served(api.predict(rows))
    assert len(delivered(firehose, CAPTURE_PREFIX)) == 1


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
    records = [_record(pid) for pid in new_prediction_ids(3, datetime.now(UTC))]

    FirehoseSink(CAPTURE_STREAM).write(records)

    [objects] = delivered(firehose, CAPTURE_PREFIX)
    assert [PredictionRecord.from_dict(line) for line in objects] == records
    raw = firehose.list_objects_v2(Bucket=DATA_BUCKET, Prefix=CAPTURE_PREFIX)["Contents"][0]["Key"]
    body = firehose.get_object(Bucket=DATA_BUCKET, Key=raw)["Body"].read()
    assert body == b"".join(orjson.dumps(r, option=orjson.OPT_APPEND_NEWLINE) for r in records)
