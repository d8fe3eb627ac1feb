"""``driftloop batch``: starts the batch state machine with the request, waits, prints counts and failures, and
exits non-zero when an object or the run failed."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cli import batch
from cli.main import build_parser

ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:driftloop-dev-batch"
EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:driftloop-dev-batch:batch-1"


def summary(**overrides: Any) -> dict[str, Any]:
    return {
        "run": "batch-1",
        "input": "s3://data/batch/input/june/",
        "objects": 2,
        "message": "2 of 2 objects scored, 0 failed (0.0%, tolerated 10%), 0 skipped; 12 of 13 rows scored, 1 bad",
        "model_version": "v1",
        "output": "s3://data/batch/output/june/",
        "failures": [],
        "failed_objects": 0,
        **overrides,
    }


class FakeStepFunctions:
    def __init__(self, outcomes: list[dict[str, Any]]) -> None:
        self.outcomes = outcomes
        self.started: list[dict[str, Any]] = []

    def start_execution(self, **request: Any) -> dict[str, str]:
        self.started.append(request)
        return {"executionArn": EXECUTION}

    def describe_execution(self, executionArn: str) -> dict[str, Any]:  # noqa: N803 - boto3's name
        return {"executionArn": executionArn, **self.outcomes.pop(0)}


def test_the_request_carries_the_input_version_capture_and_tolerance() -> None:
    args = build_parser().parse_args(
        ["batch", "--input", "s3://data/batch/input/june/", "--version", "v1", "--capture", "--tolerate", "5"]
    )
    sfn = FakeStepFunctions([])
    assert batch.start(sfn, ARN, {"input": args.input, "version": args.version}) == EXECUTION  # type: ignore[arg-type]
    assert args.capture is True and args.tolerate == 5.0
    started = sfn.started[0]
    assert started["stateMachineArn"] == ARN and started["name"].startswith("batch-")
    assert json.loads(started["input"]) == {"input": "s3://data/batch/input/june/", "version": "v1"}


def test_waiting_polls_until_the_run_ends_and_a_clean_run_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    sfn = FakeStepFunctions([{"status": "RUNNING"}, {"status": "SUCCEEDED", "output": json.dumps(summary())}])
    sleeps: list[float] = []
    described = batch.wait(sfn, EXECUTION, sleep=sleeps.append)  # type: ignore[arg-type]
    assert sleeps == [batch.POLL_SECONDS]
    assert batch.report(described) == 0
    printed = capsys.readouterr().out
    assert "12 of 13 rows scored, 1 bad" in printed and "s3://data/batch/output/june/" in printed


def test_a_failed_object_within_the_tolerated_share_still_exits_non_zero(capsys: pytest.CaptureFixture[str]) -> None:
    failures = [{"key": "batch/input/june/b.csv", "error": "the header lacks the features ['age']"}]
    output = summary(failures=failures, failed_objects=1)
    assert batch.report({"executionArn": EXECUTION, "status": "SUCCEEDED", "output": json.dumps(output)}) == 1
    assert "failed: batch/input/june/b.csv: the header lacks the features" in capsys.readouterr().out


def test_a_failed_run_prints_its_cause_and_where_its_summary_is(capsys: pytest.CaptureFixture[str]) -> None:
    execution = {
        "executionArn": EXECUTION,
        "status": "FAILED",
        "error": "driftloop.BatchFailed",
        "cause": "0 of 2 objects scored, 2 failed",
    }
    assert batch.report(execution) == 1
    printed = capsys.readouterr().out
    assert "driftloop.BatchFailed: 0 of 2 objects scored" in printed
    assert "batch/runs/batch-1/summary.json" in printed


def test_an_empty_prefix_is_an_error_not_a_clean_run(capsys: pytest.CaptureFixture[str]) -> None:
    output = summary(objects=0, message="0 of 0 objects scored")
    assert batch.report({"executionArn": EXECUTION, "status": "SUCCEEDED", "output": json.dumps(output)}) == 1
    assert "nothing to score: no object under s3://data/batch/input/june/" in capsys.readouterr().out
