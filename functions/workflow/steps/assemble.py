"""Assemble: the run's training set (base data, plus labelled captures when feedback is included), in two steps
around the state machine's Athena UNLOAD (``functions/workflow/assembly.py``)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from functions.common.athena import Athena
from functions.common.registry import utc_now
from functions.workflow.assembly import AssemblyRequest, finish_assembly, plan_assembly
from functions.workflow.errors import WorkflowError
from functions.workflow.settings import WorkflowSettings
from functions.workflow.state import AssemblyPlan, RunState
from functions.workflow.steps.hyperparameters import run_hyperparameters

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def _request(settings: WorkflowSettings, state: RunState, now: datetime | None) -> AssemblyRequest:
    return AssemblyRequest(
        data_bucket=settings.data_bucket,
        training_data_prefix=settings.training_data_prefix,
        assembled_prefix=settings.assembled_prefix,
        capture_prefix=settings.capture_prefix,
        version=state.version(),
        target=run_hyperparameters(settings, state.execution_input()).get("target"),
        include_feedback=settings.include_feedback,
        feedback_max_age_days=settings.feedback_max_age_days,
        max_feedback_share=settings.max_feedback_share,
        now=now or utc_now(),
    )


def plan_assembly_step(
    settings: WorkflowSettings, s3: S3Client, athena: Athena, state: RunState, *, now: datetime | None = None
) -> dict[str, Any]:
    """AssembleData: the base data copied and the feedback query planned (``state.AssemblyPlan``)."""
    return plan_assembly(s3, athena, _request(settings, state, now))


def finish_assembly_step(settings: WorkflowSettings, s3: S3Client, athena: Athena, state: RunState) -> dict[str, Any]:
    """FinishAssembly: the manifest and Assemble's result (``state.AssemblyResult`` is what the later steps read)."""
    if state.assembly_plan is None:
        raise WorkflowError(f"no assembly plan in the state ({AssemblyPlan.path()}): AssembleData writes it")
    # The plan's time, not the clock's: the counts describe the rows the UNLOAD wrote.
    return finish_assembly(s3, athena, _request(settings, state, None), state.assembly_plan, state.assembly_query)
