"""Assemble: the base data copied, captured predictions joined with their feedback by Athena (the local cloud's
engine here), the fingerprint and counts; the steps run as the state machine runs them (AssembleData, the UNLOAD,
FinishAssembly)."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from functions.common import layout
from functions.common.bundle import Feature, ModelMetadata
from functions.common.records import Caller, FeedbackRecord, PredictionRecord, new_prediction_ids, to_json_lines
from functions.workflow import assembly, steps
from functions.workflow.assembly import AssemblyError
from functions.workflow.state import RunState
from tests.plugins.athena import LocalAthena, adapter, tables
from tests.plugins.aws import DATA_BUCKET, MODEL_BUCKET
from tests.prediction_ids import ID_KEY
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


class Run:
    """A run's Assemble as the state machine runs it; ``engine`` is Athena (the Lambdas' and the UNLOAD's)."""

    def __init__(self, s3: S3Client) -> None:
        # Athena reads S3 with a client of its own, so what the Lambdas read themselves can be told apart.
        self.engine = LocalAthena(boto3.client("s3", region_name="us-east-1"), tables())
        self.athena = adapter(self.engine)
        self.s3 = s3
        self.plan: dict[str, Any] = {}
        # What the state machine's Athena task returned for the UNLOAD (empty: it was skipped).
        self.unload: dict[str, Any] = {}

    def __call__(self, version: str = "v20260302-093000-aaaaaa", **changes: Any) -> dict[str, Any]:
        config = settings(**changes)
        state: dict[str, Any] = {"guard": {"version": version}}
        self.plan = state["assembly_plan"] = steps.plan_assembly_step(
            config, self.s3, self.athena, RunState.parse(state), now=NOW
        )
        if "unload" in self.plan:  # the FeedbackQuery? choice
            unloaded = self.athena.run(self.plan["unload"])
            self.unload = {"QueryExecutionId": unloaded.query_id, "DataScannedInBytes": unloaded.scanned_bytes}
            state["assembly_query"] = self.unload
        return steps.finish_assembly_step(config, self.s3, self.athena, RunState.parse(state))


@pytest.fixture
def run(s3: S3Client) -> Run:
    return Run(s3)


def read(s3: S3Client, key: str) -> bytes:
    return s3.get_object(Bucket=DATA_BUCKET, Key=key)["Body"].read()


def feedback_rows(s3: S3Client, result: dict[str, Any]) -> list[dict[str, str | None]]:
    """The rows of the Parquet files the UNLOAD wrote under the run's ``feedback/``."""
    found = []
    for item in result["objects"]:
        if item["key"].startswith("feedback/"):
            body = read(s3, result["prefix"] + item["key"])
            assert body[:4] == b"PAR1"
            found.extend(pq.read_table(pa.BufferReader(body)).to_pylist())
    return found


def capture(
    s3: S3Client,
    model_version: str,
    served: datetime,
    features: list[dict[str, Any]],
    *,
    arrived: datetime | None = None,
    answer: dict[str, Any] | None = None,
) -> list[str]:
    """Captured predictions served at ``served`` (by a classifier unless ``answer`` says otherwise), gzipped in the
    hour partition of their arrival (default: when served), as Firehose writes them; returns their ids."""
    ids = new_prediction_ids(len(features), served, ID_KEY)
    records = [
        PredictionRecord(prediction_id, served.isoformat(), model_version, instance, **(answer or {"label": "1"}))
        for prediction_id, instance in zip(ids, features, strict=True)
    ]
    hour = layout.hour_value(arrived or served)
    key = f"{layout.capture_hour_prefix('captures/', model_version, hour)}part-{ids[0]}.gz"
    put(s3, key, gzip.compress(to_json_lines(records)))
    return ids


def feedback_at(received: datetime, name: str) -> str:
    return layout.feedback_hour_prefix("feedback/", layout.hour_value(received)) + name


def feedback(s3: S3Client, received: datetime, labels: dict[str, Any], name: str = "part-1.json") -> None:
    records = []
    for prediction_id, label in labels.items():
        # Regression feedback is a value, classification feedback a label.
        truth = {"value": label} if isinstance(label, float) else {"label": label}
        records.append(FeedbackRecord(prediction_id, received.isoformat(timespec="milliseconds"), **truth))
    put(s3, feedback_at(received, name), to_json_lines(records))


