"""Firehose prefixes and dynamic partitioning, evaluated without LocalStack (driftloop_localstack.firehose_prefixes).

The integration tests (``test_firehose_partitioning.py``) prove the hook applies it inside LocalStack; these pin the
evaluation itself: Java timestamp patterns, the expression namespaces, the JQ subset, what is refused, and how a
call's records become objects.
"""

from __future__ import annotations

import base64
import gzip
import json
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

import pytest
from driftloop_localstack.firehose_prefixes import (
    EXTRACTION_ERROR_CODE,
    RANDOM_STRING_LENGTH,
    Compression,
    ConfigurationError,
    DeliveryPlan,
    ExtractionError,
    MetadataQuery,
    Record,
    Template,
    compile_timestamp,
    new_random_string,
)

from functions.common.layout import capture_hour_prefix, feedback_hour_prefix
from tests.stored_records import object_records

# The serving stack's streams (tests/infra/test_serving_stack.py asserts the construct declares these).
CAPTURE_PREFIX = "captures/model_version=!{partitionKeyFromQuery:model_version}/hour=!{timestamp:yyyy-MM-dd-HH}/"
CAPTURE_ERRORS = "captures/errors/!{firehose:error-output-type}/hour=!{timestamp:yyyy-MM-dd-HH}/"
FEEDBACK_PREFIX = "feedback/hour=!{timestamp:yyyy-MM-dd-HH}/"
FEEDBACK_ERRORS = "feedback/errors/!{firehose:error-output-type}/hour=!{timestamp:yyyy-MM-dd-HH}/"
QUERY = "{model_version:.model_version}"
MOMENT = datetime(2026, 3, 1, 15, 4, 5, 123456, tzinfo=UTC)  # a Sunday


def capture_destination(**changes: Any) -> dict[str, Any]:
    destination: dict[str, Any] = {
        "BucketARN": "arn:aws:s3:::data",
        "Prefix": CAPTURE_PREFIX,
        "ErrorOutputPrefix": CAPTURE_ERRORS,
        "DynamicPartitioningConfiguration": {"Enabled": True, "RetryOptions": {"DurationInSeconds": 300}},
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
    destination.update(changes)
    return {key: value for key, value in destination.items() if value is not None}


def plan_of(destination: dict[str, Any]) -> DeliveryPlan:
    plan = DeliveryPlan.from_destination(destination)
    assert plan is not None
    return plan


def sequence() -> Any:
    numbers = count()
    return lambda: f"r{next(numbers)}"


# -- timestamps --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("yyyy-MM-dd", "2026-03-01"),
        ("yyyy-MM-dd-HH", "2026-03-01-15"),
        ("yyyy/MM/dd/HH", "2026/03/01/15"),
        ("HH:mm:ss", "15:04:05"),
        ("yyyyMMddHHmmss", "20260301150405"),
        ("yy", "26"),
        ("y", "2026"),
        ("uuuu", "2026"),
        ("M/d/H/m/s", "3/1/15/4/5"),
        ("MMM MMMM", "Mar March"),
        ("EEE EEEE", "Sun Sunday"),
        ("D DDD", "60 060"),
        ("hh a", "03 PM"),
        ("k K", "15 3"),
        ("ss.SSS", "05.123"),
        ("yyyy'-'MM'-'dd", "2026-03-01"),
        ("'year='yyyy'/month='MM", "year=2026/month=03"),
        ("HH'h'''", "15h'"),
        ("''yyyy''", "'2026'"),
    ],
)
def test_timestamp_patterns_format_as_javas_date_time_formatter(pattern: str, expected: str) -> None:
    assert compile_timestamp(pattern)(MOMENT) == expected


