"""``sagemaker:createTrainingJob.sync`` tasks on the local cloud (driftloop_localstack.stepfunctions_sagemaker).

Stock LocalStack 2026.3.0 fails these tasks with ``States.Runtime`` "Unsupported .sync callback procedure"
(sagemaker is in its unsupported list). Verified by running this file against an instance without the
``install_stepfunctions_sagemaker`` hook: the success test fails (execution FAILED with States.Runtime), the failure
and API-error tests fail on the error name, the stop test fails because the job keeps running.

The state machine mirrors the workflow's Train state (infra/constructs/training_workflow.py): same resource,
Parameters shape and ResultSelector.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from localcloud.cloud import Cloud
from tests.plugins.local_cloud import boto3_client, unique
from training.contract import METRIC_DEFINITIONS
from training.synthetic import generate

pytestmark = pytest.mark.integration

TIMEOUT = 180.0


def wait_for(describe: Callable[[], dict[str, Any]], done: Callable[[dict[str, Any]], bool]) -> Any:
    deadline = time.monotonic() + TIMEOUT
    while True:
        found = describe()
        if done(found):
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting after {TIMEOUT:.0f} s: {json.dumps(found, default=str)[:2000]}")
        time.sleep(0.3)


def train_state(bucket: str) -> dict[str, Any]:
    """The workflow's Train state, with the job name and hyperparameters taken from the execution input."""
    return {
        "Type": "Task",
        "Resource": "arn:aws:states:::sagemaker:createTrainingJob.sync",
        "Parameters": {
            "TrainingJobName.$": "$.job",
            "HyperParameters.$": "$.hyperparameters",
            "InputDataConfig": [
                {
                    "ChannelName": "train",
                    "DataSource": {
                        "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/training-data/"}
                    },
                }
            ],
            "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/training-jobs"},
            "AlgorithmSpecification": {
                "TrainingImage": "000000000000.dkr.ecr.us-east-1.amazonaws.com/driftloop-training:latest",
                "TrainingInputMode": "File",
                "MetricDefinitions": METRIC_DEFINITIONS,
            },
            "RoleArn": "arn:aws:iam::000000000000:role/driftloop-sagemaker",
            "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
            "StoppingCondition": {"MaxRuntimeInSeconds": 600},
            "Tags": [{"Key": "driftloop:version", "Value.$": "$.job"}],
        },
        "ResultSelector": {
            "TrainingJobName.$": "$.TrainingJobName",
            "TrainingJobStatus.$": "$.TrainingJobStatus",
            "ModelArtifacts": {"S3ModelArtifacts.$": "$.ModelArtifacts.S3ModelArtifacts"},
            "FinalMetricDataList.$": "$.FinalMetricDataList",
        },
        "ResultPath": "$.training",
        "End": True,
    }


@pytest.fixture(scope="module")
def state_machine(local_cloud: Cloud) -> dict[str, str]:
    if not local_cloud.managed:
        pytest.skip("tests driftloop's extension: needs the managed local AWS, not DRIFTLOOP_LOCAL_ENDPOINT")
    s3 = boto3_client(local_cloud, "s3")
    bucket = unique("driftloop-sfn")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="training-data/train.csv", Body=generate(500, seed=5).to_csv(index=False))
    definition = {"StartAt": "Train", "States": {"Train": train_state(bucket)}}
    arn = boto3_client(local_cloud, "stepfunctions").create_state_machine(
        name=unique("train"),
        definition=json.dumps(definition),
        roleArn="arn:aws:iam::000000000000:role/driftloop-workflow",
    )["stateMachineArn"]
    return {"arn": arn, "bucket": bucket}


def run(local_cloud: Cloud, state_machine: dict[str, str], job: str, hyperparameters: dict[str, str]) -> dict[str, Any]:
    sfn = boto3_client(local_cloud, "stepfunctions")
    execution = sfn.start_execution(
        stateMachineArn=state_machine["arn"],
        name=unique("run"),
        input=json.dumps({"job": job, "hyperparameters": hyperparameters}),
    )["executionArn"]
    return wait_for(  # type: ignore[no-any-return]
        lambda: sfn.describe_execution(executionArn=execution), lambda e: e["status"] != "RUNNING"
    )