def test_the_base_data_is_copied_server_side_under_the_runs_prefix(s3: S3Client, run: Run) -> None:
    base_data(s3)

    result = run()

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
    # Nothing for Athena to write: the state machine skips the UNLOAD.
    assert "unload" not in run.plan and run.engine.queries == []


def test_feedback_is_joined_with_its_captures_across_hour_partitions_and_model_versions(s3: S3Client, run: Run) -> None:
    base_data(s3)
    # Served on two days under two model versions; one prediction is never labelled.
    first_day: list[dict[str, Any]] = [
        {"tenure": 5, "contract": "monthly", "region": "north"},
        {"tenure": 60, "contract": None, "region": "south"},
    ]
    old_ids = capture(s3, "v1", NOW - timedelta(days=3, hours=2), first_day)
    new_ids = capture(s3, "v2", NOW - timedelta(hours=1), [{"tenure": 7.5, "contract": "yearly", "region": "west"}] * 2)
    uncaptured = new_prediction_ids(1, NOW - timedelta(hours=5), ID_KEY)[0]
    feedback(s3, NOW - timedelta(days=1), {old_ids[0]: "0", old_ids[1]: "1", uncaptured: "1"})
    # A later correction for the same prediction wins; an id this service cannot have issued is counted.
    feedback(s3, NOW, {old_ids[0]: "1", new_ids[0]: "0", "f" * 32: "1"})

    result = run(include_feedback=True, max_feedback_share=1.0)

    # Exactly the base data's columns; a base column the capture lacks, or a null feature, is missing (NULL).
    assert sorted(feedback_rows(s3, result), key=lambda row: str(row["tenure"])) == [
        {"customer_id": None, "tenure": "5", "contract": "monthly", "churned": "1"},
        {"customer_id": None, "tenure": "60", "contract": None, "churned": "1"},
        {"customer_id": None, "tenure": "7.5", "contract": "yearly", "churned": "0"},
    ]
    counts = result["counts"]["feedback"]
    # The hours the three usable ids' times name (each time's id prefix spans about 17.5 minutes, plus the arrival
    # slack), not the 720 hours of the window.
    assert 3 <= counts.pop("capture_hours") <= 6
    assert counts == {
        "records": 6,
        "joined": 3,
        "unmatched": 1,
        "invalid_ids": 1,
        "unlabelled": 0,
        "superseded": 1,
        "expired": 0,
        "misfits": 0,
        "max_rows": None,
        "held": 0,
        "capped": 0,
        "callers": 1,
        "new_values": {"reference": None, "skipped": "no champion: no trusted values to tell new ones from"},
        "missing_columns": ["customer_id"],
        "model_versions": 2,
        "athena": {
            "query_execution_id": run.unload["QueryExecutionId"],
            "scanned_bytes": run.unload["DataScannedInBytes"],
        },
    }
    assert result["counts"]["rows"] == {"base": 3, "feedback": 3}
    assert [item["key"] for item in result["objects"]][-1].startswith("feedback/")
    assert result["object_count"] == 3


def test_the_lambdas_read_no_capture_or_feedback_object_themselves(s3: S3Client, run: Run) -> None:
    base_data(s3)
    ids = capture(s3, "v1", NOW - timedelta(hours=2), [{"tenure": 2, "contract": "monthly"}] * 3)
    feedback(s3, NOW, dict.fromkeys(ids, "1"))
    fetched: list[str] = []
    s3.meta.events.register("provide-client-params.s3.GetObject", lambda params, **_: fetched.append(params["Key"]))

    result = run(include_feedback=True, max_feedback_share=1.0)

    assert result["counts"]["feedback"]["joined"] == 3 and len(feedback_rows(s3, result)) == 3
    read_by_lambdas = [key for key in fetched if not key.startswith(result["prefix"] + "feedback/")]
    # Besides the data: the registry's champion pointer (none here), whose values tell new ones apart.
    allowed = ("training-data/", result["prefix"], "registry/")
    assert read_by_lambdas and all(key.startswith(allowed) for key in read_by_lambdas)
    # Athena's queries: the id prefixes, the UNLOAD's SELECT, the counts (no champion: no new values to list).
    assert len(run.engine.queries) == 3


