"""Assemble: the run's training set (base data, plus labelled captures when feedback is included)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from functions.common.registry import utc_now
from functions.workflow.assembly import AssemblyRequest, assemble
from functions.workflow.settings import WorkflowSettings
from functions.workflow.state import RunState
from functions.workflow.steps.hyperparameters import run_hyperparameters

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def assemble_data(
    settings: WorkflowSettings, s3: S3Client, state: RunState, *, now: datetime | None = None
) -> dict[str, Any]:
    """Assemble's result as ``assembly.py`` writes it (``state.AssemblyResult`` is what the later steps read)."""
    request = AssemblyRequest(
        data_bucket=settings.data_bucket,
        training_data_prefix=settings.training_data_prefix,
        assembled_prefix=settings.assembled_prefix,
        capture_prefix=settings.capture_prefix,
        feedback_prefix=settings.feedback_prefix,
        version=state.version(),
        target=run_hyperparameters(settings, state.execution_input()).get("target"),
        include_feedback=settings.include_feedback,
        feedback_max_age_days=settings.feedback_max_age_days,
        max_feedback_share=settings.max_feedback_share,
        now=now or utc_now(),
    )
    return assemble(s3, request)
