"""Assemble's Athena SQL, run through the local cloud's engine (sqlglot + DuckDB) over moto's S3; the UNLOAD
wrapper's text on its own (the local engine runs SELECTs)."""

from __future__ import annotations

import gzip
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
import sqlglot

from functions.common import layout
from functions.common.athena import Athena
from functions.common.labelled_sql import FeedbackWindow, capture_hours
from functions.common.records import FeedbackRecord, PredictionRecord, new_prediction_ids, to_json_lines
from functions.workflow.feedback_sql import MAX_VALUE_CHARS, FeedbackQuery, KnownValues
from tests.plugins.aws import DATA_BUCKET
from tests.prediction_ids import ID_KEY

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
DAY = timedelta(days=1)
MONTH = timedelta(days=30)
WINDOW = FeedbackWindow(NOW - MONTH, NOW, MONTH)
# Names from users' data: quotes, backticks, semicolons, keywords, JSON path syntax.
HOSTILE = ['x" FROM kept; --', "`tick`", "a'b", "select", "from", "$.a[0]", 'back\\slash "\\"']


def query(header: list[str], **changes: Any) -> FeedbackQuery:
    return replace(FeedbackQuery(header, header[-1], "v20260302-093000-aaaaaa", NOW, MONTH), **changes)


def captured(s3: S3Client, served: datetime, features: list[dict[str, Any]]) -> list[str]:
    ids = new_prediction_ids(len(features), served, ID_KEY)
    records = [PredictionRecord(i, served.isoformat(), "v1", f, label="1") for i, f in zip(ids, features, strict=True)]
    key = f"{layout.capture_hour_prefix('captures/', 'v1', layout.hour_value(served))}part-{ids[0]}.gz"
    s3.put_object(Bucket=DATA_BUCKET, Key=key, Body=gzip.compress(to_json_lines(records)))
    return ids


def labelled(s3: S3Client, labels: dict[str, str]) -> None:
    records = [FeedbackRecord(i, NOW.isoformat(timespec="milliseconds"), label=label) for i, label in labels.items()]
    key = f"{layout.feedback_hour_prefix('feedback/', layout.hour_value(NOW))}part-{len(labels)}.json"
    s3.put_object(Bucket=DATA_BUCKET, Key=key, Body=to_json_lines(records))


def test_the_training_set_selects_exactly_the_header_columns_whatever_their_names(s3: S3Client, athena: Athena) -> None:
    header = [*HOSTILE, "churned"]
    sql = query(header).training_set()
    # Each name is one quoted output column: none ends a string or an identifier early.
    parsed = sqlglot.parse_one(sql, read="athena")
    assert isinstance(parsed, sqlglot.exp.Query) and parsed.named_selects == header

    features = {name: f"v{index}" for index, name in enumerate(HOSTILE)}
    [prediction] = captured(s3, NOW - DAY, [features])
    labelled(s3, {prediction: "1"})
    hours = capture_hours([row["prefix"] or "" for row in athena.run(query(header).id_prefixes()).records()], WINDOW)
    rows = athena.run(query(header, model_versions=["v1"], hours=hours).training_set()).records()
    assert rows == [{**features, "churned": "1"}]


def test_the_first_query_names_only_the_hours_of_usable_feedback(s3: S3Client, athena: Athena) -> None:
    recent = captured(s3, NOW - DAY, [{"x": 1}])[0]
    expired = new_prediction_ids(1, NOW - 2 * MONTH, ID_KEY)[0]
    future = new_prediction_ids(1, NOW + DAY, ID_KEY)[0]
    labelled(s3, {recent: "1", expired: "0", future: "1", "not-an-id": "1"})

    prefixes = [row["prefix"] or "" for row in athena.run(query(["x", "y"]).id_prefixes()).records()]

    assert prefixes == [recent[:7]]
    hours = capture_hours(prefixes, WINDOW)
    assert layout.hour_value(NOW - DAY) in hours and len(hours) <= 2


def test_with_no_capture_to_read_the_queries_still_run_and_match_nothing(s3: S3Client, athena: Athena) -> None:
    [prediction] = new_prediction_ids(1, NOW - DAY, ID_KEY)
    labelled(s3, {prediction: "1"})

    [counts] = athena.run(query(["x", "y"]).counts()).records()

    assert (counts["records"], counts["unmatched"], counts["joined"], counts["kept"]) == ("1", "1", "0", "0")
    assert athena.run(query(["x", "y"]).training_set()).records() == []


def test_the_unload_wraps_the_training_set_as_parquet_at_its_quoted_location() -> None:
    planned = query(["x", "y"], model_versions=["v1"], hours=["2026-03-01-10"], max_rows=5)
    unload = planned.unload("s3://bucket/assembled/v'1/feedback/")
    assert unload == (
        f"UNLOAD ({planned.training_set()}) TO 's3://bucket/assembled/v''1/feedback/' WITH (format = 'PARQUET')"
    )
    assert planned.training_set().endswith("LIMIT 5) SELECT json_extract_scalar(features, '$[\"x\"]') AS \"x\", "
                                           'truth AS "y" FROM kept')  # fmt: skip


@pytest.mark.parametrize("version", ["v1", "it's; DROP", 'q"uote'])
def test_model_versions_and_the_runs_version_enter_the_sql_as_literals(
    s3: S3Client, athena: Athena, version: str
) -> None:
    planned = query(["x", "y"], version=version, model_versions=[version], hours=["2026-03-01-10"])
    # Athena's partition projection reads exactly the versions named: the engine refuses anything else.
    assert athena.run(planned.counts()).records()[0]["records"] == "0"


def test_new_values_are_judged_and_counted_whole_and_listed_cut(s3: S3Client, athena: Athena) -> None:
    long = "é'\"" + "x" * 200
    known = KnownValues(2, categories={"c": ["a'b", "ünï"]}, ranges={"n": (0.0, 1.0)})
    instances: list[dict[str, Any]] = [
        {"c": "a'b", "n": 0.5},
        {"c": "ünï", "n": 1},
        {"c": long, "n": 0},
        {"c": long + "y"},
        {"n": 1.5},
    ]
    ids = captured(s3, NOW - DAY, instances)
    labelled(s3, dict.fromkeys(ids, "1"))
    hours = capture_hours(
        [row["prefix"] or "" for row in athena.run(query(["c", "y"]).id_prefixes()).records()], WINDOW
    )
    planned = query(["c", "n", "y"], model_versions=["v1"], hours=hours, known=known)

    # One caller (none recorded) is fewer than two: every row with a new value is held out. (The rows come in the
    # cap's order, keyed by the random part of the ids: compared as a set.)
    assert sorted(athena.run(planned.training_set()).records(), key=lambda row: row["n"] or "") == [
        {"c": "a'b", "n": "0.5", "y": "1"},
        {"c": "ünï", "n": "1", "y": "1"},
    ]
    assert athena.run(planned.counts()).records()[0]["held"] == "3"
    listed = athena.run(planned.new_values()).records()
    # Two values that differ past the cut stay two values.
    assert sorted((row["feature"], row["value"], row["rows"], row["callers"]) for row in listed) == [
        ("c", long[:MAX_VALUE_CHARS], "1", "1"),
        ("c", long[:MAX_VALUE_CHARS], "1", "1"),
        ("n", "above", "1", "1"),
    ]