def test_feedback_older_than_the_max_age_is_not_read_and_regression_values_fill_the_target(
    s3: S3Client, run: Run
) -> None:
    base_data(s3)
    # A regressor's predictions, served within the age limit (a label must fit the task of the model that served
    # it, and feedback about a prediction older than the limit is dropped: see the tests below).
    [recent, old] = capture(
        s3, "v1", NOW - timedelta(days=29), [{"tenure": 1, "contract": "monthly"}] * 2, answer={"value": 0.5}
    )
    feedback(s3, NOW - timedelta(days=31), {old: 1.0})
    feedback(s3, NOW - timedelta(days=2), {recent: 0.25})

    result = run(include_feedback=True, feedback_max_age_days=30)

    [row] = feedback_rows(s3, result)
    assert row["churned"] == "0.25"
    assert result["counts"]["feedback"]["records"] == 1


def test_a_label_for_a_prediction_served_longer_ago_than_the_age_limit_is_not_trained_on(
    s3: S3Client, run: Run
) -> None:
    base_data(s3)
    [old] = capture(s3, "v1", NOW - timedelta(days=31), [{"tenure": 1, "contract": "monthly"}])
    feedback(s3, NOW - timedelta(days=2), {old: "1"})

    result = run(include_feedback=True, feedback_max_age_days=30, max_feedback_share=1.0)

    counts = result["counts"]["feedback"]
    assert (counts["records"], counts["expired"], counts["joined"]) == (1, 1, 0)
    # The UNLOAD may write an empty file: no row of it is trained on.
    assert result["counts"]["rows"]["feedback"] == 0 and feedback_rows(s3, result) == []


def test_a_label_that_does_not_fit_the_task_of_the_model_that_served_the_prediction_is_not_trained_on(
    s3: S3Client, run: Run
) -> None:
    base_data(s3)
    classified = capture(s3, "v1", NOW - timedelta(hours=2), [{"tenure": 1, "contract": "monthly"}] * 2)
    [estimated] = capture(
        s3, "v2", NOW - timedelta(hours=2), [{"tenure": 2, "contract": "yearly"}], answer={"value": 3.0}
    )
    # A number for a classifier's prediction, a label for a regressor's: neither is a training label.
    feedback(s3, NOW, {classified[0]: 0.25, estimated: "1", classified[1]: "0"})

    result = run(include_feedback=True, max_feedback_share=1.0)

    [row] = feedback_rows(s3, result)
    assert (row["tenure"], row["churned"]) == ("1", "0")
    assert (result["counts"]["feedback"]["misfits"], result["counts"]["feedback"]["joined"]) == (2, 1)


def test_a_prediction_served_before_the_hour_ends_that_reached_the_next_hours_partition_is_joined(
    s3: S3Client, run: Run
) -> None:
    base_data(s3)
    served = datetime(2026, 3, 1, 23, 59, 58, tzinfo=UTC)
    [late] = capture(s3, "v1", served, [{"tenure": 4, "contract": "monthly"}], arrived=served + timedelta(seconds=5))
    feedback(s3, NOW, {late: "1"})

    result = run(include_feedback=True, max_feedback_share=1.0)

    assert [row["tenure"] for row in feedback_rows(s3, result)] == ["4"]
    assert result["counts"]["feedback"]["unmatched"] == 0


def test_a_prediction_firehose_delivered_twice_is_one_training_row(s3: S3Client, run: Run) -> None:
    base_data(s3)
    served = NOW - timedelta(hours=3)
    [twice] = capture(s3, "v1", served, [{"tenure": 4, "contract": "monthly"}])
    listed = s3.list_objects_v2(Bucket=DATA_BUCKET, Prefix="captures/")["Contents"]
    put(s3, listed[0]["Key"].replace("part-", "retry-"), read(s3, listed[0]["Key"]))
    feedback(s3, NOW, {twice: "1"})

    result = run(include_feedback=True, max_feedback_share=1.0)

    assert len(feedback_rows(s3, result)) == 1 and result["counts"]["feedback"]["joined"] == 1


