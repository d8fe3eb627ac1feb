"""A whole batch run through the three handlers on moto S3: resolve once, score each object, summarise."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pytest

from functions.batch import handlers
from functions.batch.job import BatchRefused
from functions.batch.layout import BATCH
from functions.common.bundle import pack_archive
from functions.common.records import CAPTURE_MARKER
from functions.common.registry import Registry, RegistryError, new_version_id
from tests.batch.conftest import csv_bytes
from tests.plugins.aws import DATA_BUCKET, MODEL_BUCKET

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

PREFIX = BATCH.input_prefix + "june/"


@pytest.fixture
def environment(s3: S3Client, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.setenv("DRIFTLOOP_MODEL_BUCKET", MODEL_BUCKET)
    monkeypatch.setenv("DRIFTLOOP_DATA_BUCKET", DATA_BUCKET)
    monkeypatch.setenv("DRIFTLOOP_WORK_DIR", str(tmp_path / "work"))
    for cached in (handlers._settings, handlers._s3, handlers._source):
        cached.cache_clear()
    handlers._loaded.clear()
    yield
    for cached in (handlers._settings, handlers._s3, handlers._source):
        cached.cache_clear()
    handlers._loaded.clear()


@pytest.fixture
def publish(registry: Registry, trained_bundle: Path, tmp_path: Path) -> Callable[[bool], str]:
    def publish(promote: bool) -> str:
        version = new_version_id()
        archive = tmp_path / f"{version}.tar.gz"
        pack_archive(trained_bundle, archive)
        registry.register(version, archive)
        if promote:
            registry.promote(version, expected=registry.champion())
        return version

    return publish


def run(s3: S3Client, request: dict[str, Any], name: str = "run-1") -> tuple[dict[str, Any], list[Exception]]:
    """What the state machine does: resolve, score every listed object (failures recorded), summarise."""
    job = handlers.resolve_handler({"request": request, "run": name}, None)
    failures: list[Exception] = []
    for item in s3.list_objects_v2(Bucket=DATA_BUCKET, Prefix=job["prefix"]).get("Contents", []):
        try:
            handlers.score_handler({"key": item["Key"], "job": job}, None)
        except handlers.ObjectFailed as exc:
            failures.append(exc)
    return handlers.summarise_handler({"job": job}, None), failures


def output_lines(s3: S3Client, key: str) -> list[dict[str, Any]]:
    body = s3.get_object(Bucket=DATA_BUCKET, Key=BATCH.output_key(key))["Body"].read()
    return [json.loads(line) for line in body.splitlines()]


def test_a_run_scores_every_csv_under_the_prefix_with_the_champion_and_reports_counts(
    environment: None, s3: S3Client, publish: Callable[[bool], str], rows: pd.DataFrame
) -> None:
    champion = publish(True)
    publish(False)  # a newer version that is not the champion
    broken = csv_bytes(rows.head(4)).decode().replace("\n1,", "\nmany,", 1).encode()
    objects = {
        PREFIX + "a.csv": csv_bytes(rows.head(6)),
        PREFIX + "deep/b.csv": broken,
        PREFIX + "refused.csv": b"id,name\n1,x\n",
        PREFIX + "notes.txt": b"not scored",
    }
    for key, body in objects.items():
        s3.put_object(Bucket=DATA_BUCKET, Key=key, Body=body)
    summary, failures = run(s3, {"input": f"s3://{DATA_BUCKET}/{PREFIX}", "tolerated_failure_percent": 50})
    assert len(failures) == 1 and "refused.csv" in str(failures[0])
    assert summary["model_version"] == champion
    counts = {name: summary[name] for name in ("objects", "scored_objects", "failed_objects", "skipped_objects")}
    assert counts == {"objects": 4, "scored_objects": 2, "failed_objects": 1, "skipped_objects": 1}
    bad = sum("errors" in line for line in output_lines(s3, PREFIX + "deep/b.csv"))
    assert (summary["rows"], summary["scored_rows"], summary["bad_rows"]) == (10, 10 - bad, bad)
    assert summary["failures"][0]["key"] == PREFIX + "refused.csv"
    assert "lacks the features" in summary["failures"][0]["error"]
    assert summary["skipped"] == [PREFIX + "notes.txt"]
    assert summary["outcome"] == "succeeded"  # 1 of 3 failed: within the tolerated 50%
    assert summary["output"] == f"s3://{DATA_BUCKET}/{BATCH.output_prefix}june/"
    assert len(output_lines(s3, PREFIX + "a.csv")) == 6
    stored = json.loads(s3.get_object(Bucket=DATA_BUCKET, Key=BATCH.summary_key("run-1"))["Body"].read())
    assert stored["failed_objects"] == 1


def test_a_named_version_is_scored_instead_of_the_champion(
    environment: None, s3: S3Client, publish: Callable[[bool], str], rows: pd.DataFrame
) -> None:
    publish(True)
    named = publish(False)
    s3.put_object(Bucket=DATA_BUCKET, Key=PREFIX + "a.csv", Body=csv_bytes(rows.head(2)))
    summary, _ = run(s3, {"input": f"s3://{DATA_BUCKET}/{PREFIX}", "version": named})
    assert summary["model_version"] == named and summary["scored_rows"] == 2


def test_failures_beyond_the_tolerated_share_fail_the_run(
    environment: None, s3: S3Client, publish: Callable[[bool], str]
) -> None:
    publish(True)
    s3.put_object(Bucket=DATA_BUCKET, Key=PREFIX + "refused.csv", Body=b"id\n1\n")
    summary, _ = run(s3, {"input": f"s3://{DATA_BUCKET}/{PREFIX}", "tolerated_failure_percent": 0})
    assert summary["outcome"] == "failed"
    assert "0 of 1 objects scored, 1 failed (100.0%, tolerated 0%)" in summary["message"]


def test_an_object_without_a_result_counts_as_failed(
    environment: None, s3: S3Client, publish: Callable[[bool], str], rows: pd.DataFrame
) -> None:
    publish(True)
    job = handlers.resolve_handler({"request": {"input": f"s3://{DATA_BUCKET}/{PREFIX}"}, "run": "r"}, None)
    s3.put_object(Bucket=DATA_BUCKET, Key=PREFIX + "a.csv", Body=csv_bytes(rows.head(2)))
    summary = handlers.summarise_handler({"job": job}, None)  # its scoring never ran (a timeout, the Map stopped)
    assert summary["failed_objects"] == 1 and "no result" in summary["failures"][0]["error"]


@pytest.mark.parametrize(
    ("request_", "error", "match"),
    [
        ({"input": f"s3://other-bucket/{PREFIX}"}, BatchRefused, "batch scoring reads a prefix under"),
        ({"input": f"s3://{DATA_BUCKET}/captures/"}, BatchRefused, "batch scoring reads a prefix under"),
        ({"input": f"s3://{DATA_BUCKET}/{BATCH.input_prefix}"}, BatchRefused, "not the whole of it"),
        ({"input": "batch/input/june/"}, BatchRefused, "an S3 prefix like"),
        ({"input": f"s3://{DATA_BUCKET}/{PREFIX}", "capture": True}, BatchRefused, "captures nothing"),
        ({"input": f"s3://{DATA_BUCKET}/{PREFIX}", "tolerated_failure_percent": 101}, BatchRefused, "0 to 100"),
        ({"input": f"s3://{DATA_BUCKET}/{PREFIX}", "version": "v-unknown"}, RegistryError, "unknown version"),
    ],
)
def test_a_request_that_cannot_run_is_refused_before_any_object_is_read(
    environment: None, publish: Callable[[bool], str], request_: dict[str, Any], error: type[Exception], match: str
) -> None:
    publish(True)
    with pytest.raises(error, match=match):
        handlers.resolve_handler({"request": request_, "run": "r"}, None)


def test_without_a_champion_a_version_must_be_named(environment: None) -> None:
    with pytest.raises(BatchRefused, match="no champion"):
        handlers.resolve_handler({"request": {"input": f"s3://{DATA_BUCKET}/{PREFIX}"}, "run": "r"}, None)


def test_a_capturing_run_writes_every_scored_row_as_a_capture_line_of_its_log(
    environment: None,
    s3: S3Client,
    publish: Callable[[bool], str],
    rows: pd.DataFrame,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The stream the score function's log subscription feeds: its name only says this deployment captures.
    monkeypatch.setenv("DRIFTLOOP_CAPTURE_STREAM", "driftloop-test-captures")
    champion = publish(True)
    s3.put_object(Bucket=DATA_BUCKET, Key=PREFIX + "a.csv", Body=csv_bytes(rows.head(5)))
    capsys.readouterr()
    summary, _ = run(s3, {"input": f"s3://{DATA_BUCKET}/{PREFIX}", "capture": True}, name="run-c")
    assert (summary["captured"], summary["capture_lost"]) == (5, 0)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    records = [line for line in lines if line.get(CAPTURE_MARKER[0]) == CAPTURE_MARKER[1]]
    ids = [line["prediction_id"] for line in output_lines(s3, PREFIX + "a.csv")]
    assert sorted(record["prediction_id"] for record in records) == sorted(ids)
    assert {(record["model_version"], record["request_id"]) for record in records} == {(champion, "batch/run-c")}
