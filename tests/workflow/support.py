"""What the workflow tests share: the settings the Lambdas would read, a run's state up to Prepare, and what a
finished training job leaves."""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from functions.common.bundle import pack_archive
from functions.common.gate import Confusion, Evaluation, GateSettings, Scores, Verdict, decide
from functions.common.layout import holdout_evaluation_key
from functions.common.registry import Registry, new_version_id, utc_now
from functions.workflow import steps
from functions.workflow.settings import WorkflowSettings
from functions.workflow.state import RunState
from tests.plugins.athena import LocalAthena, adapter, tables
from tests.plugins.aws import DATA_BUCKET, MODEL_BUCKET

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

SETTINGS = WorkflowSettings(
    service="driftloop-test-workflow",
    model_bucket=MODEL_BUCKET,
    registry_prefix="registry/",
    data_bucket=DATA_BUCKET,
    training_data_prefix="training-data/",
    artifact_prefix="training-jobs/",
    job_prefix="driftloop-test",
    # The gate settings here are the pinned ones Register recomputes the verdict under.
    hyperparameters={"target": "churned", "algorithm": "random_forest", "min_metric": "0.6", "min_improvement": "0.01"},
    assembled_prefix="assembled/",
    capture_prefix="captures/",
    holdout_prefix="holdouts/",
    holdout_share=0.2,
    glue_database="driftloop_test",
    athena_workgroup="driftloop-test",
    include_feedback=False,
    feedback_max_age_days=30,
    max_feedback_share=0.3,
    new_value_min_callers=3,
    cooldown_minutes=0,
    lock_timeout_seconds=7200,
    model_package_group="driftloop-test",
)


def settings(**changes: Any) -> WorkflowSettings:
    return replace(SETTINGS, **changes)


def assemble_base_data(s3: S3Client, state: dict[str, Any], config: WorkflowSettings = SETTINGS) -> dict[str, Any]:
    """Assemble's result without feedback (the state machine skips the UNLOAD, Athena is never asked)."""
    assert not config.include_feedback
    athena = adapter(LocalAthena(s3, tables()))
    state = {**state, "assembly_plan": steps.plan_assembly_step(config, s3, athena, RunState.parse(state))}
    return steps.finish_assembly_step(config, s3, athena, RunState.parse(state))


def prepared_state(
    s3: S3Client, registry: Registry, request: dict[str, Any] | None = None, *, execution: str = "exec"
) -> dict[str, Any]:
    """The state Prepare leaves, as if Guard had taken the lock (the lock itself is tests/workflow/test_guard.py's)."""
    state: dict[str, Any] = dict(request or {})
    trigger = RunState.parse(state).trigger().to_json()
    state["guard"] = {
        "acquired": True,
        "execution_id": execution,
        "started_at": utc_now().isoformat(),
        "trigger": trigger,
        "version": new_version_id(),
    }
    state["assembly"] = assemble_base_data(s3, state)
    state["prepare"] = steps.prepare(SETTINGS, registry, RunState.parse(state)).to_json()
    return state


def fake_training_job(
    s3: S3Client,
    prepared: dict[str, Any],
    bundle: Path,
    tmp_path: Path,
    *,
    challenger: float,
    champion: float | None,
    verdict: Verdict | None = None,
    feature_scores: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Upload what SageMaker leaves after a job, and the evaluation the Evaluate step writes from the same scores
    (tests/workflow/test_evaluation.py scores real bundles), and return the .sync task's selected result.

    ``verdict``: the job's own verdict in evaluation.json, instead of the gate's (a forged or buggy job).
    """
    job = prepared["training_job_name"]
    prefix = f"{SETTINGS.artifact_prefix}{job}/output/"
    pack_archive(bundle, tmp_path / "model.tar.gz")
    s3.upload_file(str(tmp_path / "model.tar.gz"), MODEL_BUCKET, prefix + "model.tar.gz")
    settings = GateSettings.for_task("classification", min_metric=0.6, min_improvement=0.01)
    champion_metrics = None if champion is None else {"roc_auc": champion}
    # Scored on 300 fresh holdout rows, all trusted: the same metrics on both sets.
    scores = Scores(
        holdout_rows=300,
        challenger={"roc_auc": challenger},
        trusted_rows=300,
        challenger_trusted={"roc_auc": challenger},
        champion_given=champion is not None,
        champion=champion_metrics,
        champion_trusted=champion_metrics,
        champion_seen_rows=None if champion is None else 0,
        # What the guardrails judge: a challenger no worse than the champion class by class, nothing leaked.
        distinct_predictions=2,
        distinct_targets=2,
        challenger_confusion=Confusion(("0", "1"), ((180, 20), (30, 70))),
        champion_confusion=Confusion(("0", "1"), ((180, 20), (30, 70))),
        slices=(),
        feature_scores=feature_scores or {"tenure": 0.7},
    )
    evaluation = Evaluation(
        settings=settings,
        scores=scores,
        verdict=verdict or decide(settings, scores),
        task="classification",
        champion_version=(prepared["champion"] or {}).get("version"),
    )
    payload = json.dumps(evaluation.to_dict()).encode()
    workflow_evaluation = replace(evaluation, verdict=decide(settings, scores))
    s3.put_object(
        Bucket=DATA_BUCKET,
        Key=holdout_evaluation_key(SETTINGS.holdout_prefix, prepared["version"]),
        Body=json.dumps(workflow_evaluation.to_dict()).encode(),
    )
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
