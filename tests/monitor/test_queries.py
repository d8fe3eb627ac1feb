"""The live-quality queries run on the local cloud's engine: the join's rules in SQL, and its pruning by id."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from functions.common.athena import Athena
from functions.common.bundle import Task
from functions.common.labelled_sql import PREFIX_DIGITS, FeedbackWindow, capture_hours
from functions.common.layout import ARRIVAL_SLACK, hour_value
from functions.common.records import FeedbackRecord, PredictionRecord
from functions.monitor import queries
from functions.monitor.quality import Labelled
from tests.monitor.world import iso, predictions, write_captures, write_feedback

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

NOW = datetime.now(UTC).replace(microsecond=0)
WINDOW = queries.Window("v1", NOW - timedelta(hours=1), NOW)
MAX_AGE = timedelta(days=30)
RECEIVED = iso(NOW - timedelta(minutes=10))


def join(athena: Athena, task: Task = "classification") -> tuple[queries.FeedbackStatus, Labelled]:
    feedback = FeedbackWindow(WINDOW.start, WINDOW.end, MAX_AGE, task)
    status = queries.feedback_status(athena.run(queries.feedback_query(feedback)).rows)
    hours = capture_hours(status.prefixes, feedback)
    if not hours:
        return status, Labelled()
    return status, queries.labelled(athena.run(queries.join_query(WINDOW, feedback, hours)).rows, task)


def served(count: int, at: datetime, version: str = "v1", **answer: object) -> list[PredictionRecord]:
    return predictions(version, at, [{"x": i} for i in range(count)], **answer)


def test_each_feedback_record_is_counted_by_the_joins_rules(s3: S3Client, athena: Athena) -> None:
    recent = served(6, NOW - timedelta(minutes=30), label="yes")
    old = served(1, NOW - MAX_AGE - timedelta(hours=1), label="yes")
    write_captures(s3, recent + old)
    well_shaped_bad_checksum = recent[5].prediction_id[:-1] + ("0" if recent[5].prediction_id[-1] != "0" else "1")
    write_feedback(
        s3,
        [
            FeedbackRecord(recent[0].prediction_id, RECEIVED, label="yes"),
            # Corrected: the later record wins, the earlier is superseded.
            FeedbackRecord(recent[1].prediction_id, iso(NOW - timedelta(minutes=20)), label="yes"),
            FeedbackRecord(recent[1].prediction_id, RECEIVED, label="no"),
            # No label for a classifier.
            FeedbackRecord(recent[2].prediction_id, RECEIVED, value=1.0),
            FeedbackRecord(recent[3].prediction_id.upper(), RECEIVED, label="yes"),
            FeedbackRecord("not-an-id", RECEIVED, label="yes"),
            FeedbackRecord(old[0].prediction_id, RECEIVED, label="yes"),
            FeedbackRecord(well_shaped_bad_checksum, RECEIVED, label="yes"),
            # Received before the window: not read.
            FeedbackRecord(recent[4].prediction_id, iso(NOW - timedelta(hours=2)), label="yes"),
        ],
    )

    status, labelled = join(athena)

    assert status.counts == {"usable": 3, "superseded": 1, "unlabelled": 1, "invalid_ids": 2, "expired": 1}
    assert (status.received, status.rejected) == (8, 5)
    assert status.dropped == {"superseded": 1, "unlabelled": 1, "invalid_ids": 2, "expired": 1}
    # The bad checksum cannot be checked in SQL: usable, but no capture has that id.
    assert labelled.count == 2
    assert labelled.confusion == {("yes", "yes"): 1, ("no", "yes"): 1}


def test_a_capture_delivered_twice_is_joined_once_and_other_versions_are_not_joined(
    s3: S3Client, athena: Athena
) -> None:
    mine = served(2, NOW - timedelta(minutes=30), label="yes")
    theirs = served(1, NOW - timedelta(minutes=30), version="v2", label="no")
    write_captures(s3, mine + theirs, "part-1.gz")
    write_captures(s3, mine[:1], "part-2.gz")
    write_feedback(s3, [FeedbackRecord(r.prediction_id, RECEIVED, label="yes") for r in mine + theirs])

    status, labelled = join(athena)

    assert status.usable == 3
    assert labelled.count == 2
    assert labelled.confusion == {("yes", "yes"): 2}


def test_a_regressors_join_sums_the_errors_of_predictions_with_a_value(s3: S3Client, athena: Athena) -> None:
    with_value = served(2, NOW - timedelta(minutes=30), value=10.0)
    without = served(1, NOW - timedelta(minutes=30))
    write_captures(s3, with_value + without)
    write_feedback(
        s3,
        [
            FeedbackRecord(with_value[0].prediction_id, RECEIVED, value=12.0),
            FeedbackRecord(with_value[1].prediction_id, RECEIVED, value=7.0),
            FeedbackRecord(without[0].prediction_id, RECEIVED, value=1.0),
            FeedbackRecord(without[0].prediction_id[::-1], RECEIVED, label="a label, no value"),
        ],
    )

    status, labelled = join(athena, "regression")

    assert status.counts == {"usable": 3, "unlabelled": 1}
    assert labelled == Labelled(count=3, scored=2, squared_error=4.0 + 9.0, absolute_error=2.0 + 3.0)


def test_labels_arriving_days_late_find_their_capture_by_the_hour_the_id_names(s3: S3Client, athena: Athena) -> None:
    days_ago = served(3, NOW - timedelta(days=3, minutes=7), label="no")
    # Delivered in the next hour's partition.
    write_captures(s3, days_ago, arrived=NOW - timedelta(days=3, minutes=7) + ARRIVAL_SLACK)
    write_feedback(s3, [FeedbackRecord(r.prediction_id, RECEIVED, label="no") for r in days_ago])

    status, labelled = join(athena)

    assert status.prefixes == (days_ago[0].prediction_id[:PREFIX_DIGITS],)
    assert labelled.count == 3


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_no_usable_feedback_runs_no_join(s3: S3Client, athena: Athena, task: Task) -> None:
    status, labelled = join(athena, task)
    assert (status.received, status.prefixes, labelled) == (0, (), Labelled())


def test_window_hours_bound_the_scan(s3: S3Client, athena: Athena) -> None:
    shifted = dataclasses.replace(WINDOW, start=NOW - timedelta(minutes=30))
    sql = queries.feedback_query(FeedbackWindow(shifted.start, shifted.end, MAX_AGE, "classification"))
    assert f"BETWEEN '{hour_value(shifted.start)}' AND '{hour_value(NOW + ARRIVAL_SLACK)}'" in sql


def test_feedback_about_a_prediction_served_after_the_window_is_an_invalid_id(s3: S3Client, athena: Athena) -> None:
    later = served(1, NOW + timedelta(hours=1), label="yes")
    write_feedback(s3, [FeedbackRecord(later[0].prediction_id, RECEIVED, label="yes")])

    status, _ = join(athena)

    assert status.counts == {"invalid_ids": 1}