def test_midnight_is_hour_zero_and_clock_hour_twelve() -> None:
    midnight = datetime(2026, 1, 1, 0, 0, tzinfo=UTC)
    assert compile_timestamp("HH hh k a")(midnight) == "00 12 24 AM"


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("YYYY", "did you mean 'y'"),
        ("ddd", "too many pattern letters"),
        ("HHH", "too many pattern letters"),
        ("Q", "not supported"),
        ("yyyy'-", "unterminated quote"),
        ("yyyy[MM]", "reserved"),
        ("", "empty"),
    ],
)
def test_a_pattern_java_would_reject_or_the_emulation_cannot_format_is_refused(pattern: str, reason: str) -> None:
    with pytest.raises(ConfigurationError, match=reason):
        compile_timestamp(pattern)


# -- prefixes ----------------------------------------------------------------------------------------------------


def test_the_capture_prefix_evaluates_to_the_layout_records_py_reads() -> None:
    prefix = Template.parse(CAPTURE_PREFIX)

    assert prefix.evaluate(MOMENT, {"model_version": "v20261127-111717-3f9a2c"}) == capture_hour_prefix(
        "captures/", "v20261127-111717-3f9a2c", "2026-03-01-15"
    )
    assert prefix.partition_keys == ("model_version",)


def test_the_feedback_prefix_evaluates_to_the_layout_records_py_reads() -> None:
    assert Template.parse(FEEDBACK_PREFIX).evaluate(MOMENT) == feedback_hour_prefix("feedback/", "2026-03-01-15")


def test_the_error_prefix_names_the_error_output_type() -> None:
    evaluated = Template.parse(CAPTURE_ERRORS, field="ErrorOutputPrefix").evaluate(
        MOMENT, error_output_type="processing-failed"
    )
    assert evaluated == "captures/errors/processing-failed/hour=2026-03-01-15/"


def test_every_timestamp_of_a_prefix_sees_the_same_instant() -> None:
    prefix = Template.parse("y=!{timestamp:yyyy}/m=!{timestamp:MM}/d=!{timestamp:dd}/h=!{timestamp:HH}/")
    assert prefix.evaluate(MOMENT) == "y=2026/m=03/d=01/h=15/"


def test_each_random_string_is_new_eleven_lowercase_letters_or_digits() -> None:
    prefix = Template.parse("a/!{firehose:random-string}/b/!{firehose:random-string}/")
    assert prefix.evaluate(MOMENT, random_string=sequence()) == "a/r0/b/r1/"
    value = new_random_string()
    assert len(value) == RANDOM_STRING_LENGTH and value.isalnum() and value == value.lower()
    assert len({new_random_string() for _ in range(20)}) == 20


def test_a_prefix_without_expressions_is_literal() -> None:
    prefix = Template.parse("plain/{not an expression}/!")
    assert not prefix.has_expressions
    assert prefix.evaluate(MOMENT) == "plain/{not an expression}/!"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("a/!{partitionKeyFromLambda:customer}/", "partitionKeyFromLambda is not supported"),
        ("a/!{unknown:value}/", "unknown namespace 'unknown'"),
        ("a/!{firehose:timestamp}/", "only random-string and error-output-type"),
        ("a/!{partitionKeyFromQuery:}/", "which partition key"),
        ("a/!{timestamp}/", "of the form !{namespace:value}"),
        ("a/!{timestamp:yyyy/", "not closed"),
        ("a/!{timestamp:YYYY}/", "did you mean 'y'"),
    ],
)
def test_an_expression_that_cannot_be_evaluated_is_refused(text: str, reason: str) -> None:
    with pytest.raises(ConfigurationError, match=reason):
        Template.parse(text)


# -- the JQ subset -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "keys"),
    [
        ("{model_version:.model_version}", {"model_version": ("model_version",)}),
        (
            " { customer : .customer , device: .type.device } ",
            {"customer": ("customer",), "device": ("type", "device")},
        ),
        ('{"customer id": ."customer-id"}', {"customer id": ("customer-id",)}),
        (
            '{first: .items[0], last: .items[-1], named: .["odd key"]}',
            {
                "first": ("items", 0),
                "last": ("items", -1),
                "named": ("odd key",),
            },
        ),
        ("{model_version}", {"model_version": ("model_version",)}),
        ("{a: .x, a: .y}", {"a": ("y",)}),
    ],
)
def test_an_object_of_simple_paths_is_understood(query: str, keys: dict[str, tuple[str | int, ...]]) -> None:
    assert dict(MetadataQuery.parse(query).keys) == keys


