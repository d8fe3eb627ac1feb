"""The data bucket's layout: what Firehose's prefix expressions evaluate to is what the readers list."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from functions.common import layout

HOUR = "2026-03-01-17"


def evaluate(expression: str, model_version: str, hour: str, error_type: str = "processing-failed") -> str:
    """A prefix expression as Firehose evaluates it for a record of ``model_version`` arriving in ``hour``."""
    return (
        expression.replace(layout.FIREHOSE_MODEL_VERSION, model_version)
        .replace(layout.FIREHOSE_ARRIVAL_HOUR, hour)
        .replace(layout.FIREHOSE_ERROR_TYPE, error_type)
    )


def test_the_capture_stream_writes_the_hour_partition_the_readers_list() -> None:
    written = evaluate(layout.firehose_capture_prefix("captures/"), "v20261127-111717-3f9a2c", HOUR)

    assert written == "captures/model_version=v20261127-111717-3f9a2c/hour=2026-03-01-17/"
    assert written == layout.capture_hour_prefix("captures/", "v20261127-111717-3f9a2c", HOUR)
    assert layout.capture_model_version("captures/", written.rsplit("hour=", 1)[0]) == "v20261127-111717-3f9a2c"


def test_firehose_renders_the_arrival_hour_in_the_format_partition_projection_reads() -> None:
    assert layout.FIREHOSE_ARRIVAL_HOUR == "!{timestamp:yyyy-MM-dd-HH}"
    assert layout.HOUR_FORMAT == "yyyy-MM-dd-HH"
    assert layout.hour_value(datetime(2026, 3, 1, 17, 59, 59, tzinfo=UTC)) == HOUR


def test_the_capture_partition_key_is_the_one_the_prefix_expression_names() -> None:
    assert list(layout.CAPTURE_PARTITION_KEYS) == [layout.MODEL_VERSION_PARTITION]
    assert f"partitionKeyFromQuery:{layout.MODEL_VERSION_PARTITION}" in layout.FIREHOSE_MODEL_VERSION


def test_the_feedback_stream_writes_the_hour_partition_the_readers_list() -> None:
    written = evaluate(layout.firehose_feedback_prefix("feedback/"), "", HOUR)

    assert written == "feedback/hour=2026-03-01-17/" == layout.feedback_hour_prefix("feedback/", HOUR)


def test_what_firehose_fails_to_deliver_lies_below_the_streams_prefix_but_in_no_partition_the_readers_list() -> None:
    failed = {prefix: evaluate(layout.firehose_error_prefix(prefix), "", HOUR) for prefix in ("captures/", "feedback/")}

    assert failed == {
        "captures/": "captures/errors/processing-failed/hour=2026-03-01-17/",
        "feedback/": "feedback/errors/processing-failed/hour=2026-03-01-17/",
    }
    assert layout.capture_model_version("captures/", "captures/errors/") is None
    assert not failed["feedback/"].startswith(layout.feedback_hour_prefix("feedback/", HOUR))


def test_only_a_model_version_folder_names_a_model_version() -> None:
    assert layout.capture_model_version("captures/", "captures/model_version=v1/") == "v1"
    for folder in ("captures/model_version=/", "captures/model_version=v1", "other/model_version=v1/"):
        assert layout.capture_model_version("captures/", folder) is None


def test_a_window_touches_every_utc_hour_partition() -> None:
    start, end = datetime(2026, 3, 1, 22, 30, tzinfo=UTC), datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
    assert layout.hour_values(start, end) == ["2026-03-01-22", "2026-03-01-23", "2026-03-02-00"]


def test_hours_are_utc_whatever_the_zone_of_the_time() -> None:
    paris = timezone(timedelta(hours=1))
    assert layout.hour_value(datetime(2026, 3, 1, 18, 5, tzinfo=paris)) == HOUR


def test_athena_reads_tables_and_writes_results_at_s3_urls_of_the_buckets_prefixes() -> None:
    assert layout.s3_location("data-bucket", "athena/") == "s3://data-bucket/athena/"


def test_report_and_assembled_keys() -> None:
    moment = datetime(2026, 11, 27, 11, 17, 17, tzinfo=UTC)
    assert layout.report_key("monitoring/", "v1", moment, "json") == "monitoring/v1/20261127T111717Z.json"
    assert layout.assembled_folder("assembled/", "v1") == "assembled/v1/"
    assert layout.assembled_manifest_key("assembled/", "v1") == "assembled/v1.manifest.json"
    assert not layout.assembled_manifest_key("assembled/", "v1").startswith(layout.assembled_folder("assembled/", "v1"))
    assert layout.is_feedback(layout.FEEDBACK_FILE) and not layout.is_feedback(layout.BASE_FOLDER + "data.csv")
