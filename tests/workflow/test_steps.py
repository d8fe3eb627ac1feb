from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from functions.common.bundle import pack_archive
from functions.common.gate import Evaluation, GateSettings, decide
from functions.common.registry import PromotionConflict, Registry, new_version_id
from functions.workflow import steps
from functions.workflow.assembly import NoTrainingData
from tests.plugins.aws import DATA_BUCKET, MODEL_BUCKET
from tests.workflow.support import SETTINGS, prepared_state

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


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
    state = prepared_state(s3, registry, {"trigger": {"source": "test"}})
    state["training"] = fake_training_job(
        s3, state["prepare"], bundle, tmp_path, challenger=challenger, champion=champion
    )
    state["registration"] = steps.register(s3, registry, state)
    return state


def test_assemble_without_training_data_fails_with_the_location_to_fill(s3: S3Client) -> None:
    state = {"guard": {"version": new_version_id()}}
    with pytest.raises(NoTrainingData, match=f"s3://{DATA_BUCKET}/training-data/"):
        steps.assemble_data(SETTINGS, s3, state)


def test_prepare_without_a_version_from_guard_refuses_to_name_a_job(registry: Registry) -> None:
    with pytest.raises(steps.WorkflowError, match=r"\$\.guard\.version"):
        steps.prepare(SETTINGS, registry, {"assembly": {"prefix": "assembled/v1/"}})


def test_prepare_without_champion_trains_on_the_assembled_data_only(
    s3: S3Client, registry: Registry, training_data: None
) -> None:
    prepared = prepared_state(s3, registry, {"hyperparameters": {"max_depth": 4}})["prepare"]

    assert prepared["training_job_name"] == f"driftloop-test-{prepared['version']}"
    assert [channel["ChannelName"] for channel in prepared["input_data_config"]] == ["train"]
    train_uri = prepared["input_data_config"][0]["DataSource"]["S3DataSource"]["S3Uri"]
    assert train_uri == f"s3://{DATA_BUCKET}/assembled/{prepared['version']}/"
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
    assert promoted["promoted"] is True
    record = registry.get_version(champion.version)
    assert record.lineage["training_job_name"] == state["prepare"]["training_job_name"]
    assert record.lineage["trigger"] == {"source": "test"}
    assert record.lineage["execution"] == "exec"
    data = record.lineage["data"]
    assert data["uri"] == f"s3://{DATA_BUCKET}/assembled/{champion.version}/"
    assert data["fingerprint"] == state["assembly"]["fingerprint"] and len(data["fingerprint"]) == 64
    assert data["objects"] == 1
    assert data["counts"]["base"] == {"objects": 1, "bytes": 14, "rows": 1}
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


def test_a_run_superseded_by_a_champion_change_during_training_ends_cleanly_with_one_decision(
    s3: S3Client, registry: Registry, training_data: None, trained_bundle: Path, tmp_path: Path
) -> None:
    first = run_to_registration(s3, registry, trained_bundle, tmp_path, challenger=0.8, champion=None)
    steps.promote(registry, first)
    second = run_to_registration(s3, registry, trained_bundle, tmp_path, challenger=0.95, champion=0.8)
    third = run_to_registration(s3, registry, trained_bundle, tmp_path, challenger=0.9, champion=0.8)
    steps.promote(registry, third)
    before = len(registry.decisions())

    result = steps.promote(registry, second)

    version = second["prepare"]["version"]
    assert result["promoted"] is False and result["superseded"] is True
    assert result["live_version"] == third["prepare"]["version"]
    champion = registry.champion()
    assert champion is not None and champion.version == third["prepare"]["version"]
    [decision] = registry.decisions()[before:]
    assert decision.action == "rejected" and decision.version == version
    assert "champion changed during training" in decision.reasons[0]
    assert steps.run_outcome({**second, "promotion": result}) == "superseded"


def test_a_promotion_that_loses_the_compare_and_swap_race_is_superseded_too(
    s3: S3Client,
    registry: Registry,
    training_data: None,
    trained_bundle: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = run_to_registration(s3, registry, trained_bundle, tmp_path, challenger=0.8, champion=None)
    steps.promote(registry, first)
    second = run_to_registration(s3, registry, trained_bundle, tmp_path, challenger=0.95, champion=0.8)
    rival = run_to_registration(s3, registry, trained_bundle, tmp_path, challenger=0.9, champion=0.8)
    real_promote = registry.promote

    conflicts: list[PromotionConflict] = []

    def promote_after_a_rival(version: str, **kwargs: Any) -> Any:
        # Between Promote's check and its write, another promotion wins.
        monkeypatch.setattr(registry, "promote", real_promote)
        real_promote(rival["prepare"]["version"], expected=registry.champion())
        try:
            return real_promote(version, **kwargs)
        except PromotionConflict as exc:
            conflicts.append(exc)
            raise

    monkeypatch.setattr(registry, "promote", promote_after_a_rival)
    before = len(registry.decisions())

    result = steps.promote(registry, second)

    assert result["promoted"] is False and result["live_version"] == rival["prepare"]["version"]
    assert [(d.action, d.version) for d in registry.decisions()[before:]] == [
        ("promoted", rival["prepare"]["version"]),
        ("rejected", second["prepare"]["version"]),
    ]
    assert len(conflicts) == 1


def test_register_without_evaluation_output_fails_and_registers_nothing(
    s3: S3Client, registry: Registry, training_data: None, trained_bundle: Path, tmp_path: Path
) -> None:
    prepared = prepared_state(s3, registry)["prepare"]
    training = fake_training_job(s3, prepared, trained_bundle, tmp_path, challenger=0.9, champion=None)
    s3.delete_object(Bucket=MODEL_BUCKET, Key=f"training-jobs/{prepared['training_job_name']}/output/output.tar.gz")

    with pytest.raises(steps.WorkflowError, match=r"left no s3://.*output\.tar\.gz"):
        steps.register(s3, registry, {"prepare": prepared, "training": training})
    assert registry.list_versions() == []


def test_record_failure_keeps_the_error_message_from_the_lambda_cause(
    s3: S3Client, registry: Registry, training_data: None
) -> None:
    state = prepared_state(s3, registry, {"trigger": {"source": "alarm", "alarm_name": "drift"}})
    cause = json.dumps({"errorMessage": "the training job left no output", "errorType": "WorkflowError"})

    result = steps.record_failure(registry, {**state, "error": {"Error": "WorkflowError", "Cause": cause}})

    [decision] = registry.decisions()
    assert decision.action == "failed" and decision.version == state["prepare"]["version"]
    assert decision.reasons == ("WorkflowError: the training job left no output",)
    assert decision.details["trigger"] == {"source": "alarm", "alarm_name": "drift"}
    assert decision.details["execution"] == "exec"
    assert "the training job left no output" in result["message"]


def test_record_failure_before_prepare_records_a_run_without_version(registry: Registry) -> None:
    result = steps.record_failure(registry, {"error": {"Error": "NoTrainingData", "Cause": "no training data"}})
    assert result["version"] is None
    assert registry.decisions()[0].reasons == ("NoTrainingData: no training data",)
