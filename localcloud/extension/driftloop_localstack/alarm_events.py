"""CloudWatch alarm state changes published to EventBridge, as AWS does.

LocalStack 2026.3.0's CloudWatch provider (``services/cloudwatch/provider_v2.py``) evaluates alarms and runs their
SNS and Lambda actions, but never emits the ``CloudWatch Alarm State Change`` event that AWS puts on the account's
default event bus for every transition - the event an alarm-driven retraining rule listens to.

Every transition of a metric or composite alarm goes through ``CloudwatchProvider._update_state``: calls to
``SetAlarmState``, LocalStack's own alarm evaluation (its scheduler calls ``SetAlarmState`` through the gateway)
and composite alarm re-evaluation. At LocalStack start (an ``on_infra_start`` hook) :func:`install` wraps that
method: after the original has run, it builds the AWS event and puts it on the alarm's account and region's default
bus (``PutEvents`` through LocalStack's internal client) from one background thread, so events keep their order
and never run under the provider's store lock::

    {"source": "aws.cloudwatch", "detail-type": "CloudWatch Alarm State Change", "resources": [<alarm ARN>],
     "detail": {"alarmName": ...,
                "state": {"value", "reason", "reasonData" (a JSON string, when there is one), "timestamp"},
                "previousState": {...the same...},
                "configuration": {"description"?, "metrics": [{"id", "metricStat": {"metric": {"namespace",
                                  "name", "dimensions": {name: value}}, "period", "stat"}, "returnData"}]}}}

(composite alarms: ``configuration`` holds ``alarmRule``). Timestamps are ``2026-11-27T12:00:00.000+0000``, as
AWS writes them. Nothing changes for the alarm itself or its actions.

Private internals: :func:`install` checks the exact ``localstack-core`` version, that ``cloudwatch`` uses the
``provider_v2`` provider, and the method's signature; anything else aborts LocalStack's start-up.
"""

from __future__ import annotations

import inspect
import json
import logging
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, Final

from localstack.runtime import hooks

from driftloop_localstack.pinning import (
    provider_problems,
    refuse_unless_clean,
    version_problems,
)

LOG = logging.getLogger(__name__)

SOURCE: Final[str] = "aws.cloudwatch"
DETAIL_TYPE: Final[str] = "CloudWatch Alarm State Change"
_REASON_DATA_ATTRIBUTE: Final[str] = "driftloop_state_reason_data"

_publisher: ThreadPoolExecutor | None = None
_publisher_lock = threading.Lock()


def aws_timestamp(value: Any) -> str:
    """``2026-11-27T12:00:00.000+0000``; a naive datetime is local time (LocalStack uses ``datetime.now()``)."""
    if not isinstance(value, datetime):
        value = datetime.now(UTC)
    moment: datetime = value.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def _metric_stat(stat: dict[str, Any], period: Any = None) -> dict[str, Any]:
    metric = stat.get("Metric") or {}
    converted: dict[str, Any] = {
        "metric": {
            "namespace": metric.get("Namespace"),
            "name": metric.get("MetricName"),
            "dimensions": {d["Name"]: d["Value"] for d in metric.get("Dimensions") or []},
        },
        "period": int(stat.get("Period") or period or 0),
        "stat": stat.get("Stat"),
    }
    if stat.get("Unit"):
        converted["unit"] = stat["Unit"]
    return converted


def configuration(alarm: dict[str, Any]) -> dict[str, Any]:
    """The event's ``configuration``: the alarm's metrics (or rule) in the event's lower-camel-case shape."""
    config: dict[str, Any] = {}
    if alarm.get("AlarmDescription"):
        config["description"] = alarm["AlarmDescription"]
    if "AlarmRule" in alarm:  # composite alarm
        config["alarmRule"] = alarm["AlarmRule"]
        return config
    if alarm.get("Metrics"):
        metrics = []
        for query in alarm["Metrics"]:
            entry: dict[str, Any] = {"id": query.get("Id"), "returnData": bool(query.get("ReturnData", True))}
            if query.get("Expression"):
                entry["expression"] = query["Expression"]
            if query.get("Label"):
                entry["label"] = query["Label"]
            if query.get("MetricStat"):
                entry["metricStat"] = _metric_stat(query["MetricStat"], query.get("Period"))
            metrics.append(entry)
        config["metrics"] = metrics
        return config
    stat = {
        "Metric": {
            "Namespace": alarm.get("Namespace"),
            "MetricName": alarm.get("MetricName"),
            "Dimensions": alarm.get("Dimensions") or [],
        },
        "Period": alarm.get("Period"),
        "Stat": alarm.get("Statistic") or alarm.get("ExtendedStatistic"),
        "Unit": alarm.get("Unit"),
    }
    # AWS gives the single metric of a classic alarm a generated id: a stable one per alarm here.
    metric_id = str(uuid.uuid5(uuid.NAMESPACE_URL, str(alarm.get("AlarmArn"))))
    config["metrics"] = [{"id": metric_id, "metricStat": _metric_stat(stat), "returnData": True}]
    return config


