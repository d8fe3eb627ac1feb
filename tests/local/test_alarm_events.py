"""CloudWatch alarm state changes reach EventBridge on the local cloud (driftloop_localstack.alarm_events).

Stock LocalStack 2026.3.0 never emits "CloudWatch Alarm State Change" events (it only runs SNS and Lambda alarm
actions). Verified by running this file against an instance without the ``install_alarm_events`` hook: no
message ever reaches the queue and no execution starts, so every test fails on its wait.

Each test has its own alarm, rule and queue; the rules match only their own alarm's name.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from localcloud.cloud import Cloud
from tests.plugins.local_cloud import unique

pytestmark = pytest.mark.integration

TIMEOUT = 30.0
# Evaluation runs every Period x EvaluationPeriods seconds; the first one can see no data yet.
EVALUATION_TIMEOUT = 60.0
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000$")


def wait_for(probe: Callable[[], Any], timeout: float = TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError(f"nothing after {timeout:.0f} s")


class Watch:
    """An alarm with an EventBridge rule on its state changes, delivering to an SQS queue."""

    def __init__(self, client: Callable[[str], Any]) -> None:
        self.cloudwatch = client("cloudwatch")
        self.events = client("events")
        self.sqs = client("sqs")
        self.alarm = unique("drift-alarm")
        # Each alarm watches its own metric: a value another test put must not move this alarm.
        self.service = unique("local-test")
        self.rule = unique("alarm-rule")
        self.queue_url = self.sqs.create_queue(QueueName=unique("alarm-events"))["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])
        self.events.put_rule(
            Name=self.rule,
            EventPattern=json.dumps(
                {
                    "source": ["aws.cloudwatch"],
                    "detail-type": ["CloudWatch Alarm State Change"],
                    "detail": {"alarmName": [self.alarm]},
                }
            ),
        )
        self.events.put_targets(Rule=self.rule, Targets=[{"Id": "queue", "Arn": queue_arn["Attributes"]["QueueArn"]}])

    def put_alarm(self, period: int = 60, missing: str = "missing") -> None:
        self.cloudwatch.put_metric_alarm(
            AlarmName=self.alarm,
            AlarmDescription="feature drift above the threshold",
            Namespace="driftloop/test",
            MetricName="FeatureDrift",
            Dimensions=[{"Name": "Service", "Value": self.service}],
            Statistic="Maximum",
            Period=period,
            EvaluationPeriods=1,
            Threshold=0.2,
            ComparisonOperator="GreaterThanThreshold",
            TreatMissingData=missing,
        )

    def next_event(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        def receive() -> dict[str, Any] | None:
            messages = self.sqs.receive_message(QueueUrl=self.queue_url, WaitTimeSeconds=1).get("Messages", [])
            for message in messages:
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
            return json.loads(messages[0]["Body"]) if messages else None

        return wait_for(receive, timeout)  # type: ignore[no-any-return]

    def close(self) -> None:
        targets = self.events.list_targets_by_rule(Rule=self.rule)["Targets"]
        self.events.remove_targets(Rule=self.rule, Ids=[target["Id"] for target in targets])
        self.events.delete_rule(Name=self.rule)
        self.cloudwatch.delete_alarms(AlarmNames=[self.alarm])
        self.sqs.delete_queue(QueueUrl=self.queue_url)


@pytest.fixture
def watch(local_cloud: Cloud, local_client: Callable[[str], Any]) -> Iterator[Watch]:
    if not local_cloud.managed:
        pytest.skip("tests driftloop's extension: needs the managed local AWS, not DRIFTLOOP_LOCAL_ENDPOINT")
    created = Watch(local_client)
    yield created
    created.close()


def test_set_alarm_state_publishes_the_aws_event(watch: Watch) -> None:
    watch.put_alarm()
    alarm_arn = watch.cloudwatch.describe_alarms(AlarmNames=[watch.alarm])["MetricAlarms"][0]["AlarmArn"]

    watch.cloudwatch.set_alarm_state(AlarmName=watch.alarm, StateValue="ALARM", StateReason="drift detected")
    event = watch.next_event()
    assert event["source"] == "aws.cloudwatch"
    assert event["detail-type"] == "CloudWatch Alarm State Change"
    assert event["resources"] == [alarm_arn]
    assert event["account"] == "000000000000"
    assert event["region"] == "us-east-1"
    detail = event["detail"]
    assert detail["alarmName"] == watch.alarm
    assert (detail["state"]["value"], detail["state"]["reason"]) == ("ALARM", "drift detected")
    assert detail["previousState"]["value"] == "INSUFFICIENT_DATA"
    assert TIMESTAMP.match(detail["state"]["timestamp"])
    assert TIMESTAMP.match(detail["previousState"]["timestamp"])
    assert detail["configuration"]["description"] == "feature drift above the threshold"
    [metric] = detail["configuration"]["metrics"]
    assert metric["returnData"] is True
    assert metric["metricStat"] == {
        "metric": {"namespace": "driftloop/test", "name": "FeatureDrift", "dimensions": {"Service": watch.service}},
        "period": 60,
        "stat": "Maximum",
    }

    # Every transition, with the state it left.
    watch.cloudwatch.set_alarm_state(AlarmName=watch.alarm, StateValue="OK", StateReason="drift gone")
    back = watch.next_event()["detail"]
    assert (back["previousState"]["value"], back["state"]["value"]) == ("ALARM", "OK")
    assert back["previousState"]["reason"] == "drift detected"


def test_localstack_alarm_evaluation_publishes_the_event(watch: Watch) -> None:
    """The transition comes from LocalStack's own evaluation of put_metric_data (every Period = 10 s here)."""
    watch.put_alarm(period=10, missing="notBreaching")

    def breach() -> dict[str, Any] | None:
        # A datapoint in every window until the evaluator sees one.
        watch.cloudwatch.put_metric_data(
            Namespace="driftloop/test",
            MetricData=[
                {
                    "MetricName": "FeatureDrift",
                    "Dimensions": [{"Name": "Service", "Value": watch.service}],
                    "Value": 0.9,
                }
            ],
        )
        try:
            event = watch.next_event(timeout=2)
        except AssertionError:
            return None
        return event if event["detail"]["state"]["value"] == "ALARM" else None

    event = wait_for(breach, EVALUATION_TIMEOUT)
    state = event["detail"]["state"]
    assert state["reason"].startswith("Threshold Crossed")
    reason_data = json.loads(state["reasonData"])
    assert reason_data["threshold"] == 0.2
    assert 0.9 in reason_data["recentDatapoints"]


