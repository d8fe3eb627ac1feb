"""Alarm -> EventBridge -> state machine: a model alarm going to ALARM starts a retraining run whose trigger names
the alarm. The drift alarm is raised by CloudWatch's own evaluation of a datapoint above the threshold; the
quality alarm by ``SetAlarmState``; an operational alarm must start nothing.

Each test first resets its alarm to OK (only a transition to ALARM emits the event) and waits until no run is in
progress, so the run it starts takes the lock; whatever it started has ended when it returns."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from tests.integration.support import ALARM_TIMEOUT, Deployed, Execution, stays_absent, wait_for

pytestmark = pytest.mark.integration

RESET = "integration test: reset before the test"


def reset(deployed: Deployed, name: str) -> datetime:
    deployed.cloudwatch.set_alarm_state(AlarmName=name, StateValue="OK", StateReason=RESET)
    assert deployed.alarm(name)["StateValue"] == "OK"
    return datetime.now(UTC)


def started_by(deployed: Deployed, alarm: str, since: datetime) -> str | None:
    """An execution EventBridge started for ``alarm`` since ``since``, if there is one."""
    for item in deployed.executions_started_after(since):
        trigger = deployed.execution_input(item["executionArn"]).get("trigger") or {}
        if trigger.get("alarm_name") == alarm:
            return str(item["executionArn"])
    return None


def run_started_by(deployed: Deployed, alarm: str, since: datetime, timeout: float = 60) -> str:
    return wait_for(
        f"an execution started by {alarm}",
        lambda: started_by(deployed, alarm, since),
        timeout=timeout,
        interval=1.0,
        seen=lambda: [item["name"] for item in deployed.executions_started_after(since)],
    )


def assert_alarm_run(deployed: Deployed, run: Execution, alarm: str, reason: str) -> None:
    assert run.status == "SUCCEEDED", run
    trigger = run.input["trigger"]
    assert trigger == {"source": "alarm", "alarm_name": alarm, "reason": reason, "time": trigger["time"]}
    assert datetime.fromisoformat(trigger["time"]) <= datetime.now(UTC)
    guard = deployed.decisions_of(run.arn)[0]
    assert guard.action in ("triggered", "skipped"), guard
    assert guard.details["trigger"] == run.input["trigger"]
    if guard.action == "triggered":
        assert guard.reasons[0] == f"run started by trigger alarm ({alarm}; {reason})"
        assert run.states[-1] in ("Promoted", "Rejected", "Superseded"), run.states


def test_cloudwatch_raising_the_drift_alarm_starts_a_retraining_run(deployed: Deployed) -> None:
    name = f"{deployed.prefix}-data-drift"
    alarm: dict[str, Any] = deployed.alarm(name)
    deployed.wait_until_idle()
    since = reset(deployed, name)

    deployed.cloudwatch.put_metric_data(
        Namespace=alarm["Namespace"],
        MetricData=[
            {
                "MetricName": alarm["MetricName"],
                "Dimensions": alarm["Dimensions"],
                "Value": alarm["Threshold"] + 0.5,
                "Timestamp": datetime.now(UTC),
            }
        ],
    )
    raised = wait_for(
        f"CloudWatch to evaluate {name} to ALARM",
        lambda: state if (state := deployed.alarm(name))["StateValue"] == "ALARM" else None,
        timeout=ALARM_TIMEOUT,
        interval=2.0,
        seen=lambda: deployed.alarm(name)["StateValue"],
    )

    assert raised["StateReason"] != RESET
    assert raised["StateReason"].startswith("Threshold Crossed"), raised["StateReason"]
    run = deployed.finished(run_started_by(deployed, name, since))
    assert_alarm_run(deployed, run, name, raised["StateReason"])
    reset(deployed, name)


def test_setting_the_quality_alarm_to_alarm_starts_a_retraining_run(deployed: Deployed) -> None:
    name = f"{deployed.prefix}-live-accuracy"
    reason = "integration test: live accuracy fell below the threshold"
    deployed.wait_until_idle()
    since = reset(deployed, name)

    deployed.cloudwatch.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason=reason)

    try:
        run = deployed.finished(run_started_by(deployed, name, since))
        assert_alarm_run(deployed, run, name, reason)
    finally:
        reset(deployed, name)


def test_an_operational_alarm_starts_no_run(deployed: Deployed) -> None:
    name = f"{deployed.prefix}-api-5xx-rate"
    since = reset(deployed, name)

    deployed.cloudwatch.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="integration test: 5XX")

    try:
        stays_absent(
            f"{name} started an execution",
            lambda: started_by(deployed, name, since),
            duration=10,
        )
    finally:
        reset(deployed, name)
