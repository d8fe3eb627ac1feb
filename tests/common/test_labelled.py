"""The one join of captures and feedback: its rules (pure) and its reading of the data bucket (moto)."""

from __future__ import annotations

import gzip
import math
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from functions.common.labelled import CaptureReader, join, plan_join, served_task, truth
from functions.common.layout import capture_hour_prefix, feedback_hour_prefix, hour_value
from functions.common.records import FeedbackRecord, PredictionRecord, new_prediction_ids, to_json_lines
from tests.plugins.aws import DATA_BUCKET

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def prediction(prediction_id: str, model_version: str = "v1", **answer: Any) -> PredictionRecord:
    return PredictionRecord(prediction_id, "2026-11-27T11:00:00Z", model_version, {}, **answer)


def feedback(prediction_id: str, time: str = "2026-11-27T11:30:00Z", **truth: Any) -> FeedbackRecord:
    return FeedbackRecord(prediction_id, time, **truth)


# -- the rules --------------------------------------------------------------------------------------------------


def test_the_join_locates_each_prediction_by_the_hour_its_id_names() -> None:
    today, three_days_ago = (
        new_prediction_ids(1, NOW - timedelta(hours=1)),
        new_prediction_ids(2, NOW - timedelta(days=3)),
    )
    plan = plan_join(
        [feedback(pid, label="yes") for pid in today + three_days_ago], "classification", NOW, timedelta(days=30)
    )
    assert plan.hours == {
        "2026-11-27-11": set(today),
        "2026-11-24-12": set(three_days_ago),
    }
    assert plan.rejected == 0


def test_the_latest_feedback_for_a_prediction_wins() -> None:
    [pid] = new_prediction_ids(1, NOW - timedelta(hours=1))
    plan = plan_join(
        [
            feedback(pid, "2026-11-27T11:40:00Z", label="no"),
            feedback(pid, "2026-11-27T11:10:00Z", label="maybe"),
            feedback(pid, "2026-11-27T11:20:00Z", label="yes"),
        ],
        "classification",
        NOW,
        timedelta(days=30),
    )
    assert plan.feedback[pid].label == "no"
    assert plan.rejected == 2


def test_feedback_without_truth_a_forged_id_or_too_old_is_rejected() -> None:
    [fresh] = new_prediction_ids(1, NOW - timedelta(hours=1))
    [old] = new_prediction_ids(1, NOW - timedelta(days=40))
    forged = fresh[:-1] + ("0" if fresh[-1] != "0" else "1")
    plan = plan_join(
        [feedback(fresh), feedback(old, label="yes"), feedback(forged, label="yes"), feedback("nonsense", label="yes")],
        "classification",
        NOW,
        timedelta(days=30),
    )
    assert plan.feedback == {}
    assert plan.rejected == 4


def test_regression_feedback_needs_a_finite_value() -> None:
    ids = new_prediction_ids(3, NOW - timedelta(hours=1))
    plan = plan_join(
        [feedback(ids[0], value=1.5), feedback(ids[1], value=math.nan), feedback(ids[2], label="1.5")],
        "regression",
        NOW,
        timedelta(days=30),
    )
    assert set(plan.feedback) == {ids[0]}


def test_feedback_whose_prediction_was_not_captured_is_unmatched() -> None:
    ids = new_prediction_ids(3, NOW - timedelta(hours=1))
    plan = plan_join([feedback(pid, label="yes") for pid in ids], "classification", NOW, timedelta(days=30))
    joined = join(plan, {ids[0]: prediction(ids[0], label="yes"), ids[2]: prediction(ids[2], label="no")})
    assert [p.prediction_id for p, _ in joined.pairs] == sorted([ids[0], ids[2]])
    assert joined.unmatched == 1


def test_a_prediction_served_just_before_the_hour_is_looked_up_in_the_next_hours_partition_too() -> None:
    served = datetime(2026, 11, 26, 23, 59, 50, tzinfo=UTC)
    [pid] = new_prediction_ids(1, served)

    plan = plan_join([feedback(pid, label="yes")], "classification", NOW, timedelta(days=30))

    assert plan.hours == {"2026-11-26-23": {pid}, "2026-11-27-00": {pid}}


def test_each_dropped_feedback_is_counted_by_its_reason() -> None:
    [fresh, again] = new_prediction_ids(2, NOW - timedelta(hours=1))
    [old] = new_prediction_ids(1, NOW - timedelta(days=40))
    plan = plan_join(
        [
            feedback(fresh),
            feedback(again, "2026-11-27T11:00:00Z", label="no"),
            feedback(again, label="yes"),
            feedback(old, label="yes"),
            feedback("f" * 32, label="yes"),
        ],
        "classification",
        NOW,
        timedelta(days=30),
    )
    dropped = plan.dropped
    assert (dropped.unlabelled, dropped.superseded, dropped.expired, dropped.invalid_ids) == (1, 1, 1, 1)
    assert plan.rejected == 4 and set(plan.feedback) == {again}