def test_the_task_waits_for_the_job_and_returns_its_description(
    local_cloud: Cloud, state_machine: dict[str, str]
) -> None:
    job = unique("sync-ok")
    execution = run(local_cloud, state_machine, job, {"target": "churned", "algorithm": "logistic_regression"})
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    training = json.loads(execution["output"])["training"]
    assert training["TrainingJobName"] == job
    assert training["TrainingJobStatus"] == "Completed"
    assert training["ModelArtifacts"]["S3ModelArtifacts"] == (
        f"s3://{state_machine['bucket']}/training-jobs/{job}/output/model.tar.gz"
    )
    metrics = {m["MetricName"]: m["Value"] for m in training["FinalMetricDataList"]}
    assert 0.5 < metrics["roc_auc"] <= 1.0
    # The job really ran: its artifacts are in S3, and the dynamic tag reached it.
    s3 = boto3_client(local_cloud, "s3")
    s3.head_object(Bucket=state_machine["bucket"], Key=f"training-jobs/{job}/output/model.tar.gz")
    sagemaker = boto3_client(local_cloud, "sagemaker")
    arn = sagemaker.describe_training_job(TrainingJobName=job)["TrainingJobArn"]
    assert {"Key": "driftloop:version", "Value": job} in sagemaker.list_tags(ResourceArn=arn)["Tags"]

    # The same name again: SageMaker's API error, named as Step Functions names it (the workflow retries it).
    again = run(local_cloud, state_machine, job, {"target": "churned"})
    assert again["status"] == "FAILED"
    assert again["error"] == "SageMaker.ResourceInUseException"
    assert "Error Code: ResourceInUse" in again["cause"]


def test_a_failed_job_fails_the_task_with_the_job_description(
    local_cloud: Cloud, state_machine: dict[str, str]
) -> None:
    job = unique("sync-bad")
    execution = run(local_cloud, state_machine, job, {"target": "no_such_column", "algorithm": "logistic_regression"})
    assert execution["status"] == "FAILED"
    assert execution["error"] == "States.TaskFailed"
    cause = json.loads(execution["cause"])
    assert cause["TrainingJobName"] == job
    assert cause["TrainingJobStatus"] == "Failed"
    assert "no_such_column" in cause["FailureReason"]


def test_stopping_the_execution_stops_the_job(local_cloud: Cloud, state_machine: dict[str, str]) -> None:
    sfn = boto3_client(local_cloud, "stepfunctions")
    sagemaker = boto3_client(local_cloud, "sagemaker")
    job = unique("sync-stop")
    execution = sfn.start_execution(
        stateMachineArn=state_machine["arn"],
        name=unique("run"),
        input=json.dumps({"job": job, "hyperparameters": {"target": "churned"}}),
    )["executionArn"]

    def progress() -> dict[str, Any]:
        jobs = sagemaker.list_training_jobs(NameContains=job)["TrainingJobSummaries"]
        return {"execution": sfn.describe_execution(executionArn=execution), "jobs": jobs}

    running = wait_for(
        progress,
        lambda found: (
            found["execution"]["status"] != "RUNNING" or any(s["SecondaryStatus"] == "Training" for s in found["jobs"])
        ),
    )
    assert running["execution"]["status"] == "RUNNING", running["execution"].get("cause")
    sfn.stop_execution(executionArn=execution)
    stopped = wait_for(
        lambda: sagemaker.describe_training_job(TrainingJobName=job),
        lambda found: found["TrainingJobStatus"] in ("Completed", "Failed", "Stopped"),
    )
    assert stopped["TrainingJobStatus"] == "Stopped"
    assert sfn.describe_execution(executionArn=execution)["status"] == "ABORTED"
