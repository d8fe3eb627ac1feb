"""Assemble: the run's training set (base data, plus labelled captures when feedback is included), in two steps
around the state machine's Athena UNLOAD (``functions/workflow/assembly.py``)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from functions.common.athena import Athena
from functions.common.bundle import ModelMetadata
from functions.common.registry import Registry, utc_now
from functions.workflow.assembly import AssemblyRequest, Reference, finish_assembly, plan_assembly
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
        new_value_min_callers=settings.new_value_min_callers,
        now=now or utc_now(),
    )


def _registry(settings: WorkflowSettings, s3: S3Client) -> Registry:
    return Registry(s3, settings.model_bucket, settings.registry_prefix)


def _reference(registry: Registry, version: str | None) -> Reference | None:
    """The features champion ``version`` was trained on, as the registry sealed them (None: no champion)."""
    if version is None:
        return None
    return Reference(version, ModelMetadata.from_dict(registry.get_metadata(version)).features)


def plan_assembly_step(
    settings: WorkflowSettings, s3: S3Client, athena: Athena, state: RunState, *, now: datetime | None = None
) -> dict[str, Any]:
    """AssembleData: the base data copied and the feedback query planned (``state.AssemblyPlan``), new values
    judged against the live champion's."""
    request = _request(settings, state, now)
    registry = _registry(settings, s3)
    champion = registry.champion() if request.include_feedback else None
    return plan_assembly(s3, athena, request, _reference(registry, None if champion is None else champion.version))


def finish_assembly_step(settings: WorkflowSettings, s3: S3Client, athena: Athena, state: RunState) -> dict[str, Any]:
    """FinishAssembly: the manifest and Assemble's result (``state.AssemblyResult`` is what the later steps read)."""
    if state.assembly_plan is None:
        raise WorkflowError(f"no assembly plan in the state ({AssemblyPlan.path()}): AssembleData writes it")
    plan = state.assembly_plan
    # The plan's time and champion, not the clock's and the live one: the counts describe the rows the UNLOAD wrote.
    reference = _reference(_registry(settings, s3), None if plan.feedback is None else plan.feedback.get("reference"))
    return finish_assembly(s3, athena, _request(settings, state, None), plan, state.assembly_query, reference)
