"""Where EventBridge puts the events it could not deliver to a rule's target (a retraining trigger that could not
start the workflow, a monitor run that could not be invoked), so that none is lost silently.

Every rule target gets this queue as its dead-letter queue, with a bounded retry policy (:func:`retry_policy`);
an alarm on the queue (``OperationalAlarms``) tells the operations topic as soon as an event lands there.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_sqs as sqs
from constructs import Construct

# SQS keeps a message at most 14 days: the time operators have to read what was not delivered.
RETENTION = Duration.days(14)


class EventDeadLetters(Construct):
    """An SQS queue: SSE-SQS encrypted (EventBridge needs no key grant), TLS-only, 14 days' retention."""

    def __init__(self, scope: Construct, construct_id: str, *, removal_policy: RemovalPolicy) -> None:
        super().__init__(scope, construct_id)
        self.queue = sqs.Queue(
            self,
            "Queue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=RETENTION,
            removal_policy=removal_policy,
        )

    def target_options(self, *, retry_attempts: int, max_event_age: Duration) -> dict[str, Any]:
        """The keyword arguments every ``aws_events_targets`` target takes for failed deliveries."""
        return {"dead_letter_queue": self.queue, "retry_attempts": retry_attempts, "max_event_age": max_event_age}
