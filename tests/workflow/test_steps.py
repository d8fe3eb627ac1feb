from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from functions.common.bundle import pack_archive
from functions.common.gate import Evaluation, GateSettings, decide
from functions.common.registry import Registry
from functions.workflow import steps
from functions.workflow.settings import WorkflowSettings
from tests.plugins.aws import DATA_BUCKET, MODEL_BUCKET

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

SETTINGS = WorkflowSettings(
    model_bucket=MODEL_BUCKET,
    registry_prefix="registry/",
    data_bucket=DATA_BUCKET,
    training_data_prefix="training-data/",
    artifact_prefix="training-jobs/",
    job_prefix="driftloop-test",
    hyperparameters={"target": "churned", "algorithm": "random_forest"},
)


@pytest.fixture
def training_data(s3: S3Client) -> None:
    s3.put_object(Bucket=DATA_BUCKET, Key="training-data/part-1.csv", Body=b"a,churned\n1,0\n")


def fake_training_job(
    s3: S3Client, prepared: dict[str, Any], bundle: Path, tmp_path: Path, *, challenger: float, champion: float | None
) -> dict[str, Any]:
    """Upload what SageMaker leaves after a job and return the .sync task's selected result."""
    job = prepared["training_job_name"]
    prefix = f"{SETTINGS.artifact_prefix}{job}/output/"
    pack_archive(bundle, tmp_path / "model.tar.gz")
    s3.upload_file(str(tmp_path / "model.tar.gz"), MODEL_BUCKET, prefix + "model.tar.gz")
    settings = GateSettings("roc_auc", min_metric=0.6, min_improvement=0.01)
    champion_metrics = None if champion is None else {"roc_auc": champion}
    evaluation = Evaluation(
        settings=settings,
        holdout_rows=400,
        challenger={"roc_auc": challenger},
        champion=champion_metrics,
        champion_version=(prepared["champion"] or {}).get("version"),
        verdict=decide(settings, {"roc_auc": challenger}, champion_metrics),
    )
    payload = json.dumps(evaluation.to_dict()).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo("./evaluation.json")
        info.size = len(payload)
        archive.addfile(info, io.BytesIO(payload))
    s3.put_object(Bucket=MODEL_BUCKET, Key=prefix + "output.tar.gz", Body=buffer.getvalue())
    return {
        "TrainingJobName": job,
        "TrainingJobStatus": "Completed",
        "ModelArtifacts": {"S3ModelArtifacts": f"s3://{MODEL_BUCKET}/{prefix}model.tar.gz"},
        "FinalMetricDataList": [{"MetricName": "roc_auc", "Value": challenger}],
    }


def run_to_registration(
    s3: S3Client, registry: Registry, bundle: Path, tmp_path: Path, *, challenger: float, champion: float | None
) -> dict[str, Any]:
    state: dict[str, Any] = {"prepare": steps.prepare(SETTINGS, s3, registry, {"trigger": {"source": "test"}})}
    state["training"] = fake_training_job(
        s3, state["prepare"], bundle, tmp_path, challenger=challenger, champion=champion
    )
    state["registration"] = steps.register(s3, registry, state)
    return state


def test_prepare_without_training_data_fails_with_the_location_to_fill(s3: S3Client, registry: Registry) -> None:
    with pytest.raises(steps.NoTrainingData, match=f"s3://{DATA_BUCKET}/training-data/"):
        steps.prepare(SETTINGS, s3, registry, {})


def test_prepare_without_champion_trains_on_the_train_channel_only(
    s3: S3Client, registry: Registry, training_data: None
) -> None:
    prepared = steps.prepare(SETTINGS, s3, registry, {"hyperparameters": {"max_depth": 4}})

    assert prepared["training_job_name"] == f"driftloop-test-{prepared['version']}"
    assert [channel["ChannelName"] for channel in prepared["input_data_config"]] == ["train"]
    train_uri = prepared["input_data_config"][0]["DataSource"]["S3DataSource"]["S3Uri"]
    assert train_uri == f"s3://{DATA_BUCKET}/training-data/"
    assert prepared["hyperparameters"] == {"target": "churned", "algorithm": "random_forest", "max_depth": "4"}
    assert prepared["output_path"] == f"s3://{MODEL_BUCKET}/training-jobs/"
    assert prepared["champion"] is None
    assert prepared["trigger"] == {"source": "manual"}


