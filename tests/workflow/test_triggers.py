"""The trigger shapes: what the retraining rules write is what Guard reads, and a bad trigger is named."""

from __future__ import annotations

import json
from typing import Any

import pytest

from functions.workflow import triggers
from functions.workflow.errors import WorkflowError
from functions.workflow.triggers import Trigger

EVENT_VALUES = {
    "$.detail.alarmName": "driftloop-dev-data-drift",
    "$.detail.state.reason": "Threshold Crossed",
    "$.detail.bucket.name": "data",
    "$.detail.object.key": "training-data/part-2.csv",
    "$.time": "2026-11-27T12:00:00Z",
}


def delivered(source: str) -> dict[str, Any]:
    """The execution input EventBridge delivers for the rule of ``source``, its event values filled in."""
    return dict(json.loads(json.dumps(triggers.rule_input(source, EVENT_VALUES.__getitem__))))


@pytest.mark.parametrize(
    ("source", "described"),
    [
        (triggers.ALARM, "alarm (driftloop-dev-data-drift; Threshold Crossed)"),
        (triggers.SCHEDULE, "schedule"),
        (triggers.NEW_DATA, "new_data (training-data/part-2.csv)"),
    ],
)
def test_every_rule_input_parses_back_as_the_trigger_it_was_built_as(source: str, described: str) -> None:
    execution_input = delivered(source)

    trigger = Trigger.parse(execution_input[triggers.INPUT_KEY])

    assert trigger.source == source and trigger.describe() == described
    assert trigger.to_json() == execution_input[triggers.INPUT_KEY]
    assert trigger.to_json()["time"] == "2026-11-27T12:00:00Z"


def test_an_alarm_rule_input_carries_the_alarm_its_reason_and_time() -> None:
    assert delivered(triggers.ALARM) == {
        "trigger": {
            "source": "alarm",
            "alarm_name": "driftloop-dev-data-drift",
            "reason": "Threshold Crossed",
            "time": "2026-11-27T12:00:00Z",
        }
    }


def test_a_start_without_trigger_is_manual_and_an_operators_extra_keys_are_kept_in_order() -> None:
    assert Trigger.parse(None).to_json() == {"source": "manual"}
    given = {"source": "manual", "by": "make demo", "reason": "first model"}

    trigger = Trigger.parse(given)

    assert list(trigger.to_json().items()) == list(given.items())
    assert trigger.describe() == "manual (first model)" and trigger.label == "manual"


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ({"alarm_name": "x"}, "execution input 'trigger' must be an object with a 'source' (alarm, schedule, "),
        ("alarm", "execution input 'trigger' must be an object with a 'source'"),
        ({"source": ""}, "must be an object with a 'source'"),
        ({"source": "alarm", "alarm_name": 5}, "execution input 'trigger.alarm_name' must be a string, got 5"),
        ({"source": "new_data", "key": ["a"]}, "execution input 'trigger.key' must be a string, got ['a']"),
    ],
)
def test_a_malformed_trigger_is_refused_naming_the_part_at_fault(raw: Any, problem: str) -> None:
    with pytest.raises(WorkflowError) as raised:
        Trigger.parse(raw)
    assert problem in str(raised.value)


def test_a_decisions_trigger_reads_back_with_its_label_or_none_when_it_has_none() -> None:
    recorded = Trigger.from_decision({"trigger": {"source": "alarm", "alarm_name": "driftloop-dev-drift"}})

    assert recorded is not None and recorded.label == "alarm driftloop-dev-drift"
    assert Trigger.from_decision({"sha256": "abc"}) is None
    assert Trigger.from_decision({"trigger": "garbled"}) is None
