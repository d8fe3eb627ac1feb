"""Recording a run's decisions once: a retried step gets its first attempt's decision back."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from functions.common.registry import Action, Decision, Registry
from functions.common.text_values import parse_time
from functions.workflow.state import RunState

# Step Functions stamps the execution's start with its clock, the Lambdas stamp decisions with theirs: a run's
# decisions are looked up from a little before its start.
CLOCK_SKEW = timedelta(minutes=5)


def run_of(state: RunState) -> tuple[str, datetime] | None:
    """This run's execution id and the earliest time its decisions can carry, from Guard's result."""
    guarded = state.guard
    started_at = None if guarded is None else parse_time(guarded.started_at)
    if guarded is None or not guarded.execution_id or started_at is None:
        return None
    return guarded.execution_id, started_at - CLOCK_SKEW


def record_for_run(
    registry: Registry,
    state: RunState,
    action: Action,
    version: str | None,
    reasons: list[str],
    details: Mapping[str, Any],
    execution_id: str | None = None,
) -> Decision:
    """Record this run's decision once.

    Without Guard's result (Guard itself failed) there is no run to look up: the decision is simply recorded,
    under ``execution_id`` when the caller knows it.
    """
    run = run_of(state)
    if run is None:
        execution = state.execution_id or execution_id
        return registry.record(action, version, reasons, {**details, "execution": execution})
    return registry.record_once(action, version, reasons, details, execution=run[0], since=run[1])


def readable_cause(cause: Any) -> str:
    """Step Functions passes the cause as a JSON string for Lambda errors; keep the message."""
    if isinstance(cause, str):
        try:
            parsed = json.loads(cause)
        except ValueError:
            return cause
        if isinstance(parsed, dict):
            return str(parsed.get("errorMessage") or parsed.get("FailureReason") or parsed)
    return str(cause) if cause is not None else "no cause given"
