"""EventBridge -> Step Functions targets that transform the event (driftloop_localstack.eventbridge_targets).

Stock LocalStack 2026.3.0 names the execution after ``event["id"]`` of the *transformed* input, so every target
with an InputTransformer or InputPath fails with "Failed to deliver to target ...: 'id'" and starts nothing.
Verified by running this file against an instance without the ``install_eventbridge_targets`` hook: both tests
fail waiting for an execution.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from localcloud.cloud import Cloud
from tests.plugins.local_cloud import unique

pytestmark = pytest.mark.integration

TIMEOUT = 30.0
ROLE = "arn:aws:iam::000000000000:role/driftloop-events"


def wait_for(probe: Callable[[], Any]) -> Any:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError(f"nothing after {TIMEOUT:.0f} s")


class Route:
    """A rule on one custom source, with a state machine that records its input as its target."""

    def __init__(self, client: Callable[[str], Any]) -> None:
        self.events = client("events")
        self.sfn = client("stepfunctions")
        self.source = f"driftloop.test.{uuid.uuid4().hex[:10]}"
        self.rule = unique("route")
        self.events.put_rule(Name=self.rule, EventPattern=json.dumps({"source": [self.source]}))
        self.machine = self.sfn.create_state_machine(
            name=unique("target"),
            definition=json.dumps({"StartAt": "Received", "States": {"Received": {"Type": "Pass", "End": True}}}),
            roleArn=ROLE,
        )["stateMachineArn"]

    def target(self, **transformation: Any) -> None:
        self.events.put_targets(
            Rule=self.rule, Targets=[{"Id": "workflow", "Arn": self.machine, "RoleArn": ROLE, **transformation}]
        )

    def put(self, detail: dict[str, Any]) -> str:
        response = self.events.put_events(
            Entries=[{"Source": self.source, "DetailType": "Retraining Requested", "Detail": json.dumps(detail)}]
        )
        assert response["FailedEntryCount"] == 0, response
        return str(response["Entries"][0]["EventId"])

    def executions(self) -> list[dict[str, Any]]:
        found = wait_for(lambda: self.sfn.list_executions(stateMachineArn=self.machine)["executions"])
        return [
            {
                "name": e["name"],
                "input": json.loads(self.sfn.describe_execution(executionArn=e["executionArn"])["input"]),
            }
            for e in found
        ]

    def close(self) -> None:
        self.events.remove_targets(Rule=self.rule, Ids=["workflow"])
        self.events.delete_rule(Name=self.rule)
        self.sfn.delete_state_machine(stateMachineArn=self.machine)


@pytest.fixture
def route(local_cloud: Cloud, local_client: Callable[[str], Any]) -> Iterator[Route]:
    if not local_cloud.managed:
        pytest.skip("tests driftloop's extension: needs the managed local AWS, not DRIFTLOOP_LOCAL_ENDPOINT")
    created = Route(local_client)
    yield created
    created.close()


def test_an_input_transformer_target_starts_an_execution_with_the_transformed_input(route: Route) -> None:
    route.target(
        InputTransformer={
            "InputPathsMap": {"reason": "$.detail.reason", "kind": "$.detail-type"},
            "InputTemplate": '{"trigger": {"source": "event", "kind": <kind>, "reason": <reason>}}',
        }
    )
    event_id = route.put({"reason": "schedule"})
    # Named after the original event, whose id the transformed input no longer has.
    assert route.executions() == [
        {
            "name": event_id,
            "input": {"trigger": {"source": "event", "kind": "Retraining Requested", "reason": "schedule"}},
        }
    ]


def test_an_input_path_target_starts_an_execution_with_the_selected_part(route: Route) -> None:
    route.target(InputPath="$.detail")
    event_id = route.put({"hyperparameters": {"max_depth": "8"}})
    assert route.executions() == [{"name": event_id, "input": {"hyperparameters": {"max_depth": "8"}}}]