def test_an_alarm_can_start_the_retraining_state_machine(watch: Watch, local_client: Callable[[str], Any]) -> None:
    """The retraining trigger as the monitoring stack synthesizes it (infra/constructs/retraining_triggers.py): a
    rule on the alarm's ARN entering ALARM, whose Step Functions target transforms the event."""
    sfn = local_client("stepfunctions")
    machine = sfn.create_state_machine(
        name=unique("retrain"),
        definition=json.dumps({"StartAt": "Received", "States": {"Received": {"Type": "Pass", "End": True}}}),
        roleArn="arn:aws:iam::000000000000:role/driftloop-events",
    )["stateMachineArn"]
    watch.put_alarm()
    alarm_arn = watch.cloudwatch.describe_alarms(AlarmNames=[watch.alarm])["MetricAlarms"][0]["AlarmArn"]
    rule = unique("retrain-on-alarm")
    watch.events.put_rule(
        Name=rule,
        EventPattern=json.dumps(
            {
                "source": ["aws.cloudwatch"],
                "detail-type": ["CloudWatch Alarm State Change"],
                "resources": [alarm_arn],
                "detail": {"state": {"value": ["ALARM"]}},
            }
        ),
    )
    watch.events.put_targets(
        Rule=rule,
        Targets=[
            {
                "Id": "Target0",
                "Arn": machine,
                "RoleArn": "arn:aws:iam::000000000000:role/driftloop-events",
                # What CDK renders for RuleTargetInput.from_object({... EventField ...}).
                "InputTransformer": {
                    "InputPathsMap": {
                        "detail-alarmName": "$.detail.alarmName",
                        "detail-state-reason": "$.detail.state.reason",
                        "time": "$.time",
                    },
                    "InputTemplate": '{"trigger":{"source":"alarm","alarm_name":<detail-alarmName>,'
                    '"reason":<detail-state-reason>,"time":<time>}}',
                },
            }
        ],
    )
    try:
        watch.cloudwatch.set_alarm_state(AlarmName=watch.alarm, StateValue="ALARM", StateReason="drift detected")
        event = watch.next_event()
        executions = wait_for(lambda: sfn.list_executions(stateMachineArn=machine)["executions"])
        # Named after the event (its id is gone from the transformed input).
        assert [e["name"] for e in executions] == [event["id"]]
        started = sfn.describe_execution(executionArn=executions[0]["executionArn"])
        assert json.loads(started["input"]) == {
            "trigger": {"source": "alarm", "alarm_name": watch.alarm, "reason": "drift detected", "time": event["time"]}
        }
        # Back to OK: the rule only listens for ALARM.
        watch.cloudwatch.set_alarm_state(AlarmName=watch.alarm, StateValue="OK", StateReason="drift gone")
        assert watch.next_event()["detail"]["state"]["value"] == "OK"
        time.sleep(1)
        assert len(sfn.list_executions(stateMachineArn=machine)["executions"]) == 1
    finally:
        watch.events.remove_targets(Rule=rule, Ids=["Target0"])
        watch.events.delete_rule(Name=rule)
