from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from functions.workflow import handlers
from functions.workflow.settings import SettingsError, WorkflowSettings
from tests.plugins.aws import DATA_BUCKET, MODEL_BUCKET

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

ENV = {
    "DRIFTLOOP_MODEL_BUCKET": MODEL_BUCKET,
    "DRIFTLOOP_DATA_BUCKET": DATA_BUCKET,
    "DRIFTLOOP_TRAINING_DATA_PREFIX": "training-data/",
    "DRIFTLOOP_ARTIFACT_PREFIX": "training-jobs/",
    "DRIFTLOOP_JOB_PREFIX": "driftloop-dev",
    "DRIFTLOOP_HYPERPARAMETERS": '{"target": "churned"}',
    "DRIFTLOOP_ASSEMBLED_PREFIX": "assembled/",
    "DRIFTLOOP_CAPTURE_PREFIX": "captures/",
    "DRIFTLOOP_FEEDBACK_PREFIX": "feedback/",
    "DRIFTLOOP_INCLUDE_FEEDBACK": "false",
    "DRIFTLOOP_FEEDBACK_MAX_AGE_DAYS": "30",
    "DRIFTLOOP_COOLDOWN_MINUTES": "60",
    "DRIFTLOOP_LOCK_TIMEOUT_SECONDS": "7200",
}
EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:driftloop-dev-training:run-1"


@pytest.fixture
def lambda_env(monkeypatch: pytest.MonkeyPatch, s3: S3Client) -> Iterator[None]:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    handlers._settings.cache_clear()
    handlers._s3.cache_clear()
    yield
    handlers._settings.cache_clear()
    handlers._s3.cache_clear()


def test_a_run_through_the_handlers_takes_the_lock_assembles_prepares_and_releases(
    lambda_env: None, s3: S3Client
) -> None:
    s3.put_object(Bucket=DATA_BUCKET, Key="training-data/data.csv", Body=b"x,churned\n1,0\n")
    state: dict[str, Any] = {"trigger": {"source": "alarm", "alarm_name": "drift"}}

    state["guard"] = handlers.guard(
        {"execution_id": EXECUTION, "started_at": "2026-01-05T10:00:00Z", "state": state}, None
    )
    state["assembly"] = handlers.assemble(state, None)
    state["prepare"] = handlers.prepare(state, None)
    state["rejection"] = {"version": state["guard"]["version"]}
    released = handlers.release({"execution_id": EXECUTION, "state": state}, None)

    assert state["guard"]["acquired"] is True
    assert state["assembly"]["prefix"] == f"assembled/{state['guard']['version']}/"
    assert state["prepare"]["training_job_name"] == f"driftloop-dev-{state['guard']['version']}"
    assert state["prepare"]["hyperparameters"] == {"target": "churned"}
    assert state["prepare"]["trigger"] == {"source": "alarm", "alarm_name": "drift"}
    assert released == {"released": True, "outcome": "rejected", "message": f"released by {EXECUTION} (rejected)"}
    # The cooldown (60 minutes from the environment) now holds the next trigger back.
    skipped = handlers.guard({"execution_id": EXECUTION + "-2", "state": {"trigger": {"source": "schedule"}}}, None)
    assert skipped["acquired"] is False and skipped["reason"].startswith("cooldown")


def test_record_failure_handler_writes_a_failed_decision(lambda_env: None) -> None:
    result = handlers.record_failure({"error": {"Error": "States.Timeout", "Cause": "took too long"}}, None)
    assert result["message"].endswith("States.Timeout: took too long")


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("DRIFTLOOP_MODEL_BUCKET", "", "DRIFTLOOP_MODEL_BUCKET is required"),
        ("DRIFTLOOP_HYPERPARAMETERS", "{not json", "DRIFTLOOP_HYPERPARAMETERS is not JSON"),
        ("DRIFTLOOP_HYPERPARAMETERS", "[1]", "must be a JSON object"),
        ("DRIFTLOOP_INCLUDE_FEEDBACK", "yes", "must be 'true' or 'false'"),
        ("DRIFTLOOP_COOLDOWN_MINUTES", "-1", "must be at least 0"),
        ("DRIFTLOOP_LOCK_TIMEOUT_SECONDS", "2h", "must be an integer"),
    ],
)
def test_settings_name_the_variable_that_is_wrong(name: str, value: str, problem: str) -> None:
    with pytest.raises(SettingsError, match=problem):
        WorkflowSettings.from_env({**ENV, name: value})