def _state(value: Any, reason: Any, reason_data: str | None, timestamp: Any) -> dict[str, Any]:
    state: dict[str, Any] = {"value": value, "reason": reason}
    if reason_data:
        state["reasonData"] = reason_data
    state["timestamp"] = aws_timestamp(timestamp)
    return state


def build_event(alarm: dict[str, Any], previous: dict[str, Any], reason_data: str | None) -> dict[str, Any]:
    """A PutEvents entry for the transition ``previous`` -> the alarm's current state."""
    detail = {
        "alarmName": alarm["AlarmName"],
        "state": _state(alarm["StateValue"], alarm.get("StateReason"), reason_data, alarm.get("StateUpdatedTimestamp")),
        "previousState": _state(previous["value"], previous["reason"], previous["reasonData"], previous["timestamp"]),
        "configuration": configuration(alarm),
    }
    timestamp = alarm.get("StateUpdatedTimestamp")
    return {
        "Source": SOURCE,
        "DetailType": DETAIL_TYPE,
        "Resources": [alarm["AlarmArn"]],
        "Detail": json.dumps(detail),
        "Time": timestamp.astimezone(UTC) if isinstance(timestamp, datetime) else datetime.now(UTC),
    }


def _put(account_id: str, region: str, entry: dict[str, Any]) -> None:
    from localstack.aws.connect import connect_to

    try:
        events = connect_to(aws_access_key_id=account_id, region_name=region).events
        result = events.put_events(Entries=[entry])
        if result.get("FailedEntryCount"):
            LOG.warning("alarm state change event rejected: %s", result.get("Entries"))
    except Exception as exc:  # EventBridge may be disabled in this instance
        LOG.info("alarm state change event not published (%s): %s", entry["Resources"][0], exc)


def _submit(account_id: str, region: str, entry: dict[str, Any]) -> None:
    global _publisher
    with _publisher_lock:
        if _publisher is None:
            _publisher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="alarm-events")
        _publisher.submit(_put, account_id, region, entry)


def _check_internals() -> Any:
    from localstack.services.cloudwatch.provider_v2 import CloudwatchProvider

    problems = version_problems()
    problems += provider_problems("cloudwatch", ("default", "v2"))
    method = getattr(CloudwatchProvider, "_update_state", None)
    parameters = ["self", "context", "alarm", "state_value", "state_reason", "state_reason_data"]
    if method is None or list(inspect.signature(method).parameters) != parameters:
        problems.append("CloudwatchProvider._update_state changed")
    refuse_unless_clean("driftloop_localstack.alarm_events", problems)
    return CloudwatchProvider


def install() -> None:
    """Wrap ``CloudwatchProvider._update_state`` to publish each transition (idempotent)."""
    provider_class = _check_internals()
    original = provider_class._update_state
    if getattr(original, "driftloop_alarm_events", False):
        return

    def _update_state(
        self: Any,
        context: Any,
        alarm: Any,
        state_value: Any,
        state_reason: str,
        state_reason_data: dict[str, Any] | None = None,
    ) -> None:
        document = alarm.alarm
        previous = {
            "value": document.get("StateValue"),
            "reason": document.get("StateReason"),
            "reasonData": getattr(alarm, _REASON_DATA_ATTRIBUTE, None),
            "timestamp": document.get("StateUpdatedTimestamp"),
        }
        original(self, context, alarm, state_value, state_reason, state_reason_data)
        try:
            # The original adds "version" to the reason data; a state without data has none (LocalStack would
            # otherwise keep showing the previous state's StateReasonData).
            reason_data = json.dumps(state_reason_data) if state_reason_data else None
            setattr(alarm, _REASON_DATA_ATTRIBUTE, reason_data)
            _submit(alarm.account_id, alarm.region, build_event(document, previous, reason_data))
        except Exception:
            LOG.exception("could not build the state change event of alarm %s", document.get("AlarmName"))

    _update_state.driftloop_alarm_events = True  # type: ignore[attr-defined]
    provider_class._update_state = _update_state
    LOG.info("CloudWatch: alarm state changes are published to EventBridge")


@hooks.on_infra_start()
def install_alarm_events() -> None:
    install()
