"""Assemble: the base data copied, captured predictions joined with their feedback, the fingerprint and counts."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import pytest

from functions.common.layout import capture_hour_prefix, feedback_hour_prefix, hour_value
from functions.common.records import FeedbackRecord, PredictionRecord, new_prediction_ids, to_json_lines
from functions.workflow import assembly, steps
from functions.workflow.assembly import AssemblyError
from functions.workflow.state import RunState
from tests.plugins.aws import DATA_BUCKET
from tests.workflow.support import settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
HEADER = b"customer_id,tenure,contract,churned\n"
BASE = {
    "training-data/2026/jan.csv": HEADER + b"c1,3,monthly,1\nc2,40,yearly,0\n",
    "training-data/2026/feb.csv": HEADER + b"c3,12,monthly,0\n\n",
    "training-data/notes/": b"",  # a folder marker, not data
}


def put(s3: S3Client, key: str, body: bytes) -> None:
    s3.put_object(Bucket=DATA_BUCKET, Key=key, Body=body)


def base_data(s3: S3Client) -> None:
    for key, body in BASE.items():
        put(s3, key, body)


def run(s3: S3Client, version: str = "v20260302-093000-aaaaaa", **changes: Any) -> dict[str, Any]:
    return steps.assemble_data(settings(**changes), s3, RunState.parse({"guard": {"version": version}}), now=NOW)


def read(s3: S3Client, key: str) -> bytes:
    return s3.get_object(Bucket=DATA_BUCKET, Key=key)["Body"].read()


def capture(
    s3: S3Client,
    model_version: str,
    served: datetime,
    features: list[dict[str, Any]],
    *,
    arrived: datetime | None = None,
    answer: dict[str, Any] | None = None,
) -> list[str]:
    """Captured predictions served at ``served`` (by a classifier unless ``answer`` says otherwise), in the hour
    partition of their arrival (default: when served); returns their ids."""
    ids = new_prediction_ids(len(features), served)
    records = [
        PredictionRecord(prediction_id, served.isoformat(), model_version, instance, **(answer or {"label": "1"}))
        for prediction_id, instance in zip(ids, features, strict=True)
    ]
    hour = hour_value(arrived or served)
    put(s3, capture_hour_prefix("captures/", model_version, hour) + "part-1.json", to_json_lines(records))
    return ids


def feedback(s3: S3Client, received: datetime, labels: dict[str, Any], name: str = "part-1.json") -> None:
    records = []
    for prediction_id, label in labels.items():
        # Regression feedback is a value, classification feedback a label.
        truth = {"value": label} if isinstance(label, float) else {"label": label}
        records.append(FeedbackRecord(prediction_id, received.isoformat(), **truth))
    put(s3, feedback_hour_prefix("feedback/", hour_value(received)) + name, to_json_lines(records))


def rows(body: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body.decode())))


def test_the_base_data_is_copied_server_side_under_the_runs_prefix(s3: S3Client) -> None:
    base_data(s3)

    result = run(s3)

    folder = "assembled/v20260302-093000-aaaaaa/"
    assert result["prefix"] == folder and result["uri"] == f"s3://{DATA_BUCKET}/{folder}"
    assert [item["key"] for item in result["objects"]] == ["base/2026/feb.csv", "base/2026/jan.csv"]
    for item in result["objects"]:
        source = "training-data/" + item["key"].removeprefix("base/")
        assert read(s3, folder + item["key"]) == BASE[source]
        assert item["size"] == len(BASE[source]) and item["etag"].startswith('"')
    # Blank lines are not rows; the folder marker is not an object of the data set.
    assert result["counts"]["base"] == {"objects": 2, "bytes": sum(len(b) for b in BASE.values()), "rows": 3}
    assert result["counts"]["rows"] == {"base": 3, "feedback": 0}
    assert result["counts"]["feedback"] == {"skipped": "retraining.include_feedback is off"}
    manifest = json.loads(read(s3, "assembled/v20260302-093000-aaaaaa.manifest.json"))
    assert manifest["fingerprint"] == result["fingerprint"] and manifest["objects"] == result["objects"]
    assert result["manifest"] == f"s3://{DATA_BUCKET}/assembled/v20260302-093000-aaaaaa.manifest.json"


def test_feedback_is_joined_with_its_captures_across_day_partitions_and_model_versions(s3: S3Client) -> None:
    base_data(s3)
    # Served on two days under two model versions; one prediction is never labelled.
    first_day: list[dict[str, Any]] = [
        {"tenure": 5, "contract": "monthly", "region": "north"},
        {"tenure": 60, "contract": None, "region": "south"},
    ]
    old_ids = capture(s3, "v1", NOW - timedelta(days=3, hours=2), first_day)
    new_ids = capture(s3, "v2", NOW - timedelta(hours=1), [{"tenure": 7.5, "contract": "yearly", "region": "west"}] * 2)
    uncaptured = new_prediction_ids(1, NOW - timedelta(hours=5))[0]
    feedback(s3, NOW - timedelta(days=1), {old_ids[0]: "0", old_ids[1]: "1", uncaptured: "1"})
    # A later correction for the same prediction wins; an id this service never issued is counted.
    feedback(s3, NOW, {old_ids[0]: "1", new_ids[0]: "0", "f" * 32: "1"})

    result = run(s3, include_feedback=True, max_feedback_share=1.0)

    assert rows(read(s3, result["prefix"] + "feedback/feedback.csv")) == sorted(
        [
            {"customer_id": "", "tenure": "5", "contract": "monthly", "churned": "1"},
            {"customer_id": "", "tenure": "60", "contract": "", "churned": "1"},
            {"customer_id": "", "tenure": "7.5", "contract": "yearly", "churned": "0"},
        ],
        key=lambda row: {"5": old_ids[0], "60": old_ids[1], "7.5": new_ids[0]}[row["tenure"]],
    )
    assert result["counts"]["feedback"] == {
        "records": 6,
        "joined": 3,
        "unmatched": 1,
        "invalid_ids": 1,
        "unlabelled": 0,
        "superseded": 1,
        "expired": 0,
        "misfits": 0,
        "max_rows": None,
        "capped": 0,
        "callers": 1,
        "dropped_features": ["region"],
        "missing_columns": ["customer_id"],
        # Two feedback objects, and the two capture objects of the days the ids name (of four partitions read).
        "reads": {"objects": 4, "malformed_objects": 0, "malformed_records": 0},
        "skipped": None,
    }
    assert result["counts"]["rows"] == {"base": 3, "feedback": 3}
    assert [item["key"] for item in result["objects"]][-1] == "feedback/feedback.csv"
    assert result["object_count"] == 3


def test_feedback_older_than_the_max_age_is_not_read_and_regression_values_fill_the_target(s3: S3Client) -> None:
    base_data(s3)
    # A regressor's predictions, served within the age limit (a label must fit the task of the model that served
    # it, and feedback about a prediction older than the limit is dropped: see the tests below).
    [recent, old] = capture(
        s3, "v1", NOW - timedelta(days=29), [{"tenure": 1, "contract": "monthly"}] * 2, answer={"value": 0.5}
    )
    feedback(s3, NOW - timedelta(days=31), {old: 1.0})
    feedback(s3, NOW - timedelta(days=2), {recent: 0.25})

    result = run(s3, include_feedback=True, feedback_max_age_days=30)

    [row] = rows(read(s3, result["prefix"] + "feedback/feedback.csv"))
    assert row["churned"] == "0.25"
    assert result["counts"]["feedback"]["records"] == 1


def test_a_label_for_a_prediction_served_longer_ago_than_the_age_limit_is_not_trained_on(s3: S3Client) -> None:
    base_data(s3)
    [old] = capture(s3, "v1", NOW - timedelta(days=31), [{"tenure": 1, "contract": "monthly"}])
    feedback(s3, NOW - timedelta(days=2), {old: "1"})

    result = run(s3, include_feedback=True, feedback_max_age_days=30, max_feedback_share=1.0)

    counts = result["counts"]["feedback"]
    assert (counts["records"], counts["expired"], counts["joined"]) == (1, 1, 0)
    assert result["counts"]["rows"]["feedback"] == 0 and result["object_count"] == 2


def test_a_label_that_does_not_fit_the_task_of_the_model_that_served_the_prediction_is_not_trained_on(
    s3: S3Client,
) -> None:
    base_data(s3)
    classified = capture(s3, "v1", NOW - timedelta(hours=2), [{"tenure": 1, "contract": "monthly"}] * 2)
    [estimated] = capture(
        s3, "v2", NOW - timedelta(hours=2), [{"tenure": 2, "contract": "yearly"}], answer={"value": 3.0}
    )
    # A number for a classifier's prediction, a label for a regressor's: neither is a training label.
    feedback(s3, NOW, {classified[0]: 0.25, estimated: "1", classified[1]: "0"})

    result = run(s3, include_feedback=True, max_feedback_share=1.0)

    [row] = rows(read(s3, result["prefix"] + "feedback/feedback.csv"))
    assert (row["tenure"], row["churned"]) == ("1", "0")
    assert (result["counts"]["feedback"]["misfits"], result["counts"]["feedback"]["joined"]) == (2, 1)


def test_a_prediction_served_before_the_hour_that_reached_the_next_hours_partition_is_joined(s3: S3Client) -> None:
    base_data(s3)
    served = datetime(2026, 3, 1, 13, 59, 58, tzinfo=UTC)
    [late] = capture(s3, "v1", served, [{"tenure": 4, "contract": "monthly"}], arrived=served + timedelta(seconds=5))
    feedback(s3, NOW, {late: "1"})

    result = run(s3, include_feedback=True, max_feedback_share=1.0)

    assert [row["tenure"] for row in rows(read(s3, result["prefix"] + "feedback/feedback.csv"))] == ["4"]
    assert result["counts"]["feedback"]["unmatched"] == 0


def test_a_malformed_feedback_record_is_counted_and_the_rest_still_joined(s3: S3Client) -> None:
    base_data(s3)
    [served] = capture(s3, "v1", NOW - timedelta(hours=2), [{"tenure": 2, "contract": "monthly"}])
    feedback(s3, NOW, {served: "1"})
    put(s3, feedback_hour_prefix("feedback/", hour_value(NOW)) + "part-2.json", b'{"label": "1"}\n')

    result = run(s3, include_feedback=True, max_feedback_share=1.0)

    assert result["counts"]["feedback"]["joined"] == 1
    assert result["counts"]["feedback"]["reads"]["malformed_records"] == 1


def test_the_fingerprint_is_stable_and_changes_with_the_data(s3: S3Client) -> None:
    base_data(s3)
    first = run(s3, "v20260302-093000-aaaaaa", include_feedback=True)
    again = run(s3, "v20260302-093500-bbbbbb", include_feedback=True)
    assert first["fingerprint"] == again["fingerprint"]

    put(s3, "training-data/2026/feb.csv", HEADER + b"c3,12,monthly,1\n")
    changed_base = run(s3, "v20260302-094000-cccccc", include_feedback=True)
    [served] = capture(s3, "v1", NOW - timedelta(hours=2), [{"tenure": 2, "contract": "monthly"}])
    feedback(s3, NOW, {served: "1"})
    new_feedback = run(s3, "v20260302-094500-dddddd", include_feedback=True)

    fingerprints = {first["fingerprint"], changed_base["fingerprint"], new_feedback["fingerprint"]}
    assert len(fingerprints) == 3
    expected = assembly.fingerprint((item["key"], item["etag"]) for item in changed_base["objects"])
    assert changed_base["fingerprint"] == expected  # copies of single-part objects keep the source's ETag


def test_with_include_feedback_off_only_the_base_data_is_assembled(s3: S3Client) -> None:
    base_data(s3)
    [served] = capture(s3, "v1", NOW - timedelta(hours=2), [{"tenure": 2, "contract": "monthly"}])
    feedback(s3, NOW, {served: "1"})

    result = run(s3, include_feedback=False)

    assert [item["key"] for item in result["objects"]] == ["base/2026/feb.csv", "base/2026/jan.csv"]
    listed = s3.list_objects_v2(Bucket=DATA_BUCKET, Prefix=result["prefix"] + "feedback/")
    assert listed["KeyCount"] == 0


def test_feedback_that_matches_no_capture_writes_no_file_but_is_counted(s3: S3Client) -> None:
    base_data(s3)
    feedback(s3, NOW, {new_prediction_ids(1, NOW - timedelta(hours=1))[0]: "1"})

    result = run(s3, include_feedback=True)

    assert result["counts"]["feedback"]["unmatched"] == 1 and result["counts"]["feedback"]["joined"] == 0
    assert result["object_count"] == 2


def test_a_target_missing_from_the_training_data_is_refused_before_anything_is_copied(s3: S3Client) -> None:
    base_data(s3)
    with pytest.raises(AssemblyError, match="target column 'label' is not in the training data's header"):
        run(s3, include_feedback=True, hyperparameters={"target": "label"})
    assert s3.list_objects_v2(Bucket=DATA_BUCKET, Prefix="assembled/")["KeyCount"] == 0


def test_a_header_longer_than_the_first_ranged_read_is_read_whole(
    s3: S3Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(assembly, "HEADER_BYTES", 8)
    put(s3, "training-data/data.csv", b'"tenure, in months",contract,churned\n3,monthly,1\n')
    [served] = capture(s3, "v1", NOW - timedelta(hours=2), [{"tenure, in months": 2, "contract": "monthly"}])
    feedback(s3, NOW, {served: "0"})

    result = run(s3, include_feedback=True, max_feedback_share=1.0)

    body = read(s3, result["prefix"] + "feedback/feedback.csv")
    assert body == b'"tenure, in months",contract,churned\n2,monthly,0\n'


def test_parquet_base_data_is_copied_but_neither_counted_nor_joined(s3: S3Client) -> None:
    put(s3, "training-data/data.parquet", b"PAR1...PAR1")

    result = run(s3, include_feedback=True)

    assert result["counts"]["base"]["rows"] is None
    assert result["counts"]["feedback"]["skipped"] == "the base data has no CSV file to take the columns from"


# -- the feedback cap ---------------------------------------------------------------------------------------------


def feedback_from(s3: S3Client, caller: dict[str, str | None], labels: dict[str, str], name: str) -> None:
    """Feedback as the API records it with its caller (helper A's ``caller`` object)."""
    records = [
        {**FeedbackRecord(pid, NOW.isoformat(), label=label).to_dict(), "caller": caller}
        for pid, label in labels.items()
    ]
    body = "".join(json.dumps(r) + "\n" for r in records).encode()
    put(s3, feedback_hour_prefix("feedback/", hour_value(NOW)) + name, body)


def served(s3: S3Client, count: int, model_version: str = "v1") -> list[str]:
    """``count`` captured predictions (one capture file per model version: call once per version)."""
    return capture(s3, model_version, NOW - timedelta(hours=1), [{"tenure": 1, "contract": "monthly"}] * count)


@pytest.mark.parametrize(
    ("base_rows", "share", "cap"),
    [(3, 0.4, 2), (7, 0.3, 3), (0, 0.3, 0), (10, 0.5, 10), (10, 1.0, None), (1000, 0.3, 428)],
)
def test_the_feedback_cap_is_the_most_rows_that_keep_feedback_within_its_share(
    base_rows: int, share: float, cap: int | None
) -> None:
    assert assembly.feedback_cap(base_rows, share) == cap
    if cap is not None:
        exact = Fraction(str(share))
        assert cap <= exact * (base_rows + cap) and cap + 1 > exact * (base_rows + cap + 1)


def test_feedback_beyond_its_share_of_the_training_set_is_left_out_and_counted(s3: S3Client) -> None:
    base_data(s3)  # 3 base rows
    ids = served(s3, 6)
    feedback(s3, NOW, dict.fromkeys(ids, "1"))

    result = run(s3, include_feedback=True, max_feedback_share=0.4)

    written = rows(read(s3, result["prefix"] + "feedback/feedback.csv"))
    counts = result["counts"]
    assert len(written) == 2 == counts["rows"]["feedback"]
    assert (counts["feedback"]["joined"], counts["feedback"]["max_rows"], counts["feedback"]["capped"]) == (6, 2, 4)
    base = counts["rows"]["base"]
    assert counts["rows"]["feedback"] <= 0.4 * (base + counts["rows"]["feedback"])


def test_a_caller_flooding_feedback_does_not_crowd_out_the_other_callers(s3: S3Client) -> None:
    base_data(s3)  # 3 base rows; a share of 0.5 allows 3 feedback rows
    flood, alice, bob = served(s3, 10, "v1"), served(s3, 1, "v2"), served(s3, 1, "v3")
    feedback_from(s3, {"principal": "arn:aws:iam::1:user/alice", "source_ip": "10.0.0.1"}, {alice[0]: "1"}, "a.json")
    feedback_from(s3, {"principal": None, "api_key_id": "key-bob", "source_ip": "10.0.0.2"}, {bob[0]: "0"}, "b.json")
    # The flood comes from one API key through many addresses, and arrives last.
    for index, prediction_id in enumerate(flood):
        caller = {"principal": None, "api_key_id": "key-mallory", "source_ip": f"192.0.2.{index}"}
        feedback_from(s3, caller, {prediction_id: "1"}, f"z-{index:02}.json")

    result = run(s3, include_feedback=True, max_feedback_share=0.5)

    labels = sorted(row["churned"] for row in rows(read(s3, result["prefix"] + "feedback/feedback.csv")))
    assert labels == ["0", "1", "1"]  # bob's, alice's and one of the flood's
    assert result["counts"]["feedback"]["callers"] == 3 and result["counts"]["feedback"]["capped"] == 9


def test_the_feedback_kept_is_the_same_on_every_assembly_of_the_run(s3: S3Client) -> None:
    base_data(s3)
    feedback(s3, NOW, dict.fromkeys(served(s3, 8), "1"))

    first = run(s3, "v20260302-093000-aaaaaa", include_feedback=True, max_feedback_share=0.5)
    again = run(s3, "v20260302-093000-aaaaaa", include_feedback=True, max_feedback_share=0.5)

    assert first["fingerprint"] == again["fingerprint"]


def test_with_base_rows_not_all_countable_the_cap_counts_only_the_rows_read(s3: S3Client) -> None:
    base_data(s3)  # 3 CSV rows, and a Parquet file whose rows are not counted
    put(s3, "training-data/2026/mar.parquet", b"PAR1...PAR1")
    feedback(s3, NOW, dict.fromkeys(served(s3, 5), "1"))

    result = run(s3, include_feedback=True, max_feedback_share=0.5)

    assert result["counts"]["base"]["rows"] is None
    assert result["counts"]["feedback"]["max_rows"] == 3 and result["counts"]["rows"]["feedback"] == 3


def test_csv_past_the_counting_budget_is_not_counted_and_the_cap_stays_within_the_share(
    s3: S3Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    base_data(s3)
    # Only feb.csv (1 row; listed first) fits the budget; jan.csv's 2 rows are not counted.
    monkeypatch.setattr(assembly, "MAX_COUNTED_BYTES", len(BASE["training-data/2026/feb.csv"]))
    feedback(s3, NOW, dict.fromkeys(served(s3, 5), "1"))

    result = run(s3, include_feedback=True, max_feedback_share=0.5)

    assert result["counts"]["base"]["rows"] is None
    assert result["counts"]["feedback"]["max_rows"] == 1 and result["counts"]["rows"]["feedback"] == 1


def test_the_selection_depends_on_the_seed_not_on_the_order_feedback_arrived_in() -> None:
    callers = {f"{index:032x}": "" for index in range(40)}

    kept = assembly.select_feedback(callers, 10, "v20260302-093000-aaaaaa")

    assert len(kept) == 10
    assert assembly.select_feedback(dict(reversed(callers.items())), 10, "v20260302-093000-aaaaaa") == kept
    assert assembly.select_feedback(callers, 10, "v20260302-093000-bbbbbb") != kept
    # Not "the first ids" either: a caller cannot pick ids that rank first without knowing the run's version.
    assert kept != set(sorted(callers)[:10])
