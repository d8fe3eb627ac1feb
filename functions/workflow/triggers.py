"""Why a run starts: the trigger shapes, owned here for the EventBridge rules that write them and the steps that
read them.

An execution input carries its trigger at ``"trigger"``::

    {"trigger": {"source": "alarm", "alarm_name": ..., "reason": ..., "time": ...}}
    {"trigger": {"source": "schedule", "time": ...}}
    {"trigger": {"source": "new_data", "bucket": ..., "key": ..., "time": ...}}
    {"trigger": {"source": "manual", "reason": ...}}        (an operator's start; any other keys are kept)

The retraining rules (``infra/constructs/retraining_triggers.py``) build their input transformers from
:func:`rule_input`; Guard parses the input with :meth:`Trigger.parse` and keeps its copy, which every decision of
the run records. A start without a trigger is a manual one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from functions.workflow.errors import WorkflowError

# Where the trigger sits in an execution input.
INPUT_KEY = "trigger"

ALARM = "alarm"
SCHEDULE = "schedule"
NEW_DATA = "new_data"
MANUAL = "manual"

# The fields each rule fills from its EventBridge event: trigger field -> JSONPath into the event.
EVENT_FIELDS: dict[str, dict[str, str]] = {
    ALARM: {"alarm_name": "$.detail.alarmName", "reason": "$.detail.state.reason", "time": "$.time"},
    SCHEDULE: {"time": "$.time"},
    NEW_DATA: {"bucket": "$.detail.bucket.name", "key": "$.detail.object.key", "time": "$.time"},
}
# Fields that are text whenever a trigger has them: what decisions and messages show of it.
TEXT_FIELDS = ("alarm_name", "reason", "time", "bucket", "key")


def rule_input(source: str, event_field: Callable[[str], str]) -> dict[str, Any]:
    """The execution input of the rule for ``source``, with ``event_field(path)`` standing for each event value
    (CDK's ``events.EventField.from_path``)."""
    fields = {name: event_field(path) for name, path in EVENT_FIELDS[source].items()}
    return {INPUT_KEY: {"source": source, **fields}}


@dataclass(frozen=True)
class Trigger:
    """One run's trigger. ``fields`` is the trigger object as given (``source`` included, key order kept): it is
    recorded as it came, so an operator's extra keys (``"by": ...``) stay in the decisions."""

    source: str
    fields: Mapping[str, Any]

    @classmethod
    def manual(cls) -> Trigger:
        return cls(MANUAL, {"source": MANUAL})

    @classmethod
    def parse(cls, raw: Any) -> Trigger:
        """The trigger of an execution input (``None``: a manual start); raises :class:`WorkflowError` naming the
        part at fault."""
        if raw is None:
            return cls.manual()
        if not isinstance(raw, Mapping) or not isinstance(raw.get("source"), str) or not raw["source"]:
            raise WorkflowError(
                f"execution input '{INPUT_KEY}' must be an object with a 'source' "
                f"({', '.join((ALARM, SCHEDULE, NEW_DATA, MANUAL))}), got {raw!r}"
            )
        for name in TEXT_FIELDS:
            if raw.get(name) is not None and not isinstance(raw[name], str):
                raise WorkflowError(f"execution input '{INPUT_KEY}.{name}' must be a string, got {raw[name]!r}")
        return cls(raw["source"], dict(raw))

    @classmethod
    def from_decision(cls, details: Mapping[str, Any]) -> Trigger | None:
        """The trigger a decision's details record, if they record a readable one (rollbacks and hand-made
        decisions have none)."""
        try:
            return None if details.get(INPUT_KEY) is None else cls.parse(details[INPUT_KEY])
        except WorkflowError:
            return None

    def text(self, name: str) -> str | None:
        value = self.fields.get(name)
        return value if isinstance(value, str) and value else None

    @property
    def alarm_name(self) -> str | None:
        return self.text("alarm_name")

    @property
    def label(self) -> str:
        """``alarm driftloop-dev-drift`` / ``schedule``: the source and, for an alarm, which one."""
        return " ".join(filter(None, (self.source, self.alarm_name)))

    def describe(self) -> str:
        """``alarm (driftloop-dev-drift; PSI 0.31 > 0.2)`` / ``schedule`` / ``manual (reason)``: for decisions."""
        words = [text for text in (self.alarm_name, self.text("reason"), self.text("key")) if text]
        return self.source + (f" ({'; '.join(words)})" if words else "")

    def to_json(self) -> dict[str, Any]:
        return dict(self.fields)