def test_a_truth_fits_a_classifier_as_text_and_a_regressor_as_a_finite_number() -> None:
    assert truth(feedback("x", label=1), "classification") == "1"
    assert truth(feedback("x", value=2), "regression") == 2
    for value in (math.inf, True, "2", None):
        assert truth(feedback("x", value=value), "regression") is None
    assert truth(feedback("x", value=2.0), "classification") is None


def test_a_capture_tells_the_task_of_the_model_that_served_it() -> None:
    assert served_task(prediction("x", label="yes")) == "classification"
    assert served_task(prediction("x", value=0.5)) == "regression"
    assert served_task(prediction("x")) is None


def test_without_a_task_each_truth_must_fit_the_task_its_capture_shows() -> None:
    ids = new_prediction_ids(4, NOW - timedelta(hours=1))
    plan = plan_join(
        [
            feedback(ids[0], label="yes"),
            feedback(ids[1], value=2.5),
            feedback(ids[2], value=0.25),  # a number for a classifier
            feedback(ids[3], label="yes"),  # a label for a regressor
        ],
        None,
        NOW,
        timedelta(days=30),
    )
    captures = {
        ids[0]: prediction(ids[0], label="no"),
        ids[1]: prediction(ids[1], value=3.0),
        ids[2]: prediction(ids[2], label="no"),
        ids[3]: prediction(ids[3], value=3.0),
    }

    joined = join(plan, captures)

    assert joined.truths == {ids[0]: "yes", ids[1]: 2.5}
    assert [capture.prediction_id for capture, _ in joined.pairs] == sorted([ids[0], ids[1]])
    assert (joined.misfits, joined.unmatched) == (2, 0)


def test_a_caller_that_knows_the_task_drops_misfits_before_reading_any_capture() -> None:
    [label, number] = new_prediction_ids(2, NOW - timedelta(hours=1))
    plan = plan_join([feedback(label, label="yes"), feedback(number, value=1.0)], "regression", NOW, timedelta(days=30))

    assert set(plan.feedback) == {number}
    assert plan.hours == {"2026-11-27-11": {number}}
    assert plan.dropped.unlabelled == 1


# -- reading the data bucket ------------------------------------------------------------------------------------


def put(s3: S3Client, key: str, body: bytes) -> None:
    s3.put_object(Bucket=DATA_BUCKET, Key=key, Body=body)


def reader(s3: S3Client) -> CaptureReader:
    return CaptureReader(s3, DATA_BUCKET, "captures/", "feedback/")


def test_only_the_capture_partitions_the_ids_point_at_are_read(s3: S3Client) -> None:
    served = NOW - timedelta(days=3)
    [wanted, other] = new_prediction_ids(2, served)
    hour, next_hour = hour_value(served), hour_value(served + timedelta(hours=1))
    put(s3, capture_hour_prefix("captures/", "v1", hour) + "a", to_json_lines([prediction(wanted, label="yes")]))
    put(s3, capture_hour_prefix("captures/", "v1", hour) + "b", to_json_lines([prediction(other, label="no")]))
    put(s3, capture_hour_prefix("captures/", "v1", next_hour) + "a", to_json_lines([prediction(other, label="no")]))
    put(s3, capture_hour_prefix("captures/", "v2", hour) + "a", gzip.compress(b"{}\n"))
    store = reader(s3)

    found = store.captures(["v1"], {hour: {wanted}})

    assert list(found) == [wanted]
    assert store.counts.objects == 2  # v1's two objects of that hour: not v2's, not another hour's


def test_the_model_versions_are_the_capture_partitions_not_the_error_folder(s3: S3Client) -> None:
    for key in ("model_version=v2/hour=2026-11-27-01/a", "model_version=v1/hour=2026-11-26-23/a", "errors/x/hour=h/a"):
        put(s3, "captures/" + key, b"")

    assert reader(s3).model_versions() == ["v1", "v2"]


def test_gzipped_objects_are_read_and_malformed_ones_counted(s3: S3Client) -> None:
    [pid] = new_prediction_ids(1, NOW)
    prefix = feedback_hour_prefix("feedback/", hour_value(NOW))
    put(s3, prefix + "a.gz", gzip.compress(to_json_lines([feedback(pid, label="yes")])))
    put(s3, prefix + "b", b'{"prediction_id": ["not", "an", "id"], "time": "2026-11-27T11:00:00Z"}\n{"time": 1}\n')
    put(s3, prefix + "c", b"not json")
    store = reader(s3)

    assert [record.prediction_id for record in store.feedback_records([hour_value(NOW)])] == [pid]
    assert (store.counts.objects, store.counts.malformed_objects, store.counts.malformed_records) == (3, 1, 2)
