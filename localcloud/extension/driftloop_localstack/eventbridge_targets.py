"""EventBridge -> Step Functions targets with ``InputTransformer`` or ``InputPath``.

In LocalStack 2026.3.0 (``services/events/target.py``) the Step Functions target sender names the execution after
``event["id"]``, but it only sees the event *after* the target's input transformation: with an
``InputTransformer`` or ``InputPath`` the key is gone and delivery fails with
``Failed to deliver to target ...: 'id'`` - no execution starts.

At LocalStack start (an ``on_infra_start`` hook) :func:`install` registers :class:`StatesTargetSender` for
``states`` targets through LocalStack's own ``TargetSenderFactory.register_target_sender``. It remembers the id of
the *original* event while LocalStack's ``process_event`` transforms it, and names the execution after that id
whatever the input (an event id is a UUID, a valid execution name; the execution input is the transformed event,
unchanged). Without an id (a scheduled invocation, say) or if a second target of the same event already used the
name with a different input, the name is a fresh unique id, as LocalStack does for constant ``Input``.

Private internals: :func:`install` checks the exact ``localstack-core`` version, that ``events`` uses the default
(v2) provider, and the target sender API it extends; anything else aborts LocalStack's start-up.
"""

from __future__ import annotations

import inspect
import logging
from contextvars import ContextVar
from typing import Any

from botocore.exceptions import ClientError
from localstack.runtime import hooks
from localstack.services.events import target
from localstack.utils.strings import long_uid

from driftloop_localstack.pinning import (
    provider_problems,
    refuse_unless_clean,
    version_problems,
)

LOG = logging.getLogger(__name__)


# The id of the event being processed, before any input transformation (process_event -> send_event, one thread).
_ORIGINAL_EVENT_ID: ContextVar[str | None] = ContextVar("driftloop_original_event_id", default=None)


class StatesTargetSender(target.StatesTargetSender):
    """LocalStack's Step Functions target sender, naming executions after the original event's id."""

    def process_event(self, event: Any, trace_header: Any) -> None:
        event_id = event.get("id") if isinstance(event, dict) else None
        token = _ORIGINAL_EVENT_ID.set(str(event_id) if event_id else None)
        try:
            super().process_event(event, trace_header)
        finally:
            _ORIGINAL_EVENT_ID.reset(token)

    def send_event(self, event: Any, trace_header: Any) -> None:
        self.service = "stepfunctions"
        name = _ORIGINAL_EVENT_ID.get() or long_uid()
        payload = target.to_json_str(event)
        try:
            self.client.start_execution(stateMachineArn=self.target["Arn"], name=name, input=payload)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ExecutionAlreadyExists":
                raise
            self.client.start_execution(stateMachineArn=self.target["Arn"], name=long_uid(), input=payload)


def _check_internals() -> None:

    problems = version_problems()
    problems += provider_problems("events", ("default", "v2"))
    factory = getattr(target, "TargetSenderFactory", None)
    if factory is None or not hasattr(factory, "register_target_sender"):
        problems.append("target.TargetSenderFactory.register_target_sender is gone")
    elif factory.target_map.get("states") not in (target.StatesTargetSender, StatesTargetSender):
        problems.append("the 'states' target sender is no longer LocalStack's StatesTargetSender")
    for method in ("process_event", "send_event"):
        found = getattr(target.TargetSender, method, None)
        if found is None or list(inspect.signature(found).parameters) != ["self", "event", "trace_header"]:
            problems.append(f"TargetSender.{method} changed")
    if not callable(getattr(target, "to_json_str", None)):
        problems.append("target.to_json_str is gone")
    refuse_unless_clean("driftloop_localstack.eventbridge_targets", problems)


def install() -> None:
    """Register :class:`StatesTargetSender` for ``states`` targets (idempotent)."""
    _check_internals()
    target.TargetSenderFactory.register_target_sender("states", StatesTargetSender)
    LOG.info("EventBridge: Step Functions targets accept InputTransformer and InputPath")


@hooks.on_infra_start()
def install_eventbridge_targets() -> None:
    install()
