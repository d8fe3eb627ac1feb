"""The run lock's two ends: Guard takes it (or records why the run is skipped), Release gives it back."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from functions.common.registry import Registry, new_version_id, utc_now
from functions.workflow.lock import RunLock
from functions.workflow.settings import WorkflowSettings
from functions.workflow.state import ExecutionInput, GuardResult, ReleaseResult, RunState, StepEvent
from functions.workflow.steps.hyperparameters import run_hyperparameters
from functions.workflow.triggers import Trigger

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def run_lock(settings: WorkflowSettings, s3: S3Client) -> RunLock:
    return RunLock(
        s3, settings.model_bucket, settings.registry_prefix, timeout=timedelta(seconds=settings.lock_timeout_seconds)
    )


def guard(
    settings: WorkflowSettings,
    s3: S3Client,
    registry: Registry,
    event: StepEvent,
    *,
    now: datetime | None = None,
) -> GuardResult:
    """Take the run lock and name the version, or record why this run is skipped.

    Every trigger goes through here: a run starts only when no other run holds the lock (or its holder is past the
    state machine's timeout) and the previous run ended at least ``cooldown_minutes`` ago. Either way the decision
    record shows the trigger: ``triggered`` with the version, or ``skipped`` with the reason.
    """
    now = now or utc_now()
    execution = event.require_execution("Guard")
    request = ExecutionInput.parse_start(event.state.raw)
    trigger = request.trigger.to_json()
    # Refused before the lock is taken: such a run must not start (RecordFailure records why).
    run_hyperparameters(settings, request)
    acquisition = run_lock(settings, s3).acquire(
        execution,
        started_at=event.started_at or now,
        now=now,
        trigger=trigger,
        version=new_version_id(now),
        cooldown=timedelta(minutes=settings.cooldown_minutes),
    )
    details: dict[str, Any] = {"trigger": trigger, "execution": execution}
    lock, previous = acquisition.lock, acquisition.previous
    if not acquisition.acquired or lock is None:
        reason = acquisition.reason or "the run lock is not available"
        decision = registry.record("skipped", None, [reason], details)
        return GuardResult(acquisition.acquired, execution, request.trigger, decision.id, reason=reason)
    if previous is not None and previous.state == "held" and previous.execution == execution:
        # A retried Guard invocation: the lock (and the version it names) are this execution's already.
        return GuardResult(True, execution, Trigger.parse(lock.trigger), None, lock.started_at, lock.version)
    reasons = [f"run started by trigger {request.trigger.describe()}"]
    if previous is not None and previous.state == "held":
        reasons.append(f"took over the stale run lock of {previous.describe()}: past the workflow timeout")
        details["stale_lock"] = previous.to_dict()
    decision = registry.record("triggered", lock.version, reasons, details)
    return GuardResult(True, execution, request.trigger, decision.id, lock.started_at, lock.version)


def release(
    settings: WorkflowSettings, s3: S3Client, event: StepEvent, *, now: datetime | None = None
) -> ReleaseResult:
    """Release the run lock if this execution holds it, stamping the run's end and outcome (cooldown starts)."""
    execution = event.require_execution("Release")
    outcome = run_outcome(event.state)
    released, message = run_lock(settings, s3).release(execution, now=now or utc_now(), outcome=outcome)
    return ReleaseResult(released, outcome, message)


def run_outcome(state: RunState) -> str:
    """How the run ended, from what its steps left in the state."""
    if state.error is not None:
        return "failed"
    if state.promotion is not None:
        return "promoted" if state.promotion.promoted else "superseded"
    if state.rejected:
        return "rejected"
    return "unknown"