def test_a_feedback_record_without_an_id_is_counted_and_the_rest_still_joined(s3: S3Client, run: Run) -> None:
    base_data(s3)
    [served] = capture(s3, "v1", NOW - timedelta(hours=2), [{"tenure": 2, "contract": "monthly"}])
    feedback(s3, NOW, {served: "1"})
    put(s3, feedback_at(NOW, "part-2.json"), json.dumps({"time": NOW.isoformat(), "label": "1"}).encode() + b"\n")

    result = run(include_feedback=True, max_feedback_share=1.0)

    assert result["counts"]["feedback"]["joined"] == 1
    assert result["counts"]["feedback"]["invalid_ids"] == 1


def test_feedback_received_after_the_run_started_is_left_to_the_next_run(s3: S3Client, run: Run) -> None:
    base_data(s3)
    ids = capture(s3, "v1", NOW - timedelta(hours=2), [{"tenure": 2, "contract": "monthly"}] * 2)
    feedback(s3, NOW, {ids[0]: "1"})
    # Same hour partition, a second after the run's time: the UNLOAD and the counts agree to leave it out.
    feedback(s3, NOW + timedelta(seconds=1), {ids[1]: "0"}, name="part-2.json")

    result = run(include_feedback=True, max_feedback_share=1.0)

    assert [row["churned"] for row in feedback_rows(s3, result)] == ["1"]
    assert result["counts"]["feedback"]["records"] == 1


def test_the_fingerprint_is_stable_and_changes_with_the_data(s3: S3Client, run: Run) -> None:
    base_data(s3)
    first = run("v20260302-093000-aaaaaa", include_feedback=True)
    again = run("v20260302-093500-bbbbbb", include_feedback=True)
    assert first["fingerprint"] == again["fingerprint"]

    put(s3, "training-data/2026/feb.csv", HEADER + b"c3,12,monthly,1\n")
    changed_base = run("v20260302-094000-cccccc", include_feedback=True)
    [served] = capture(s3, "v1", NOW - timedelta(hours=2), [{"tenure": 2, "contract": "monthly"}])
    feedback(s3, NOW, {served: "1"})
    new_feedback = run("v20260302-094500-dddddd", include_feedback=True, max_feedback_share=1.0)

    fingerprints = {first["fingerprint"], changed_base["fingerprint"], new_feedback["fingerprint"]}
    assert len(fingerprints) == 3
    base = [(item["key"], item["etag"]) for item in changed_base["objects"] if item["key"].startswith("base/")]
    # Copies of single-part objects keep the source's ETag; an UNLOAD's file of no row is not in the fingerprint.
    assert changed_base["fingerprint"] == assembly.fingerprint(base)
    [written] = [item for item in new_feedback["objects"] if item["key"].startswith("feedback/")]
    base_only = assembly.fingerprint((item["key"], item["etag"]) for item in new_feedback["objects"][:-1])
    assert new_feedback["fingerprint"] == assembly.fingerprint(
        [("base/", base_only), (written["key"], written["etag"])]
    )


def test_with_include_feedback_off_only_the_base_data_is_assembled(s3: S3Client, run: Run) -> None:
    base_data(s3)
    [served] = capture(s3, "v1", NOW - timedelta(hours=2), [{"tenure": 2, "contract": "monthly"}])
    feedback(s3, NOW, {served: "1"})

    result = run(include_feedback=False)

    assert [item["key"] for item in result["objects"]] == ["base/2026/feb.csv", "base/2026/jan.csv"]
    listed = s3.list_objects_v2(Bucket=DATA_BUCKET, Prefix=result["prefix"] + "feedback/")
    assert listed["KeyCount"] == 0


def test_feedback_that_matches_no_capture_adds_no_row_but_is_counted(s3: S3Client, run: Run) -> None:
    base_data(s3)
    feedback(s3, NOW, {new_prediction_ids(1, NOW - timedelta(hours=1), ID_KEY)[0]: "1"})

    result = run(include_feedback=True)

    assert result["counts"]["feedback"]["unmatched"] == 1 and result["counts"]["feedback"]["joined"] == 0
    assert result["counts"]["rows"]["feedback"] == 0 and feedback_rows(s3, result) == []
    # No capture folder at all: the query reads no capture.
    assert result["counts"]["feedback"]["model_versions"] == 0