@pytest.mark.parametrize(
    "query",
    [
        "{model_version: .model_version | ascii_downcase}",
        '{year: .time | strftime("%Y")}',
        "{}",
        "{a: .b,}",
        "{a: .b + 1}",
        '{a: "constant"}',
        "{a: .b?}",
        "{(.k): .v}",
        "{$x}",
        "[.a]",
        ".model_version",
        "{a: .b} {c: .d}",
        '{a: ."x\\(.y)"}',
        "{a: .b.}",
        "{a: .b[c]}",
    ],
)
def test_anything_beyond_simple_paths_is_refused_with_an_explanation(query: str) -> None:
    with pytest.raises(ConfigurationError, match=r"only a JQ object of simple paths") as refused:
        MetadataQuery.parse(query)
    assert repr(query) in str(refused.value)


def test_partition_keys_are_extracted_from_a_json_record() -> None:
    query = MetadataQuery.parse("{v: .model_version, device: .type.device, first: .tags[0], n: .n, ok: .ok}")
    record = {"model_version": "v1", "type": {"device": "phone"}, "tags": ["a", "b"], "n": 3, "ok": True}

    assert query.extract(json.dumps(record).encode() + b"\n") == {
        "v": "v1",
        "device": "phone",
        "first": "a",
        "n": "3",
        "ok": "true",
    }


def test_numbers_and_structures_become_their_json_text() -> None:
    query = MetadataQuery.parse("{a: .a, b: .b, c: .c}")
    assert query.extract(b'{"a": 2.0, "b": 0.5, "c": {"x": [1, 2]}}') == {"a": "2", "b": "0.5", "c": '{"x":[1,2]}'}


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b'{"features": {}}', "'model_version' is null: the record has no .model_version"),
        (b'{"model_version": null}', "is null"),
        (b'{"model_version": ""}', "is empty"),
        (b"not json", "not one JSON document"),
        (b'{"model_version": "v1"}{"model_version": "v2"}', "not one JSON document"),
        (b"\xff\xfe", "not one JSON document"),
        (b'["v1"]', 'cannot index array with "model_version"'),
        (b'"v1"', 'cannot index string with "model_version"'),
        (b"null", "is null"),
    ],
)
def test_a_record_without_its_partition_keys_cannot_be_partitioned(data: bytes, reason: str) -> None:
    with pytest.raises(ExtractionError, match=reason):
        MetadataQuery.parse(QUERY).extract(data)


def test_a_missing_nested_path_is_null() -> None:
    with pytest.raises(ExtractionError, match=r"no \.type\.device"):
        MetadataQuery.parse("{d: .type.device}").extract(b'{"type": null}')


# -- destinations ------------------------------------------------------------------------------------------------


def test_a_destination_without_expressions_keeps_localstacks_layout() -> None:
    assert DeliveryPlan.from_destination({"BucketARN": "arn:aws:s3:::b", "Prefix": "plain/"}) is None
    assert DeliveryPlan.from_destination({"BucketARN": "arn:aws:s3:::b"}) is None


