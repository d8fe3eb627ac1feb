"""The SageMaker Model Registry mirror (functions/workflow/model_packages.py) on moto's SageMaker: each registered
version a model package whose approval status follows driftloop's decisions; S3 stays the record."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from cli.main import main
from functions.common.layout import holdout_evaluation_key
from functions.common.registry import Registry
from functions.workflow import steps
from functions.workflow.model_packages import MAX_METADATA_VALUE, ModelPackages, metadata
from functions.workflow.state import RunState
from tests.plugins.aws import DATA_BUCKET, MODEL_BUCKET
from tests.workflow.support import SETTINGS, fake_training_job, prepared_state, settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sagemaker import SageMakerClient


@pytest.fixture
def sagemaker(aws: None) -> SageMakerClient:
    client = boto3.client("sagemaker", region_name="us-east-1")
    client.create_model_package_group(ModelPackageGroupName=SETTINGS.model_package_group)
    return client


@pytest.fixture
def packages(sagemaker: SageMakerClient) -> ModelPackages:
    return ModelPackages(sagemaker)


@pytest.fixture
def run(s3: S3Client, registry: Registry, trained_bundle: Path, tmp_path: Path, packages: ModelPackages) -> Any:
    """Runs to registration, the mirror on, with the given challenger and champion scores."""
    s3.put_object(Bucket=DATA_BUCKET, Key="training-data/part-1.csv", Body=b"a,churned\n1,0\n")

    def run(*, challenger: float, champion: float | None, group: str = SETTINGS.model_package_group) -> RunState:
        state = prepared_state(s3, registry, {"trigger": {"source": "schedule"}})
        state["training"] = fake_training_job(
            s3, state["prepare"], trained_bundle, tmp_path, challenger=challenger, champion=champion
        )
        configured = settings(model_package_group=group)
        state["registration"] = steps.register(configured, s3, registry, RunState.parse(state), packages).to_json()
        return RunState.parse(state)

    return run


def package_of(registry: Registry, version: str) -> dict[str, Any]:
    registered = next(d for d in registry.decisions() if d.action == "registered" and d.version == version)
    return dict(registered.details["model_package"])


def status(sagemaker: SageMakerClient, arn: str) -> str:
    return str(sagemaker.describe_model_package(ModelPackageName=arn)["ModelApprovalStatus"])


def test_a_registered_version_becomes_a_pending_package_linking_its_evaluation_and_lineage(
    run: Any, registry: Registry, sagemaker: SageMakerClient
) -> None:
    state = run(challenger=0.9, champion=None)

    version = state.registration.version
    recorded = package_of(registry, version)
    described = sagemaker.describe_model_package(ModelPackageName=recorded["arn"])
    record = registry.get_version(version)
    assert recorded == {"arn": described["ModelPackageArn"], "status": "PendingManualApproval"}
    assert described["ModelPackageGroupName"] == SETTINGS.model_package_group
    assert described["ModelApprovalStatus"] == "PendingManualApproval"
    assert described["ModelMetrics"]["ModelQuality"]["Statistics"] == {
        "ContentType": "application/json",
        "S3Uri": f"s3://{DATA_BUCKET}/{holdout_evaluation_key(SETTINGS.holdout_prefix, version)}",
    }
    assert described["CustomerMetadataProperties"] == {
        "driftloop_version": version,
        "sha256": record.sha256,
        "model_data_url": f"s3://{MODEL_BUCKET}/{record.archive_key}",
        "training_job": state.prepare.training_job_name,
        "data_manifest": state.assembly.manifest,
        "trigger": "schedule",
        "execution": "exec",
    }
    assert "InferenceSpecification" not in described
    assert version in described["ModelPackageDescription"]


def test_a_retried_register_mirrors_the_version_once(
    run: Any, s3: S3Client, registry: Registry, sagemaker: SageMakerClient, packages: ModelPackages
) -> None:
    state = run(challenger=0.9, champion=None)

    steps.register(SETTINGS, s3, registry, state, packages)

    listed = sagemaker.list_model_packages(ModelPackageGroupName=SETTINGS.model_package_group)
    assert [p["ModelPackageArn"] for p in listed["ModelPackageSummaryList"]] == [
        package_of(registry, state.registration.version)["arn"]
    ]


def test_a_promoted_version_is_approved(run: Any, registry: Registry, sagemaker: SageMakerClient) -> None:
    state = run(challenger=0.9, champion=None)

    result = steps.promote(registry, state, packages=ModelPackages(sagemaker))

    assert result.promoted
    assert status(sagemaker, package_of(registry, result.version or "")["arn"]) == "Approved"


def test_a_version_the_gate_rejects_is_rejected_and_the_decision_says_so(
    run: Any, registry: Registry, sagemaker: SageMakerClient
) -> None:
    first = run(challenger=0.9, champion=None)
    steps.promote(registry, first, packages=ModelPackages(sagemaker))
    second = run(challenger=0.85, champion=0.9)

    steps.reject(registry, second, packages=ModelPackages(sagemaker))

    arn = package_of(registry, second.registration.version)["arn"]
    assert status(sagemaker, arn) == "Rejected"
    assert registry.decisions()[-1].details["model_package"] == {"arn": arn, "status": "Rejected"}
    assert status(sagemaker, package_of(registry, first.registration.version)["arn"]) == "Approved"


def test_a_version_superseded_while_it_trained_is_rejected(
    run: Any, registry: Registry, sagemaker: SageMakerClient
) -> None:
    first = run(challenger=0.8, champion=None)
    steps.promote(registry, first, packages=ModelPackages(sagemaker))
    superseded, newer = run(challenger=0.95, champion=0.8), run(challenger=0.9, champion=0.8)
    steps.promote(registry, newer, packages=ModelPackages(sagemaker))

    result = steps.promote(registry, superseded, packages=ModelPackages(sagemaker))

    assert not result.promoted
    assert status(sagemaker, package_of(registry, superseded.registration.version)["arn"]) == "Rejected"
    assert status(sagemaker, package_of(registry, newer.registration.version)["arn"]) == "Approved"


def test_a_rollback_rejects_the_rolled_back_version_and_approves_the_one_put_back(
    run: Any, registry: Registry, sagemaker: SageMakerClient, capsys: pytest.CaptureFixture[str]
) -> None:
    first = run(challenger=0.8, champion=None)
    steps.promote(registry, first, packages=ModelPackages(sagemaker))
    second = run(challenger=0.9, champion=0.8)
    steps.promote(registry, second, packages=ModelPackages(sagemaker))

    assert main(["rollback", "--bucket", MODEL_BUCKET, "--reason", "worse live"]) == 0

    rolled_back = package_of(registry, second.registration.version)["arn"]
    put_back = package_of(registry, first.registration.version)["arn"]
    assert (status(sagemaker, rolled_back), status(sagemaker, put_back)) == ("Rejected", "Approved")
    assert f"model package {rolled_back} of {second.registration.version}: Rejected" in capsys.readouterr().out


def test_a_mirror_that_fails_records_why_and_changes_no_decision(
    run: Any, registry: Registry, sagemaker: SageMakerClient
) -> None:
    state = run(challenger=0.9, champion=None, group="no-such-group")

    result = steps.promote(registry, state, packages=ModelPackages(sagemaker))

    recorded = package_of(registry, state.registration.version)
    assert recorded["arn"] is None and "no-such-group" in recorded["error"]
    assert state.registration.passed and result.promoted
    champion = registry.champion()
    assert champion is not None and champion.version == state.registration.version
    assert [d.action for d in registry.decisions()] == ["registered", "promoted"]
    assert sagemaker.list_model_packages(ModelPackageGroupName="no-such-group")["ModelPackageSummaryList"] == []


def test_metadata_values_sagemaker_would_refuse_are_made_acceptable_and_absent_ones_left_out() -> None:
    mapped = metadata({"trigger": "manual (retrain; data, v2)", "long": "x" * 300, "none": None, "empty": ""})

    assert mapped == {"trigger": "manual _retrain_ data_ v2_", "long": "x" * (MAX_METADATA_VALUE - 3) + "..."}