def test_a_target_missing_from_the_training_data_is_refused_before_anything_is_copied(s3: S3Client, run: Run) -> None:
    base_data(s3)
    with pytest.raises(AssemblyError, match="target column 'label' is not in the training data's header"):
        run(include_feedback=True, hyperparameters={"target": "label"})
    assert s3.list_objects_v2(Bucket=DATA_BUCKET, Prefix="assembled/")["KeyCount"] == 0


def test_base_columns_athena_would_take_for_one_name_are_refused_before_anything_is_copied(
    s3: S3Client, run: Run
) -> None:
    put(s3, "training-data/data.csv", b"Tenure,tenure,churned\n1,2,0\n")
    with pytest.raises(AssemblyError, match="columns 'Tenure' and 'tenure', the same name to Athena"):
        run(include_feedback=True)
    assert s3.list_objects_v2(Bucket=DATA_BUCKET, Prefix="assembled/")["KeyCount"] == 0


def test_a_header_longer_than_the_first_ranged_read_is_read_whole(
    s3: S3Client, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(assembly, "HEADER_BYTES", 8)
    put(s3, "training-data/data.csv", b'"tenure, in months",contract,churned\n3,monthly,1\n')
    [served] = capture(s3, "v1", NOW - timedelta(hours=2), [{"tenure, in months": 2, "contract": "monthly"}])
    feedback(s3, NOW, {served: "0"})

    result = run(include_feedback=True, max_feedback_share=1.0)

    assert feedback_rows(s3, result) == [{"tenure, in months": "2", "contract": "monthly", "churned": "0"}]


HOSTILE = ['a "quoted" name', "back`tick", "semi; DROP TABLE captures; --", "select", "it's", "$.dotted[0]"]


def test_hostile_feature_names_are_columns_like_any_other(s3: S3Client, run: Run) -> None:
    header = [*HOSTILE, "churned"]
    line = ",".join('"' + name.replace('"', '""') + '"' for name in header)
    put(s3, "training-data/data.csv", f"{line}\n1,2,3,4,5,6,0\n".encode())
    features = {name: f"value of {name}" for name in HOSTILE}
    [served] = capture(s3, "v1", NOW - timedelta(hours=2), [features])
    feedback(s3, NOW, {served: "1"})

    result = run(include_feedback=True, max_feedback_share=1.0)

    # Athena's UNLOAD writes the names in lower case (the local engine keeps their case): the training program
    # matches them to the header's whatever the case.
    [row] = feedback_rows(s3, result)
    assert {name.lower(): value for name, value in row.items()} == {
        **{name.lower(): value for name, value in features.items()},
        "churned": "1",
    }
    assert result["counts"]["feedback"]["missing_columns"] == []


def test_parquet_base_data_is_copied_but_neither_counted_nor_joined(s3: S3Client, run: Run) -> None:
    put(s3, "training-data/data.parquet", b"PAR1...PAR1")

    result = run(include_feedback=True)

    assert result["counts"]["base"]["rows"] is None
    assert result["counts"]["feedback"]["skipped"] == "the base data has no CSV file to take the columns from"
    assert "unload" not in run.plan


# -- the feedback cap ---------------------------------------------------------------------------------------------


def feedback_from(s3: S3Client, caller: dict[str, str | None], labels: dict[str, str], name: str) -> None:
    """Feedback as the API records it with its caller (helper A's ``caller`` object)."""
    records = [
        {**FeedbackRecord(pid, NOW.isoformat(), label=label).to_dict(), "caller": caller}
        for pid, label in labels.items()
    ]
    put(s3, feedback_at(NOW, name), "".join(json.dumps(r) + "\n" for r in records).encode())


def served(s3: S3Client, count: int, model_version: str = "v1") -> list[str]:
    """``count`` captured predictions."""
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


def test_feedback_beyond_its_share_of_the_training_set_is_left_out_and_counted(s3: S3Client, run: Run) -> None:
    base_data(s3)  # 3 base rows
    ids = served(s3, 6)
    feedback(s3, NOW, dict.fromkeys(ids, "1"))

    result = run(include_feedback=True, max_feedback_share=0.4)

    written = feedback_rows(s3, result)
    counts = result["counts"]
    assert len(written) == 2 == counts["rows"]["feedback"]
    assert (counts["feedback"]["joined"], counts["feedback"]["max_rows"], counts["feedback"]["capped"]) == (6, 2, 4)
    base = counts["rows"]["base"]
    assert counts["rows"]["feedback"] <= 0.4 * (base + counts["rows"]["feedback"])


def test_a_caller_flooding_feedback_does_not_crowd_out_the_other_callers(s3: S3Client, run: Run) -> None:
    base_data(s3)  # 3 base rows; a share of 0.5 allows 3 feedback rows
    flood, alice, bob = served(s3, 10, "v1"), served(s3, 1, "v2"), served(s3, 1, "v3")
    feedback_from(s3, {"principal": "arn:aws:iam::1:user/alice", "source_ip": "10.0.0.1"}, {alice[0]: "1"}, "a.json")
    feedback_from(s3, {"principal": None, "api_key_id": "key-bob", "source_ip": "10.0.0.2"}, {bob[0]: "0"}, "b.json")
    # The flood comes from one API key through many addresses, and arrives last.
    for index, prediction_id in enumerate(flood):
        caller = {"principal": None, "api_key_id": "key-mallory", "source_ip": f"192.0.2.{index}"}
        feedback_from(s3, caller, {prediction_id: "1"}, f"z-{index:02}.json")

    result = run(include_feedback=True, max_feedback_share=0.5)

    labels = sorted(str(row["churned"]) for row in feedback_rows(s3, result))
    assert labels == ["0", "1", "1"]  # bob's, alice's and one of the flood's
    assert result["counts"]["feedback"]["callers"] == 3 and result["counts"]["feedback"]["capped"] == 9


def test_one_role_under_a_thousand_session_names_is_one_caller_for_the_cap(s3: S3Client, run: Run) -> None:
    base_data(s3)  # 3 base rows; a share of 0.5 allows 3 feedback rows
    flood, alice = served(s3, 1000, "v1"), served(s3, 1, "v2")
    # As the API records them: each session of the role chose its own name.
    role_session = "arn:aws:sts::123456789012:assumed-role/bot/s-{}"
    sessions = [
        FeedbackRecord(pid, NOW.isoformat(), label="1", caller=Caller(role_session.format(index)))
        for index, pid in enumerate(flood)
    ]
    alice_arn = "arn:aws:iam::123456789012:user/alice"
    honest = FeedbackRecord(alice[0], NOW.isoformat(), label="0", caller=Caller(alice_arn))
    put(s3, feedback_at(NOW, "feedback.json"), to_json_lines([*sessions, honest]))

    result = run(include_feedback=True, max_feedback_share=0.5)

    assert result["counts"]["feedback"]["callers"] == 2
    assert sorted(str(row["churned"]) for row in feedback_rows(s3, result)) == ["0", "1", "1"]


def kept_ids(s3: S3Client, run: Run, version: str) -> set[str]:
    """The prediction ids whose feedback the run ``version`` keeps (tenure is the id's index here)."""
    result = run(version, include_feedback=True, max_feedback_share=0.5)
    return {str(row["tenure"]) for row in feedback_rows(s3, result)}


def test_the_selection_depends_on_the_runs_version_not_on_the_order_feedback_arrived_in(s3: S3Client, run: Run) -> None:
    base_data(s3)  # a share of 0.5 keeps 3 of the 40
    ids = capture(s3, "v1", NOW - timedelta(hours=1), [{"tenure": index} for index in range(40)])
    feedback(s3, NOW, dict.fromkeys(ids, "1"))
    first = kept_ids(s3, run, "v20260302-093000-aaaaaa")
    other = kept_ids(s3, run, "v20260302-093000-bbbbbb")
    # The same feedback arriving in the opposite order, for the same version.
    s3.delete_object(Bucket=DATA_BUCKET, Key=feedback_at(NOW, "part-1.json"))
    for index, prediction_id in enumerate(reversed(ids)):
        feedback(s3, NOW, {prediction_id: "1"}, name=f"part-{index:02}.json")
    s3.delete_objects(
        Bucket=DATA_BUCKET,
        Delete={
            "Objects": [
                {"Key": item["Key"]}
                for item in s3.list_objects_v2(Bucket=DATA_BUCKET, Prefix="assembled/")["Contents"]
                if "-aaaaaa/" in item["Key"]
            ]
        },
    )

    assert len(first) == 3 and kept_ids(s3, run, "v20260302-093000-aaaaaa") == first
    assert other != first
    # Not "the first ids" either: a caller cannot pick ids that rank first without knowing the run's version.
    assert first != {"0", "1", "2"}


def test_with_base_rows_not_all_countable_the_cap_counts_only_the_rows_read(s3: S3Client, run: Run) -> None:
    base_data(s3)  # 3 CSV rows, and a Parquet file whose rows are not counted
    put(s3, "training-data/2026/mar.parquet", b"PAR1...PAR1")
    feedback(s3, NOW, dict.fromkeys(served(s3, 5), "1"))

    result = run(include_feedback=True, max_feedback_share=0.5)

    assert result["counts"]["base"]["rows"] is None
    assert result["counts"]["feedback"]["max_rows"] == 3 and result["counts"]["rows"]["feedback"] == 3


def test_csv_past_the_counting_budget_is_not_counted_and_the_cap_stays_within_the_share(
    s3: S3Client, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    base_data(s3)
    # Only feb.csv (1 row; listed first) fits the budget; jan.csv's 2 rows are not counted.
    monkeypatch.setattr(assembly, "MAX_COUNTED_BYTES", len(BASE["training-data/2026/feb.csv"]))
    feedback(s3, NOW, dict.fromkeys(served(s3, 5), "1"))

    result = run(include_feedback=True, max_feedback_share=0.5)

    assert result["counts"]["base"]["rows"] is None
    assert result["counts"]["feedback"]["max_rows"] == 1 and result["counts"]["rows"]["feedback"] == 1


# -- values new to the champion -----------------------------------------------------------------------------------

CHAMPION = "v20260301-080000-champn"


def champion_knows(s3: S3Client, features: list[dict[str, Any]]) -> None:
    """A live champion whose registered metadata records ``features`` (what Assemble reads of it)."""
    metadata = ModelMetadata(
        task="classification",
        target="churned",
        features=tuple(Feature.from_dict(feature) for feature in features),
        classes=("0", "1"),
        algorithm="random_forest",
        primary_metric="roc_auc",
        metrics={},
        baseline={},
        training_data={},
        hyperparameters={},
        libraries={},
        created_at=NOW.isoformat(),
    ).to_dict()
    registry = "registry/"
    s3.put_object(
        Bucket=MODEL_BUCKET, Key=f"{registry}versions/{CHAMPION}/metadata.json", Body=json.dumps(metadata).encode()
    )
    pointer = {
        "version": CHAMPION,
        "archive_key": "a",
        "sha256": "0",
        "promoted_at": NOW.isoformat(),
        "decision_id": "d",
    }
    s3.put_object(Bucket=MODEL_BUCKET, Key=f"{registry}champion.json", Body=json.dumps(pointer).encode())


KNOWN: list[dict[str, Any]] = [
    {"name": "tenure", "type": "numeric", "minimum": 0.0, "maximum": 72.0},
    {"name": "contract", "type": "categorical", "categories": ["monthly", "yearly", 'it\'s "ünïcode"']},
]


def labelled_by(s3: S3Client, callers: list[str], instance: dict[str, Any], name: str) -> None:
    """One captured prediction of ``instance`` per caller (a role's session ARN or a user ARN), each labelled 0."""
    for index, principal in enumerate(callers):
        [prediction_id] = capture(s3, "v1", NOW - timedelta(hours=1), [instance])
        record = FeedbackRecord(prediction_id, NOW.isoformat(), label="0", caller=Caller(principal))
        put(s3, feedback_at(NOW, f"{name}-{index:03}.json"), to_json_lines([record]))


MALLORY = "arn:aws:sts::123456789012:assumed-role/mallory/s-{}"
USERS = "arn:aws:iam::123456789012:user/u{}"


def test_a_new_category_one_caller_used_under_many_sessions_is_held_out_and_counted(s3: S3Client, run: Run) -> None:
    base_data(s3)
    champion_knows(s3, KNOWN)
    backdoor = {"tenure": 2, "contract": "zz-backdoor"}
    labelled_by(s3, [MALLORY.format(index) for index in range(20)], backdoor, "mallory")
    labelled_by(s3, [USERS.format(1)], {"tenure": 5, "contract": "monthly"}, "honest")

    result = run(include_feedback=True, max_feedback_share=1.0)

    assert [row["contract"] for row in feedback_rows(s3, result)] == ["monthly"]
    counts = result["counts"]["feedback"]
    assert (counts["joined"], counts["held"], counts["capped"], result["counts"]["rows"]["feedback"]) == (21, 20, 0, 1)
    assert counts["new_values"] == {
        "reference": CHAMPION,
        "min_callers": 3,
        "values": [{"feature": "contract", "value": "zz-backdoor", "rows": 20, "callers": 1, "held": True}],
        "values_truncated": False,
    }
    # The plan names the champion FinishAssembly re-reads.
    assert run.plan["feedback"]["reference"] == CHAMPION


def test_a_new_category_k_callers_used_is_trained_on(s3: S3Client, run: Run) -> None:
    base_data(s3)
    champion_knows(s3, KNOWN)
    labelled_by(s3, [USERS.format(index) for index in range(3)], {"tenure": 2, "contract": "two-year"}, "users")

    result = run(include_feedback=True, max_feedback_share=1.0)

    assert [row["contract"] for row in feedback_rows(s3, result)] == ["two-year"] * 3
    counts = result["counts"]["feedback"]
    assert counts["held"] == 0
    assert counts["new_values"]["values"] == [
        {"feature": "contract", "value": "two-year", "rows": 3, "callers": 3, "held": False}
    ]


def test_a_number_outside_the_champions_range_needs_k_callers_on_its_side(s3: S3Client, run: Run) -> None:
    base_data(s3)
    champion_knows(s3, KNOWN)
    # Above the range: one caller; below it: three.
    labelled_by(s3, [MALLORY.format(index) for index in range(5)], {"tenure": 900, "contract": "monthly"}, "high")
    labelled_by(s3, [USERS.format(index) for index in range(3)], {"tenure": -1, "contract": "monthly"}, "low")

    result = run(include_feedback=True, max_feedback_share=1.0)

    assert sorted(str(row["tenure"]) for row in feedback_rows(s3, result)) == ["-1"] * 3
    counts = result["counts"]["feedback"]
    assert counts["held"] == 5
    assert counts["new_values"]["values"] == [
        {"feature": "tenure", "value": "above", "rows": 5, "callers": 1, "held": True},
        {"feature": "tenure", "value": "below", "rows": 3, "callers": 3, "held": False},
    ]


def test_known_categories_and_numbers_within_the_range_are_trained_on_whoever_sent_them(s3: S3Client, run: Run) -> None:
    base_data(s3)
    champion_knows(s3, KNOWN)
    known: list[dict[str, Any]] = [
        {"tenure": 0, "contract": "yearly"},
        {"tenure": 72, "contract": 'it\'s "ünïcode"'},
        {"contract": None},
    ]
    for index, instance in enumerate(known):
        labelled_by(s3, [MALLORY.format(index)], instance, f"known-{index}")

    result = run(include_feedback=True, max_feedback_share=1.0)

    assert len(feedback_rows(s3, result)) == 3
    counts = result["counts"]["feedback"]
    assert counts["held"] == 0 and counts["new_values"]["values"] == []


def test_a_champion_with_more_categories_than_a_query_can_hold_fails_the_plan_saying_so(s3: S3Client, run: Run) -> None:
    base_data(s3)
    champion_knows(
        s3, [{"name": "contract", "type": "categorical", "categories": [f"plan-{i:06}" for i in range(20_000)]}]
    )
    labelled_by(s3, [USERS.format(1)], {"tenure": 5, "contract": "monthly"}, "honest")

    with pytest.raises(AssemblyError, match=rf"or the champion {CHAMPION} too many categories \(20000\)"):
        run(include_feedback=True)