def test_first_model_is_registered_and_promoted(
    s3: S3Client, registry: Registry, training_data: None, trained_bundle: Path, tmp_path: Path
) -> None:
    state = run_to_registration(s3, registry, trained_bundle, tmp_path, challenger=0.9, champion=None)
    assert state["registration"]["passed"] is True

    promoted = steps.promote(registry, state)

    champion = registry.champion()
    assert champion is not None and champion.version == promoted["version"] == state["prepare"]["version"]
    record = registry.get_version(champion.version)
    assert record.lineage["training_job_name"] == state["prepare"]["training_job_name"]
    assert record.lineage["trigger"] == {"source": "test"}
    assert [d.action for d in registry.decisions()] == ["registered", "promoted"]


def test_second_run_gets_the_champion_channel_and_a_worse_challenger_is_rejected(
    s3: S3Client, registry: Registry, training_data: None, trained_bundle: Path, tmp_path: Path
) -> None:
    first = run_to_registration(s3, registry, trained_bundle, tmp_path, challenger=0.9, champion=None)
    steps.promote(registry, first)

    second = run_to_registration(s3, registry, trained_bundle, tmp_path, challenger=0.85, champion=0.9)
    channels = {
        c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in second["prepare"]["input_data_config"]
    }
    assert channels["champion"] == f"s3://{MODEL_BUCKET}/registry/versions/{first['prepare']['version']}/model.tar.gz"
    assert second["prepare"]["hyperparameters"]["champion_version"] == first["prepare"]["version"]
    assert second["registration"]["passed"] is False

    rejected = steps.reject(registry, second)

    champion = registry.champion()
    assert champion is not None and champion.version == first["prepare"]["version"]
    assert any("below min_improvement" in reason for reason in rejected["reasons"])
    assert [d.action for d in registry.decisions()][-2:] == ["registered", "rejected"]


def test_promotion_is_refused_when_the_champion_changed_during_training(
    s3: S3Client, registry: Registry, training_data: None, trained_bundle: Path, tmp_path: Path
) -> None:
    first = run_to_registration(s3, registry, trained_bundle, tmp_path, challenger=0.8, champion=None)
    steps.promote(registry, first)
    second = run_to_registration(s3, registry, trained_bundle, tmp_path, challenger=0.95, champion=0.8)
    third = run_to_registration(s3, registry, trained_bundle, tmp_path, challenger=0.9, champion=0.8)
    steps.promote(registry, third)

    with pytest.raises(steps.ChampionChanged, match="champion changed during training"):
        steps.promote(registry, second)

    champion = registry.champion()
    assert champion is not None and champion.version == third["prepare"]["version"]
    assert registry.decisions()[-1].action == "rejected"


def test_register_without_evaluation_output_fails_and_registers_nothing(
    s3: S3Client, registry: Registry, training_data: None, trained_bundle: Path, tmp_path: Path
) -> None:
    prepared = steps.prepare(SETTINGS, s3, registry, {})
    training = fake_training_job(s3, prepared, trained_bundle, tmp_path, challenger=0.9, champion=None)
    s3.delete_object(Bucket=MODEL_BUCKET, Key=f"training-jobs/{prepared['training_job_name']}/output/output.tar.gz")

    with pytest.raises(steps.WorkflowError, match=r"left no s3://.*output\.tar\.gz"):
        steps.register(s3, registry, {"prepare": prepared, "training": training})
    assert registry.list_versions() == []


def test_record_failure_keeps_the_error_message_from_the_lambda_cause(
    s3: S3Client, registry: Registry, training_data: None
) -> None:
    prepared = steps.prepare(SETTINGS, s3, registry, {})
    cause = json.dumps({"errorMessage": "champion changed during training", "errorType": "ChampionChanged"})

    result = steps.record_failure(
        registry, {"prepare": prepared, "error": {"Error": "ChampionChanged", "Cause": cause}}
    )

    [decision] = registry.decisions()
    assert decision.action == "failed" and decision.version == prepared["version"]
    assert decision.reasons == ("ChampionChanged: champion changed during training",)
    assert "champion changed during training" in result["message"]


def test_record_failure_before_prepare_records_a_run_without_version(registry: Registry) -> None:
    result = steps.record_failure(registry, {"error": {"Error": "NoTrainingData", "Cause": "no training data"}})
    assert result["version"] is None
    assert registry.decisions()[0].reasons == ("NoTrainingData: no training data",)
