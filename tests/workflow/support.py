"""What the workflow tests share: the settings the Lambdas would read, and a run's state up to Prepare."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

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
    glue_database="driftloop_test",
    athena_workgroup="driftloop-test",
    include_feedback=False,
    feedback_max_age_days=30,
    max_feedback_share=0.3,
    new_value_min_callers=3,
    cooldown_minutes=0,
    lock_timeout_seconds=7200,
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
