"""The SageMaker Python SDK as a client of the deployed app on the local cloud: ``ModelTrainer`` runs driftloop's
image with the training stack's role and buckets, through ``driftloop train --remote``'s own function.

The job completes with its logs streamed, ``TrainingJob`` attaches and refreshes, its final metrics are in the
description and in CloudWatch by ``TrainingJobName``, the model artifact opens as a driftloop bundle, a bad
hyperparameter fails the job with driftloop's reason, and a job whose script AWS would run is refused. Tiny data
(300 rows, logistic regression): a few seconds per job.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from cli.remote_training import SDK_JOB_LOGGER, RemoteResult, RemoteTarget, train_remote
from functions.common.bundle import open_bundle
from functions.common.layout import split_s3_uri
from tests.integration.support import Deployed, wait_for
from training.synthetic import generate

pytestmark = pytest.mark.integration

HYPERPARAMETERS = {"target": "churned", "algorithm": "logistic_regression"}


def published(cloudwatch: Any, job_name: str) -> set[str]:
    """The metric names CloudWatch has for the job, by training job name (what the SDK's analytics read)."""
    listed = cloudwatch.list_metrics(
        Namespace="/aws/sagemaker/TrainingJobs", Dimensions=[{"Name": "TrainingJobName", "Value": job_name}]
    )["Metrics"]
    return {metric["MetricName"] for metric in listed}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    csv = tmp_path_factory.mktemp("sdk") / "train.csv"
    generate(300, seed=3).to_csv(csv, index=False)
    return csv


@pytest.fixture
def target(deployed: Deployed, local_aws_env: dict[str, str]) -> RemoteTarget:
    """The deployed training stack's outputs; the SDK's clients find the local cloud through the environment."""
    return RemoteTarget.from_outputs(deployed.deployment.outputs, "the local stage")


def test_model_trainer_trains_driftloops_image_and_the_job_reads_back_as_the_sdk_expects(
    deployed: Deployed, target: RemoteTarget, data: Path, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    from sagemaker.core.resources import TrainingJob

    caplog.set_level(logging.INFO, logger=SDK_JOB_LOGGER)
    result = train_remote(target, [data], HYPERPARAMETERS, max_runtime_seconds=600)
    assert result.completed, result.summary()

    # The SDK streamed the job's log lines from CloudWatch Logs while it waited.
    streamed = "\n".join(record.getMessage() for record in caplog.records if record.name == SDK_JOB_LOGGER)
    assert "read 300 rows from 1 file(s)" in streamed
    assert "metric:roc_auc=" in streamed

    # Attach by name, as a notebook would, and refresh.
    job = TrainingJob.get(training_job_name=result.job_name)
    job.refresh()
    assert job.training_job_status == "Completed"
    assert job.output_data_config.s3_output_path == target.output_uri
    final = {metric.metric_name: metric.value for metric in job.final_metric_data_list}
    assert final == result.metrics
    assert 0.5 < final["roc_auc"] <= 1
    assert set(final) >= {"accuracy", "f1", "roc_auc", "log_loss"}

    # What the SDK's analytics read: the metrics by training job name.
    cloudwatch = deployed.client("cloudwatch")
    wait_for(
        f"the metrics of {result.job_name} in CloudWatch",
        lambda: set(final) <= published(cloudwatch, result.job_name) or None,
        timeout=30,
        seen=lambda: published(cloudwatch, result.job_name),
    )

    # The artifact is a driftloop bundle, trained with the hyperparameters as given.
    assert result.model_uri is not None
    bucket, key = split_s3_uri(result.model_uri)
    archive = tmp_path / "model.tar.gz"
    deployed.s3.download_file(bucket, key, str(archive))
    _, metadata = open_bundle(archive, tmp_path / "bundle")
    assert (metadata.target, metadata.algorithm, metadata.task) == ("churned", "logistic_regression", "classification")


def test_a_bad_hyperparameter_fails_the_job_with_driftloops_reason(target: RemoteTarget, data: Path) -> None:
    result = train_remote(target, [data], {**HYPERPARAMETERS, "max_dpeth": "3"}, logs=False)
    assert result == RemoteResult(
        job_name=result.job_name,
        status="Failed",
        failure_reason=result.failure_reason,
    )
    assert result.failure_reason is not None
    assert result.failure_reason.startswith("AlgorithmError: invalid hyperparameters")
    assert "unknown hyperparameter 'max_dpeth'" in result.failure_reason


def test_a_model_trainer_job_that_would_run_its_own_script_is_refused(
    deployed: Deployed, target: RemoteTarget, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3
    from sagemaker.core.training.configs import Compute, OutputDataConfig, SourceCode
    from sagemaker.train import ModelTrainer, Session

    monkeypatch.setenv("SAGEMAKER_VALIDATE_ROLE", "false")  # as train_remote runs it (the role is least-privilege)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.py").write_text("print('not driftloop')\n")
    trainer = ModelTrainer(
        training_image=target.image_uri,
        role=target.role_arn,
        base_job_name=f"{target.job_prefix}-script",
        # The code is uploaded to the SDK's default bucket, whose generated name it asks AWS's own STS endpoint for,
        # whatever AWS_ENDPOINT_URL says: name one.
        sagemaker_session=Session(boto_session=boto3.Session(), default_bucket=deployed.deployment.data_bucket),
        compute=Compute(instance_type="ml.m5.large", instance_count=1),
        output_data_config=OutputDataConfig(s3_output_path=target.output_uri),
        source_code=SourceCode(source_dir=str(tmp_path / "src"), entry_script="train.py"),
        hyperparameters=HYPERPARAMETERS,
    )
    with pytest.raises(ClientError) as error:
        trainer.train(wait=False)
    assert error.value.response["Error"]["Code"] == "ValidationException"
    message = error.value.response["Error"]["Message"]
    assert message.startswith("the local SageMaker runs only driftloop's training program")
    assert "ContainerEntrypoint ['/bin/bash']" in message
    assert "(the 'code' channel's script: the SDK's source_code)" in message
