"""The monitor's data-quality check: captures that break a constraints.json, counted by Athena in one scan, reported
in Model Monitor's constraint_violations.json shape and published as ConstraintViolations."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from functions.common.athena import Athena
from functions.common.bundle import CONSTRAINTS_FILE
from functions.common.constraints import CheckType
from functions.common.registry import Registry
from functions.monitor.run import run_monitor
from tests.monitor.world import (
    SERVICE,
    SETTINGS,
    churn_rows,
    classification_metadata,
    emf_published,
    predictions,
    publish_champion,
    write_captures,
)
from tests.plugins.athena import LocalAthena
from tests.plugins.aws import DATA_BUCKET, MODEL_BUCKET

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

VERSION = "v20261207-090000-abcdef"
NOW = datetime.now(UTC).replace(microsecond=0)


def constraints(**config: Any) -> dict[str, Any]:
    """tenure: a whole, non-negative number below 120, nearly always present; plan: basic or premium."""
    return {
        "version": 0,
        "features": [
            {
                "name": "tenure",
                "inferred_type": "Integral",
                "completeness": 0.9,
                "num_constraints": {"is_non_negative": True, "max": 120},
            },
            {
                "name": "plan",
                "inferred_type": "String",
                "completeness": 1.0,
                "string_constraints": {"domains": ["basic", "premium"]},
                "monitoringConfigOverrides": {},
            },
        ],
        "monitoring_config": {"evaluate_constraints": "Enabled", "emit_metrics": "Enabled", **config},
    }


def registry(s3: S3Client) -> Registry:
    return Registry(s3, MODEL_BUCKET, SETTINGS.registry_prefix)


def serve(s3: S3Client, rows: list[dict[str, Any]]) -> None:
    served = predictions(VERSION, NOW - timedelta(minutes=20), rows, label="no", probabilities={"no": 0.8, "yes": 0.2})
    write_captures(s3, served)


def bad_rows() -> list[dict[str, Any]]:
    """40 rows like training, then one of each fault: 5 without tenure, 2 with text or a fraction for tenure, 3
    negative, 1 above 120, 4 on a plan outside the domain."""
    rows = churn_rows(40, shifted=False)
    rows[0:5] = [{"plan": "basic"}] * 5
    rows[5:7] = [{"tenure": "twelve", "plan": "basic"}, {"tenure": 2.5, "plan": "basic"}]
    rows[7:10] = [{"tenure": -1, "plan": "premium"}] * 3
    rows[10] = {"tenure": 150, "plan": "premium"}
    rows[11:15] = [{"tenure": 3, "plan": "gold"}] * 4
    return rows


def report(s3: S3Client, key: str) -> dict[str, Any]:
    return dict(json.loads(s3.get_object(Bucket=DATA_BUCKET, Key=key)["Body"].read()))


def violations(s3: S3Client, key: str) -> dict[tuple[str, str], str]:
    document = report(s3, key)["data_quality"]["constraint_violations"]
    return {(v["feature_name"], v["constraint_check_type"]): v["description"] for v in document["violations"]}


def constraint_metrics(stdout: str) -> dict[tuple[tuple[str, str], ...], float]:
    published = emf_published(stdout, NOW)
    return {dims: value for (name, dims), value in published.items() if name == "ConstraintViolations"}


def test_captures_that_break_each_constraint_are_reported_as_model_monitor_violations(
    s3: S3Client, athena: Athena, local_athena: LocalAthena, capsys: pytest.CaptureFixture[str]
) -> None:
    publish_champion(s3, VERSION, classification_metadata())
    registry(s3).put_constraints(json.dumps(constraints()).encode(), None)
    serve(s3, bad_rows())

    summary = run_monitor(SETTINGS, NOW, s3, athena)

    found = violations(s3, summary["report"])
    assert set(found) == {
        ("tenure", "completeness_check"),
        ("tenure", "data_type_check"),
        ("tenure", "non_negative_check"),
        ("tenure", "range_check"),
        ("plan", "categorical_values_check"),
    }
    assert "5 of 40 values missing" in found[("tenure", "completeness_check")]
    assert found[("tenure", "data_type_check")].startswith("2 of 35 present values are not Integral")
    assert found[("tenure", "non_negative_check")].startswith("3 negative values")
    assert found[("tenure", "range_check")].startswith("1 values outside [-, 120]")
    assert found[("plan", "categorical_values_check")].startswith("4 of 40 present values are outside the domain")
    quality = report(s3, summary["report"])["data_quality"]
    assert quality["constraints"].startswith("operator, every version")
    assert quality["checked_records"] == 40
    assert quality["counts"]["plan"] == {"missing": 0, "wrong_type": 0, "negative": 0, "out_of_range": 0, "unseen": 4}
    assert summary["constraint_violations"] == 5
    # One scan of the captures for every check.
    assert sum("sum(CASE WHEN" in query for query in local_athena.queries) == 1
    metrics = constraint_metrics(capsys.readouterr().out)
    assert metrics[(("Service", SERVICE),)] == 5
    per_check = {dims[0][1]: value for dims, value in metrics.items() if len(dims) == 2}
    assert per_check == {
        "completeness_check": 1,
        "data_type_check": 1,
        "non_negative_check": 1,
        "range_check": 1,
        "categorical_values_check": 1,
    }


def test_strings_that_are_the_champions_missing_tokens_count_as_missing_not_as_wrong_or_unseen(
    s3: S3Client, athena: Athena
) -> None:
    # Trained with missing_values=["NA"]: serving reads "NA" (and "") as a missing value, for either feature type.
    publish_champion(s3, VERSION, {**classification_metadata(), "missing_tokens": ["", "NA"]})
    registry(s3).put_constraints(json.dumps(constraints()).encode(), None)
    rows = churn_rows(40, shifted=False)
    rows[0:4] = [{"tenure": "NA", "plan": "basic"}] * 4
    rows[4:6] = [{"tenure": 3, "plan": "NA"}] * 2
    rows[6] = {"tenure": 3, "plan": ""}
    rows[7] = {"tenure": "none", "plan": "none"}  # not a token: a wrong type, an unseen category
    serve(s3, rows)

    summary = run_monitor(SETTINGS, NOW, s3, athena)

    counts = report(s3, summary["report"])["data_quality"]["counts"]
    assert counts["tenure"] == {"missing": 4, "wrong_type": 1, "negative": 0, "out_of_range": 0, "unseen": 0}
    assert counts["plan"] == {"missing": 3, "wrong_type": 0, "negative": 0, "out_of_range": 0, "unseen": 1}


def test_thresholds_let_a_few_wrong_types_and_unseen_values_through(
    s3: S3Client, athena: Athena, capsys: pytest.CaptureFixture[str]
) -> None:
    publish_champion(s3, VERSION, classification_metadata())
    lenient = constraints(datatype_check_threshold=0.9, domain_content_threshold=0.8)
    registry(s3).put_constraints(json.dumps(lenient).encode(), None)
    serve(s3, bad_rows())

    summary = run_monitor(SETTINGS, NOW, s3, athena)

    # 33 of 35 tenures are whole numbers (0.94 >= 0.9), 36 of 40 plans known (0.9 >= 0.8).
    assert {check for _, check in violations(s3, summary["report"])} == {
        "completeness_check",
        "non_negative_check",
        "range_check",
    }
    assert constraint_metrics(capsys.readouterr().out)[(("Service", SERVICE),)] == 3


def test_a_clean_window_publishes_zero_violations_per_check(
    s3: S3Client, athena: Athena, capsys: pytest.CaptureFixture[str]
) -> None:
    publish_champion(s3, VERSION, classification_metadata())
    registry(s3).put_constraints(json.dumps(constraints()).encode(), None)
    serve(s3, churn_rows(30, shifted=False))

    summary = run_monitor(SETTINGS, NOW, s3, athena)

    assert violations(s3, summary["report"]) == {}
    metrics = constraint_metrics(capsys.readouterr().out)
    assert len(metrics) == 1 + len(CheckType)
    assert set(metrics.values()) == {0}


def test_the_versions_own_constraints_win_over_the_operators_default_and_the_training_ones(
    s3: S3Client, athena: Athena
) -> None:
    trained = json.dumps(constraints()).encode()
    metadata = {**classification_metadata(), "files": {CONSTRAINTS_FILE: hashlib.sha256(trained).hexdigest()}}
    publish_champion(s3, VERSION, metadata)
    store = registry(s3)
    s3.put_object(Bucket=MODEL_BUCKET, Key=store.version_key(VERSION, CONSTRAINTS_FILE), Body=trained)
    serve(s3, bad_rows())

    first = report(s3, run_monitor(SETTINGS, NOW, s3, athena)["report"])["data_quality"]
    assert first["constraints"].startswith("training: ")
    assert len(first["constraint_violations"]["violations"]) == 5

    only_plan = {"version": 0, "features": [{"name": "plan", "inferred_type": "String"}]}
    store.put_constraints(json.dumps(only_plan).encode(), None)
    store.put_constraints(json.dumps({"version": 0, "features": []}).encode(), VERSION)
    later = NOW + timedelta(seconds=1)
    second = report(s3, run_monitor(SETTINGS, later, s3, athena)["report"])["data_quality"]
    assert second["constraints"].startswith("operator, this version")
    assert second["constraint_violations"] == {"violations": []}


def test_training_constraints_that_do_not_match_their_bundles_checksum_fail_the_run(
    s3: S3Client, athena: Athena
) -> None:
    metadata = {**classification_metadata(), "files": {CONSTRAINTS_FILE: "0" * 64}}
    publish_champion(s3, VERSION, metadata)
    key = registry(s3).version_key(VERSION, CONSTRAINTS_FILE)
    s3.put_object(Bucket=MODEL_BUCKET, Key=key, Body=json.dumps(constraints()).encode())
    serve(s3, bad_rows())

    with pytest.raises(Exception, match="checksum"):
        run_monitor(SETTINGS, NOW, s3, athena)


def test_without_constraints_the_report_says_so_and_no_violation_metric_is_published(
    s3: S3Client, athena: Athena, capsys: pytest.CaptureFixture[str]
) -> None:
    publish_champion(s3, VERSION, classification_metadata())
    serve(s3, bad_rows())

    summary = run_monitor(SETTINGS, NOW, s3, athena)

    document = report(s3, summary["report"])
    assert document["data_quality"] is None
    assert any("no constraints.json" in note for note in document["notes"])
    assert constraint_metrics(capsys.readouterr().out) == {}


def test_disabled_metrics_still_report_and_disabled_evaluation_checks_nothing(
    s3: S3Client, athena: Athena, local_athena: LocalAthena, capsys: pytest.CaptureFixture[str]
) -> None:
    publish_champion(s3, VERSION, classification_metadata())
    store = registry(s3)
    store.put_constraints(json.dumps(constraints(emit_metrics="Disabled")).encode(), None)
    serve(s3, bad_rows())

    quiet = run_monitor(SETTINGS, NOW, s3, athena)
    assert len(violations(s3, quiet["report"])) == 5
    assert constraint_metrics(capsys.readouterr().out) == {}

    store.put_constraints(json.dumps(constraints(evaluate_constraints="Disabled")).encode(), None)
    scans = len(local_athena.queries)
    off = run_monitor(SETTINGS, NOW + timedelta(seconds=1), s3, athena)
    assert report(s3, off["report"])["data_quality"] is None
    assert not any("sum(CASE WHEN" in query for query in local_athena.queries[scans:])


def test_constraints_too_long_for_an_athena_query_are_noted_and_do_not_blind_the_monitor(
    s3: S3Client, athena: Athena, capsys: pytest.CaptureFixture[str]
) -> None:
    publish_champion(s3, VERSION, classification_metadata())
    huge = {
        "name": "plan",
        "inferred_type": "String",
        "string_constraints": {"domains": [f"p{i:07}" for i in range(30_000)]},
    }
    registry(s3).put_constraints(json.dumps({"version": 0, "features": [huge]}).encode(), None)
    serve(s3, bad_rows())

    summary = run_monitor(SETTINGS, NOW, s3, athena)

    assert summary["outcome"] == "covered"
    document = report(s3, summary["report"])
    assert document["data_quality"] is None
    assert any("above Athena's 262144: check fewer features" in note for note in document["notes"])
    assert constraint_metrics(capsys.readouterr().out) == {}