def test_the_serving_stacks_destinations_are_accepted() -> None:
    capture = plan_of(capture_destination())
    assert capture.query is not None and dict(capture.query.keys) == {"model_version": ("model_version",)}
    feedback = plan_of({"Prefix": FEEDBACK_PREFIX, "ErrorOutputPrefix": FEEDBACK_ERRORS})
    assert feedback.query is None


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"ErrorOutputPrefix": None}, "ErrorOutputPrefix cannot be null or empty"),
        ({"DynamicPartitioningConfiguration": None}, "dynamic partitioning must be enabled"),
        ({"ProcessingConfiguration": None}, "no MetadataExtraction processor"),
        ({"Prefix": "captures/!{partitionKeyFromQuery:customer}/"}, "does not define"),
        ({"Prefix": "captures/!{firehose:error-output-type}/"}, "only be used in ErrorOutputPrefix"),
        ({"ErrorOutputPrefix": "e/!{partitionKeyFromQuery:model_version}/"}, "cannot be used in ErrorOutputPrefix"),
        ({"Prefix": "captures/!{partitionKeyFromLambda:model_version}/"}, "partitionKeyFromLambda"),
        ({"CustomTimeZone": "Mars/Olympus_Mons"}, "not a time zone"),
    ],
)
def test_a_destination_aws_rejects_or_the_emulation_cannot_evaluate_is_refused(
    changes: dict[str, Any], reason: str
) -> None:
    with pytest.raises(ConfigurationError, match=reason):
        DeliveryPlan.from_destination(capture_destination(**changes))


def test_an_unsupported_query_or_engine_is_refused_even_when_the_prefix_has_no_expressions() -> None:
    processors = capture_destination()["ProcessingConfiguration"]
    processors["Processors"][0]["Parameters"][0]["ParameterValue"] = "{v: .v | tostring}"
    with pytest.raises(ConfigurationError, match="simple paths"):
        DeliveryPlan.from_destination(capture_destination(Prefix="plain/", ProcessingConfiguration=processors))
    processors["Processors"][0]["Parameters"] = [
        {"ParameterName": "MetadataExtractionQuery", "ParameterValue": QUERY},
        {"ParameterName": "JsonParsingEngine", "ParameterValue": "JQ-1.5"},
    ]
    with pytest.raises(ConfigurationError, match=r"JQ-1\.6"):
        DeliveryPlan.from_destination(capture_destination(ProcessingConfiguration=processors))


# -- delivery: one object per evaluated prefix -----------------------------------------------------------------------


def capture(version: str | None, n: int) -> bytes:
    record: dict[str, Any] = {"prediction_id": f"p{n}", "features": {"tenure": n}}
    if version is not None:
        record["model_version"] = version
    return json.dumps(record).encode() + b"\n"


def test_a_calls_records_are_grouped_by_partition_in_arrival_order_bytes_as_sent() -> None:
    sent = [capture("v1", 0), capture("v2", 1), capture("v1", 2), capture("v2", 3), capture("v1", 4)]

    batches = plan_of(capture_destination()).batches([Record(data, MOMENT) for data in sent], MOMENT)

    assert [(b.prefix, b.body, b.records, b.failed) for b in batches] == [
        ("captures/model_version=v1/hour=2026-03-01-15/", sent[0] + sent[2] + sent[4], 3, False),
        ("captures/model_version=v2/hour=2026-03-01-15/", sent[1] + sent[3], 2, False),
    ]


def test_records_without_partition_keys_go_under_the_error_prefix_as_aws_failed_records() -> None:
    good, orphan, garbage = capture("v1", 0), capture(None, 1), b"\x00not json"
    arrival = MOMENT - timedelta(seconds=2)

    batches = plan_of(capture_destination()).batches(
        [Record(orphan, arrival), Record(good, arrival), Record(garbage, arrival)], MOMENT
    )

    assert [(b.prefix, b.failed, b.records) for b in batches] == [
        ("captures/errors/processing-failed/hour=2026-03-01-15/", True, 2),
        ("captures/model_version=v1/hour=2026-03-01-15/", False, 1),
    ]
    failed = batches[0]
    assert failed.error is not None and "model_version" in failed.error
    documents = [json.loads(line) for line in failed.body.splitlines()]
    assert [base64.b64decode(d["rawData"]) for d in documents] == [orphan, garbage]
    assert documents[0] == {
        "attemptsMade": 1,
        "arrivalTimestamp": int(arrival.timestamp() * 1000),
        "errorCode": EXTRACTION_ERROR_CODE,
        "errorMessage": "partition key 'model_version' is null: the record has no .model_version",
        "attemptEndingTimestamp": int(MOMENT.timestamp() * 1000),
        "rawData": base64.b64encode(orphan).decode(),
    }
    assert failed.body.endswith(b"\n")


