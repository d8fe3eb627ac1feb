"""``driftloop train --remote``: the local command's training as a SageMaker job, through the SageMaker SDK.

The SDK runs against moto here (it records CreateTrainingJob and answers Completed); the integration test
tests/integration/test_9_sagemaker_sdk.py runs the same function against the local cloud, where the job really trains.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from cli import remote_training
from cli.command import CommandError
from cli.main import main
from cli.remote_training import RemoteTarget, describe, train_remote
from training.contract import METRIC_DEFINITIONS

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/driftloop-training:v1"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """moto in this process, and every CreateTrainingJob request the SDK sends."""
    for name in [name for name in os.environ if name.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    requests: list[dict[str, Any]] = []

    def session() -> Any:
        made = boto3.Session()
        made.events.register(
            "provide-client-params.sagemaker.CreateTrainingJob",
            lambda params, **_: requests.append(dict(params)),
        )
        return made

    monkeypatch.setattr(remote_training, "_session", session)
    with mock_aws():
        yield requests


def target() -> RemoteTarget:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="data")
    s3.create_bucket(Bucket="models")
    role = boto3.client("iam").create_role(RoleName="sagemaker", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    return RemoteTarget(IMAGE, role, "driftloop-dev", "s3://data/assembled/", "s3://models/training-jobs/")


def test_a_remote_run_sends_the_local_hyperparameters_unchanged_in_a_job_shaped_like_the_workflows(
    aws: list[dict[str, Any]], tmp_path: Path
) -> None:
    (tmp_path / "data" / "june").mkdir(parents=True)
    (tmp_path / "data" / "june" / "a.csv").write_text("x,y\n1,0\n")
    (tmp_path / "b.csv").write_text("x,y\n2,1\n")
    (tmp_path / "champion.tar.gz").write_bytes(b"archive")
    hyperparameters = {"target": "y", "drop_columns": '["Price, USD"]', "allow_schema_change": "true"}

    result = train_remote(
        target(), [tmp_path / "data", tmp_path / "b.csv"], hyperparameters, champion=tmp_path / "champion.tar.gz"
    )

    [request] = aws
    assert request["TrainingJobName"] == result.job_name
    assert result.job_name.startswith("driftloop-dev-remote-")  # the role's log streams allow driftloop-dev-*
    assert request["HyperParameters"] == hyperparameters
    assert request["AlgorithmSpecification"]["TrainingImage"] == IMAGE
    assert "ContainerEntrypoint" not in request["AlgorithmSpecification"]
    assert request["AlgorithmSpecification"]["MetricDefinitions"] == METRIC_DEFINITIONS
    assert request["RoleArn"] == "arn:aws:iam::123456789012:role/sagemaker"
    assert request["EnableNetworkIsolation"] is True
    assert request["OutputDataConfig"]["S3OutputPath"] == "s3://models/training-jobs/"
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in request["InputDataConfig"]}
    assert set(channels) == {"train", "champion"}
    run = channels["train"].removeprefix("s3://data/assembled/").removesuffix("/train/")
    assert run.startswith("driftloop-dev-remote-")
    keys = sorted(o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket="data")["Contents"])
    assert keys == [
        f"assembled/{run}/champion/model.tar.gz",
        f"assembled/{run}/train/b.csv",
        f"assembled/{run}/train/june/a.csv",
    ]
    assert result.completed
    assert result.model_uri == f"s3://models/training-jobs/{result.job_name}/output/model.tar.gz"


def test_a_failed_job_is_described_with_its_reason_and_the_command_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    failed = SimpleNamespace(
        training_job_name="driftloop-dev-remote-1",
        training_job_status="Failed",
        failure_reason="AlgorithmError: invalid hyperparameters: unknown hyperparameter 'max_dpeth', exit code: 1",
        final_metric_data_list=[],
        model_artifacts=None,
    )
    seen: dict[str, Any] = {}

    def run(given: RemoteTarget, data: list[Path], hyperparameters: dict[str, str], **options: Any) -> Any:
        seen.update(target=given, data=data, hyperparameters=hyperparameters, **options)
        return describe(failed)

    monkeypatch.setattr(remote_training, "stack_target", lambda stack: stack)
    monkeypatch.setattr(remote_training, "train_remote", run)
    argv = ["train", "--remote", "--stack", "s-training", "--data", str(tmp_path), "--hp", "target=y"]
    assert main([*argv, "--hp", "max_dpeth=3"]) == 1
    assert seen["target"] == "s-training"
    assert seen["hyperparameters"] == {"target": "y", "max_dpeth": "3"}
    assert (seen["instance_type"], seen["max_runtime_seconds"]) == ("ml.m5.large", 3600)
    assert capsys.readouterr().out.splitlines() == [
        "training job driftloop-dev-remote-1: Failed",
        f"failure reason: {failed.failure_reason}",
    ]


def test_a_job_sagemaker_refuses_is_a_command_error_with_its_reason(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    def refuse(*args: Any, **options: Any) -> Any:
        raise ClientError(
            {"Error": {"Code": "ValidationException", "Message": "TrainingImage is not driftloop's"}},
            "CreateTrainingJob",
        )

    monkeypatch.setattr(remote_training, "stack_target", lambda stack: stack)
    monkeypatch.setattr(remote_training, "train_remote", refuse)
    assert main(["train", "--remote", "--data", str(tmp_path), "--hp", "target=y"]) == 1
    assert capsys.readouterr().err.startswith(
        "driftloop: the training job could not run: An error occurred (ValidationException) when calling the "
        "CreateTrainingJob operation: TrainingImage is not driftloop's"
    )


def test_a_completed_job_prints_its_metrics_and_model_artifact() -> None:
    job = SimpleNamespace(
        training_job_name="j",
        training_job_status="Completed",
        failure_reason=None,
        final_metric_data_list=[SimpleNamespace(metric_name="roc_auc", value=0.91234)],
        model_artifacts=SimpleNamespace(s3_model_artifacts="s3://m/training-jobs/j/output/model.tar.gz"),
    )
    assert describe(job).summary().splitlines() == [
        "training job j: Completed",
        "metrics: roc_auc=0.9123",
        "model artifact: s3://m/training-jobs/j/output/model.tar.gz",
    ]


def test_a_stack_without_the_outputs_names_what_is_missing() -> None:
    with pytest.raises(CommandError) as error:
        RemoteTarget.from_outputs({"TrainingImageUri": IMAGE, "SageMakerRoleArn": "arn"}, "driftloop-dev-training")
    assert str(error.value).startswith(
        "the stack driftloop-dev-training has no output TrainingJobPrefix, TrainingInputUri, TrainingOutputUri"
    )


def test_a_local_run_still_needs_out(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["train", "--data", str(tmp_path), "--hp", "target=y"]) == 1
    assert "train needs --out" in capsys.readouterr().err
