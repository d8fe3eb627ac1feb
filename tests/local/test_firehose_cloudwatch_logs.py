"""Firehose's CloudWatch Logs processors as the local cloud applies them
(driftloop_localstack.firehose_cloudwatch_logs), followed by the capture stream's dynamic partitioning: the gzip
envelope a log subscription puts becomes the capture records, one per line, under their model version's partition.
"""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime

import pytest
from driftloop_localstack.firehose_cloudwatch_logs import (
    APPEND_DELIMITER,
    DECOMPRESSION,
    MESSAGE_EXTRACTION,
    ProcessingFailed,
    check,
    process,
)
from driftloop_localstack.firehose_prefixes import DeliveryPlan, Record

from functions.common.layout import CAPTURE_PARTITION_KEYS, firehose_capture_prefix, firehose_error_prefix
from functions.common.records import PredictionRecord, new_prediction_ids, parse_json_lines
from functions.inference.capture import capture_line
from tests.prediction_ids import ID_KEY

QUERY = "{" + ",".join(f"{key}:{path}" for key, path in CAPTURE_PARTITION_KEYS.items()) + "}"
# The capture stream's processors, in the order infra/constructs/capture_streams.py lists them.
PIPELINE = (DECOMPRESSION, MESSAGE_EXTRACTION, "MetadataExtraction", APPEND_DELIMITER)


def envelope(messages: list[str], message_type: str = "DATA_MESSAGE") -> bytes:
    """What CloudWatch Logs puts into the stream for one batch of matching events."""
    document = {
        "messageType": message_type,
        "owner": "000000000000",
        "logGroup": "/aws/lambda/inference",
        "logStream": "2026/01/01/[$LATEST]abc",
        "subscriptionFilters": ["driftloop-local-captures"],
        "logEvents": [{"id": str(i), "timestamp": 1767225600000, "message": m} for i, m in enumerate(messages)],
    }
    return gzip.compress(json.dumps(document).encode())


def run(records: list[bytes]) -> list[bytes]:
    for kind in PIPELINE:
        if kind != "MetadataExtraction":  # evaluated at delivery
            records = [piece for data in records for piece in process(kind, data)]
    return records


def prediction(version: str) -> PredictionRecord:
    [pid] = new_prediction_ids(1, datetime.now(UTC), ID_KEY)
    return PredictionRecord(pid, "2026-01-01T00:00:00.000+00:00", version, {"x": 1.5}, value=2.0)


def test_a_subscription_batch_becomes_its_capture_records_one_per_line_in_their_version_partitions() -> None:
    captured = [prediction("v1"), prediction("v2"), prediction("v1")]
    # Lambda's log events keep the line's newline, as LocalStack's log handler and AWS write them.
    batch = envelope([capture_line(r).decode() for r in captured])
    destination = {
        "Prefix": firehose_capture_prefix("captures/"),
        "ErrorOutputPrefix": firehose_error_prefix("captures/"),
        "DynamicPartitioningConfiguration": {"Enabled": True},
        "ProcessingConfiguration": {
            "Enabled": True,
            "Processors": [
                {
                    "Type": "MetadataExtraction",
                    "Parameters": [
                        {"ParameterName": "MetadataExtractionQuery", "ParameterValue": QUERY},
                        {"ParameterName": "JsonParsingEngine", "ParameterValue": "JQ-1.6"},
                    ],
                }
            ],
        },
    }
    plan = DeliveryPlan.from_destination(destination)
    assert plan is not None
    arrival = datetime(2026, 1, 1, 13, 5, tzinfo=UTC)

    records = run([batch])
    batches = plan.batches([Record(data, arrival) for data in records], arrival)

    assert len(records) == 3 and all(data.endswith(b"\n") for data in records)
    by_prefix = {b.prefix: [PredictionRecord.from_dict(line) for line in parse_json_lines(b.body)] for b in batches}
    assert not any(b.failed for b in batches)
    assert {prefix.split("model_version=")[1].split("/")[0] for prefix in by_prefix} == {"v1", "v2"}
    v1 = next(records for prefix, records in by_prefix.items() if "model_version=v1/" in prefix)
    assert v1 == [captured[0], captured[2]]


def test_the_control_message_cloudwatch_logs_sends_at_creation_yields_no_record() -> None:
    assert run([envelope(["CWL CONTROL MESSAGE: Checking health of destination Firehose."], "CONTROL_MESSAGE")]) == []


def test_a_record_that_is_not_gzip_fails_decompression_as_on_aws() -> None:
    plain = json.dumps({"messageType": "DATA_MESSAGE", "logEvents": []}).encode()
    with pytest.raises(ProcessingFailed, match="decompression-failed"):
        process(DECOMPRESSION, plain)


def test_message_extraction_refuses_what_is_not_an_envelope() -> None:
    with pytest.raises(ProcessingFailed, match="not a CloudWatch Logs envelope"):
        process(MESSAGE_EXTRACTION, b'{"prediction_id": "x"}')


def test_processor_settings_aws_refuses_or_the_emulation_cannot_apply_are_refused() -> None:
    check(DECOMPRESSION, {"CompressionFormat": "GZIP"})
    check(MESSAGE_EXTRACTION, {"DataMessageExtraction": "true"})
    with pytest.raises(ValueError, match="not GZIP"):
        check(DECOMPRESSION, {"CompressionFormat": "ZIP"})
    with pytest.raises(ValueError, match="DataMessageExtraction=true"):
        check(MESSAGE_EXTRACTION, {"DataMessageExtraction": "false"})
