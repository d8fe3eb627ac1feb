"""SageMaker training jobs that really run on the local cloud (driftloop_localstack.sagemaker).

Stock LocalStack 2026.3.0 has no SageMaker provider: every call here answers ``InternalFailure`` ("not included in
your license plan"), and moto's backend alone would mark a job Completed at once with no artifacts. Verified by
running this file against an instance without the ``sagemaker:default`` entry point: every test fails at its
first SageMaker call.

Each job trains logistic regression on 500 synthetic rows (``python -m training.synthetic``): a few seconds each.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from localcloud.cloud import Cloud
from tests.plugins.local_cloud import boto3_client, unique
from training.contract import METRIC_DEFINITIONS

pytestmark = pytest.mark.integration

JOB_TIMEOUT = 180.0
TERMINAL = ("Completed", "Failed", "Stopped")
ROLE = "arn:aws:iam::000000000000:role/driftloop-sagemaker"


def wait_for(describe: Callable[[], dict[str, Any]], done: Callable[[dict[str, Any]], bool], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = describe()
        if done(found):
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting after {timeout:.0f} s: {json.dumps(found, default=str)[:2000]}")
        time.sleep(0.3)


def wait_until_ended(sagemaker: Any, name: str) -> dict[str, Any]:
    return wait_for(  # type: ignore[no-any-return]
        lambda: sagemaker.describe_training_job(TrainingJobName=name),
        lambda job: job["TrainingJobStatus"] in TERMINAL,
        JOB_TIMEOUT,
    )


def training_job_request(
    name: str, bucket: str, hyperparameters: dict[str, str], channels: dict[str, str], max_runtime: int = 600
) -> dict[str, Any]:
    """A CreateTrainingJob request as the workflow's Train state sends it."""
    return {
        "TrainingJobName": name,
        "AlgorithmSpecification": {
            "TrainingImage": "000000000000.dkr.ecr.us-east-1.amazonaws.com/driftloop-training:latest",
            "TrainingInputMode": "File",
            "MetricDefinitions": METRIC_DEFINITIONS,
        },
        "RoleArn": ROLE,
        "HyperParameters": hyperparameters,
        "InputDataConfig": [
            {"ChannelName": channel, "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri}}}
            for channel, uri in channels.items()
        ],
        "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/training-jobs"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
        "StoppingCondition": {"MaxRuntimeInSeconds": max_runtime},
        "Tags": [{"Key": "driftloop:test", "Value": "sagemaker"}],
    }


def archive_members(s3: Any, uri: str) -> dict[str, bytes]:
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as archive:
        return {
            member.name: archive.extractfile(member).read()  # type: ignore[union-attr]
            for member in archive.getmembers()
            if member.isfile()
        }


@pytest.fixture(scope="module")
def data(local_cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A bucket with 500 synthetic rows under training-data/, written by the project's generator CLI."""
    if not local_cloud.managed:
        pytest.skip("tests driftloop's extension: needs the managed local AWS, not DRIFTLOOP_LOCAL_ENDPOINT")
    csv = tmp_path_factory.mktemp("synthetic") / "train.csv"
    subprocess.run(
        [sys.executable, "-m", "training.synthetic", "--rows", "500", "--seed", "11", "--out", str(csv)],
        check=True,
        capture_output=True,
    )
    s3 = boto3_client(local_cloud, "s3")
    bucket = unique("driftloop-sm")
    s3.create_bucket(Bucket=bucket)
    s3.upload_file(str(csv), bucket, "training-data/train.csv")
    return {"bucket": bucket, "train": f"s3://{bucket}/training-data/"}


@pytest.fixture(scope="module")
def completed_job(local_cloud: Cloud, data: dict[str, str]) -> dict[str, Any]:
    sagemaker = boto3_client(local_cloud, "sagemaker")
    name = unique("v1")
    request = training_job_request(
        name, data["bucket"], {"target": "churned", "algorithm": "logistic_regression"}, {"train": data["train"]}
    )
    arn = sagemaker.create_training_job(**request)["TrainingJobArn"]
    assert arn == f"arn:aws:sagemaker:us-east-1:000000000000:training-job/{name}"
    return wait_until_ended(sagemaker, name)


def test_a_training_job_runs_the_training_program_and_uploads_its_artifacts(
    local_cloud: Cloud, data: dict[str, str], completed_job: dict[str, Any]
) -> None:
    job = completed_job
    name = job["TrainingJobName"]
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    assert [t["Status"] for t in job["SecondaryStatusTransitions"]] == [
        "Starting",
        "Downloading",
        "Training",
        "Uploading",
        "Completed",
    ]
    assert job["CreationTime"] <= job["TrainingStartTime"] <= job["TrainingEndTime"]
    assert job["TrainingTimeInSeconds"] >= 1
    assert job["HyperParameters"] == {"target": "churned", "algorithm": "logistic_regression"}

    # SageMaker's layout: <S3OutputPath>/<job>/output/model.tar.gz, files at the archive root.
    model_uri = job["ModelArtifacts"]["S3ModelArtifacts"]
    assert model_uri == f"s3://{data['bucket']}/training-jobs/{name}/output/model.tar.gz"
    s3 = boto3_client(local_cloud, "s3")
    model = archive_members(s3, model_uri)
    assert {"model.onnx", "model.joblib", "metadata.json"} <= set(model)
    metadata = json.loads(model["metadata.json"])
    assert metadata["target"] == "churned"
    output = archive_members(s3, model_uri.replace("model.tar.gz", "output.tar.gz"))
    evaluation = json.loads(output["evaluation.json"])

    # MetricDefinitions applied to the program's log lines: the same numbers as its evaluation.
    metrics = {m["MetricName"]: m["Value"] for m in job["FinalMetricDataList"]}
    assert {"accuracy", "f1", "roc_auc", "log_loss"} <= set(metrics)
    assert 0.5 < metrics["roc_auc"] <= 1.0
    assert metrics["roc_auc"] == pytest.approx(evaluation["challenger"]["roc_auc"], abs=1e-6)

    summaries = boto3_client(local_cloud, "sagemaker").list_training_jobs(NameContains=name)["TrainingJobSummaries"]
    assert [(s["TrainingJobName"], s["TrainingJobStatus"]) for s in summaries] == [(name, "Completed")]
    tags = boto3_client(local_cloud, "sagemaker").list_tags(ResourceArn=job["TrainingJobArn"])["Tags"]
    assert {"Key": "driftloop:test", "Value": "sagemaker"} in tags

    # The job's log in CloudWatch Logs, as SageMaker writes it.
    logs = boto3_client(local_cloud, "logs")
    streams = logs.describe_log_streams(logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix=f"{name}/")
    stream = streams["logStreams"][0]["logStreamName"]
    events = logs.get_log_events(logGroupName="/aws/sagemaker/TrainingJobs", logStreamName=stream, startFromHead=True)
    assert any(e["message"].startswith("metric:roc_auc=") for e in events["events"])


def test_a_job_is_described_and_its_metrics_published_as_the_sagemaker_sdk_reads_them(
    local_cloud: Cloud, completed_job: dict[str, Any]
) -> None:
    # Estimator.attach reads OutputDataConfig's KmsKeyId; SageMaker answers "" when the job named none.
    assert completed_job["OutputDataConfig"]["KmsKeyId"] == ""
    # training_job_analytics asks CloudWatch by TrainingJobName; the console and alarms by Host.
    cloudwatch = boto3_client(local_cloud, "cloudwatch")
    name = completed_job["TrainingJobName"]
    for dimension in ({"Name": "TrainingJobName", "Value": name}, {"Name": "Host", "Value": f"{name}/algo-1"}):
        listed = cloudwatch.list_metrics(Namespace="/aws/sagemaker/TrainingJobs", Dimensions=[dimension])["Metrics"]
        assert "roc_auc" in {metric["MetricName"] for metric in listed}, dimension


def test_a_champion_channel_can_be_a_single_model_archive(
    local_cloud: Cloud, data: dict[str, str], completed_job: dict[str, Any]
) -> None:
    """The workflow's challenger run: the champion channel is one object, the previous job's model.tar.gz."""
    sagemaker = boto3_client(local_cloud, "sagemaker")
    name = unique("v2")
    champion = completed_job["ModelArtifacts"]["S3ModelArtifacts"]
    request = training_job_request(
        name,
        data["bucket"],
        {"target": "churned", "algorithm": "logistic_regression", "C": "0.5"},
        {"train": data["train"], "champion": champion},
    )
    sagemaker.create_training_job(**request)
    job = wait_until_ended(sagemaker, name)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    metrics = {m["MetricName"]: m["Value"] for m in job["FinalMetricDataList"]}
    output = archive_members(
        boto3_client(local_cloud, "s3"),
        job["ModelArtifacts"]["S3ModelArtifacts"].replace("model.tar.gz", "output.tar.gz"),
    )
    evaluation = json.loads(output["evaluation.json"])
    # The champion, staged from one S3 object, was scored on the challenger's holdout.
    assert metrics["champion_roc_auc"] == pytest.approx(evaluation["champion"]["roc_auc"], abs=1e-6)


def test_a_failing_program_fails_the_job_with_its_reason(local_cloud: Cloud, data: dict[str, str]) -> None:
    sagemaker = boto3_client(local_cloud, "sagemaker")
    name = unique("bad")
    hyperparameters = {"target": "churned", "algorithm": "logistic_regression", "max_depth": "3"}
    sagemaker.create_training_job(
        **training_job_request(name, data["bucket"], hyperparameters, {"train": data["train"]})
    )
    job = wait_until_ended(sagemaker, name)
    assert job["TrainingJobStatus"] == "Failed"
    assert job["SecondaryStatus"] == "Failed"
    # SageMaker's wording around the text of output/failure.
    assert job["FailureReason"].startswith("AlgorithmError: ")
    assert "max_depth" in job["FailureReason"]
    assert job["FailureReason"].endswith("exit code: 1")
    assert "ModelArtifacts" not in job


def test_stop_training_job_terminates_the_program(local_cloud: Cloud, data: dict[str, str]) -> None:
    sagemaker = boto3_client(local_cloud, "sagemaker")
    name = unique("stop")
    sagemaker.create_training_job(
        **training_job_request(name, data["bucket"], {"target": "churned"}, {"train": data["train"]})
    )
    wait_for(
        lambda: sagemaker.describe_training_job(TrainingJobName=name),
        lambda job: job["SecondaryStatus"] == "Training" or job["TrainingJobStatus"] in TERMINAL,
        JOB_TIMEOUT,
    )
    sagemaker.stop_training_job(TrainingJobName=name)
    job = wait_until_ended(sagemaker, name)
    assert (job["TrainingJobStatus"], job["SecondaryStatus"]) == ("Stopped", "Stopped")
    assert "Stopping" in [t["Status"] for t in job["SecondaryStatusTransitions"]]
    with pytest.raises(ClientError) as error:
        sagemaker.stop_training_job(TrainingJobName=name)
    assert error.value.response["Error"]["Code"] == "ValidationException"


def test_max_runtime_stops_the_job(local_cloud: Cloud, data: dict[str, str]) -> None:
    sagemaker = boto3_client(local_cloud, "sagemaker")
    name = unique("slow")
    request = training_job_request(name, data["bucket"], {"target": "churned"}, {"train": data["train"]}, max_runtime=1)
    sagemaker.create_training_job(**request)
    job = wait_until_ended(sagemaker, name)
    assert (job["TrainingJobStatus"], job["SecondaryStatus"]) == ("Stopped", "MaxRuntimeExceeded")


def test_requests_are_checked_as_sagemaker_checks_them(local_cloud: Cloud, data: dict[str, str]) -> None:
    sagemaker = boto3_client(local_cloud, "sagemaker")
    with pytest.raises(ClientError) as error:
        sagemaker.describe_training_job(TrainingJobName=unique("missing"))
    assert error.value.response["Error"]["Code"] == "ValidationException"

    # A prefix without objects fails the job before the program runs.
    name = unique("empty")
    sagemaker.create_training_job(
        **training_job_request(
            name, data["bucket"], {"target": "churned"}, {"train": f"s3://{data['bucket']}/nothing/"}
        )
    )
    job = wait_until_ended(sagemaker, name)
    assert job["TrainingJobStatus"] == "Failed"
    assert job["FailureReason"].startswith("ClientError: No S3 objects found")

    with pytest.raises(ClientError) as error:
        sagemaker.create_training_job(
            **training_job_request(name, data["bucket"], {"target": "churned"}, {"train": data["train"]})
        )
    assert error.value.response["Error"]["Code"] == "ResourceInUse"


def test_a_job_that_would_run_another_image_or_script_on_aws_is_refused_saying_why(
    local_cloud: Cloud, data: dict[str, str]
) -> None:
    sagemaker = boto3_client(local_cloud, "sagemaker")
    name = unique("sklearn")
    request = training_job_request(
        name, data["bucket"], {"target": "churned", "sagemaker_program": '"train.py"'}, {"train": data["train"]}
    )
    request["AlgorithmSpecification"]["TrainingImage"] = (
        "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
    )
    with pytest.raises(ClientError) as error:
        sagemaker.create_training_job(**request)
    assert error.value.response["Error"]["Code"] == "ValidationException"
    message = error.value.response["Error"]["Message"]
    assert message.startswith("the local SageMaker runs only driftloop's training program")
    assert "TrainingImage '683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn" in message
    assert "HyperParameters.sagemaker_program" in message
    with pytest.raises(ClientError):
        sagemaker.describe_training_job(TrainingJobName=name)


def test_other_sagemaker_operations_still_reach_moto(local_cloud: Cloud, data: dict[str, str]) -> None:
    sagemaker = boto3_client(local_cloud, "sagemaker")
    group = unique("group")
    sagemaker.create_model_package_group(ModelPackageGroupName=group)
    groups = sagemaker.list_model_package_groups(NameContains=group)["ModelPackageGroupSummaryList"]
    assert [g["ModelPackageGroupName"] for g in groups] == [group]


def test_job_logs_are_written_to_the_instance(local_cloud: Cloud, completed_job: dict[str, Any]) -> None:
    assert local_cloud.dir is not None
    logs = sorted(local_cloud.dir.rglob(f"{completed_job['TrainingJobName']}.log"))
    assert logs, f"no log file for {completed_job['TrainingJobName']} under {local_cloud.dir}"
    assert "metric:roc_auc=" in logs[0].read_text()
