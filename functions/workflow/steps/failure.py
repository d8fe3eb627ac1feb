"""RecordFailure: a failed run's decision, with the error Step Functions caught."""

from __future__ import annotations

from typing import Any

from functions.common.registry import Registry
from functions.workflow.errors import WorkflowError
from functions.workflow.state import FailureResult, PrepareResult, RunState, StepError
from functions.workflow.steps.decisions import readable_cause, record_for_run
from functions.workflow.triggers import INPUT_KEY as TRIGGER_KEY


def record_failure(registry: Registry, state: RunState, execution_id: str | None = None) -> FailureResult:
    """Record a failed run; the result's message is what the failure notification says.

    ``execution_id`` (from the context object) names the run even when Guard itself failed and left no result.
    """
    error = state.error or StepError(None, None)
    prepared = state.prepare or PrepareResult(version=None, training_job_name=None)
    version = prepared.version or (state.guard.version if state.guard else None) or None
    reasons = [f"{error.error or 'Unknown error'}: {readable_cause(error.cause)}"]
    trigger: dict[str, Any]
    try:
        trigger = state.trigger().to_json()
    except WorkflowError:
        # The execution input's trigger was refused (that is the failure): recorded as it came.
        trigger = {"source": "invalid", "input": state.raw.get(TRIGGER_KEY)}
    details = {"training_job_name": prepared.training_job_name, "trigger": trigger}
    decision = record_for_run(registry, state, "failed", version, reasons, details, execution_id)
    return FailureResult(
        decision_id=decision.id,
        version=version,
        message=f"driftloop training run failed (version {version or 'not assigned'}): {decision.reasons[0]}",
    )