def test_each_record_is_dated_by_its_own_arrival_so_a_call_across_the_hour_writes_two_hours() -> None:
    before, after = datetime(2026, 3, 1, 23, 59, 59, 999000, tzinfo=UTC), datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
    feedback = plan_of({"Prefix": FEEDBACK_PREFIX, "ErrorOutputPrefix": FEEDBACK_ERRORS})

    batches = feedback.batches([Record(b"a\n", before), Record(b"b\n", after), Record(b"c\n", before)], after)

    assert [(b.prefix, b.body) for b in batches] == [
        ("feedback/hour=2026-03-01-23/", b"a\nc\n"),
        ("feedback/hour=2026-03-02-00/", b"b\n"),
    ]


def test_a_random_string_is_drawn_per_object_not_per_record() -> None:
    plan = plan_of(capture_destination(Prefix="c/!{partitionKeyFromQuery:model_version}/!{firehose:random-string}/"))
    sent = [capture("v1", 0), capture("v1", 1), capture("v2", 2)]

    batches = plan.batches([Record(data, MOMENT) for data in sent], MOMENT, random_string=sequence())

    assert [(b.prefix, b.records) for b in batches] == [("c/v1/r0/", 2), ("c/v2/r1/", 1)]


def test_a_custom_time_zone_dates_the_records_in_that_zone() -> None:
    plan = plan_of(
        {"Prefix": "d=!{timestamp:yyyy-MM-dd-HH}/", "ErrorOutputPrefix": "e/", "CustomTimeZone": "Asia/Tokyo"}
    )
    assert [b.prefix for b in plan.batches([Record(b"x", MOMENT)], MOMENT)] == ["d=2026-03-02-00/"]


def test_a_literal_error_prefix_gets_awss_default_error_layout() -> None:
    plan = plan_of(capture_destination(ErrorOutputPrefix="failures/"))
    [batch] = plan.batches([Record(b"{}", MOMENT)], MOMENT)
    assert batch.prefix == "failures/processing-failed/2026/03/01/15/"


def test_a_plan_is_cached_per_configuration() -> None:
    assert DeliveryPlan.from_destination(capture_destination()) is DeliveryPlan.from_destination(capture_destination())


# -- CompressionFormat ---------------------------------------------------------------------------------------------


def test_a_gzip_stream_writes_each_object_gzipped_and_named_gz_so_the_readers_decompress_it() -> None:
    sent = [capture("v1", 0), capture("v1", 1)]
    destination = capture_destination(CompressionFormat="GZIP")
    [batch] = plan_of(destination).batches([Record(data, MOMENT) for data in sent], MOMENT)

    compression = Compression.from_destination(destination)
    stored = compression.apply(batch.body)

    assert compression.extension == ".gz"
    assert stored[:2] == b"\x1f\x8b" and gzip.decompress(stored) == b"".join(sent)
    assert object_records(stored) == [json.loads(data) for data in sent]


def test_an_uncompressed_stream_writes_the_bytes_as_sent_with_no_extension() -> None:
    for destination in (capture_destination(), capture_destination(CompressionFormat="UNCOMPRESSED")):
        compression = Compression.from_destination(destination)
        assert (compression.extension, compression.apply(b"a\n"), compression.compresses) == ("", b"a\n", False)


def test_a_file_extension_replaces_the_compressions_own() -> None:
    destination = capture_destination(CompressionFormat="GZIP", FileExtension=".json.gz")
    assert Compression.from_destination(destination).extension == ".json.gz"


@pytest.mark.parametrize("kind", ["ZIP", "Snappy", "HADOOP_SNAPPY"])
def test_a_compression_the_emulation_cannot_apply_is_refused(kind: str) -> None:
    with pytest.raises(ConfigurationError, match=f"CompressionFormat '{kind}' is not emulated"):
        Compression.from_destination(capture_destination(CompressionFormat=kind))
