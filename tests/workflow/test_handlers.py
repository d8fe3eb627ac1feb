from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

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
}


@pytest.fixture
def lambda_env(monkeypatch: pytest.MonkeyPatch, s3: S3Client) -> Iterator[None]:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    handlers._settings.cache_clear()
    handlers._s3.cache_clear()
    yield
    handlers._settings.cache_clear()
    handlers._s3.cache_clear()


def test_prepare_handler_reads_its_settings_from_the_environment(lambda_env: None, s3: S3Client) -> None:
    s3.put_object(Bucket=DATA_BUCKET, Key="training-data/data.csv", Body=b"x,churned\n1,0\n")

    result = handlers.prepare({"trigger": {"source": "alarm", "alarm_name": "drift"}}, None)

    assert result["training_job_name"].startswith("driftloop-dev-v")
    assert result["hyperparameters"] == {"target": "churned"}
    assert result["trigger"] == {"source": "alarm", "alarm_name": "drift"}


def test_record_failure_handler_writes_a_failed_decision(lambda_env: None) -> None:
    result = handlers.record_failure({"error": {"Error": "States.Timeout", "Cause": "took too long"}}, None)
    assert result["message"].endswith("States.Timeout: took too long")


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("DRIFTLOOP_MODEL_BUCKET", "", "DRIFTLOOP_MODEL_BUCKET is required"),
        ("DRIFTLOOP_HYPERPARAMETERS", "{not json", "DRIFTLOOP_HYPERPARAMETERS is not JSON"),
        ("DRIFTLOOP_HYPERPARAMETERS", "[1]", "must be a JSON object"),
    ],
)
def test_settings_name_the_variable_that_is_wrong(name: str, value: str, problem: str) -> None:
    with pytest.raises(SettingsError, match=problem):
        WorkflowSettings.from_env({**ENV, name: value})
