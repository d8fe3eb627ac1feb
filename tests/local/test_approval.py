"""Manual approval on the local cloud: the workflow's Approval state, its request_approval Lambda, the SNS message an
operator reads, and ``driftloop approve`` / ``deny`` answering it.

The state machine mirrors the workflow's Approval state (infra/constructs/training_workflow.py: a
``lambda:invoke.waitForTaskToken`` with the token and the whole state, the answer at ``$.approval``, a denial caught
to the Reject branch); the Lambda is the real handler, zipped from functions/.
"""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from cli.main import main
from functions.workflow import approver
from functions.workflow.approver import Answer
from functions.workflow.settings import ApprovalSettings
from functions.workflow.state import APPROVAL_DENIED, APPROVAL_TIMEOUT
from infra.bundling import WORKFLOW, LocalPythonBundler
from localcloud.cloud import Cloud
from tests.plugins.local_cloud import boto3_client, unique

# The operator's shell: the CLI's boto3 clients reach the local cloud through the environment.
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("local_aws_env")]

ROLE = "arn:aws:iam::000000000000:role/driftloop-test-approval"
TIMEOUT = 120.0
# The run and the version the approval message names, which the answer's proof is signed for.
RUN = "arn:aws:states:us-east-1:000000000000:execution:driftloop-training:run-1"
VERSION = "v-20261205-0001"
STATE = {
    "guard": {"execution_id": RUN},
    "prepare": {"version": VERSION, "training_job_name": "driftloop-20261205-0001"},
    "registration": {
        "version": VERSION,
        "passed": True,
        "metric": "roc_auc",
        "challenger": 0.91,
        "champion": 0.88,
        "champion_version": "v-20261201-0001",
        "reasons": ["challenger roc_auc=0.91 beats the champion's 0.88 by more than min_improvement 0.005"],
    },
    "trigger": {"source": "manual", "reason": "approval test"},
}


def functions_zip() -> bytes:
    """The workflow Lambdas' bundle as the stack deploys it: the sources and their pinned packages (Powertools)."""
    buffer = io.BytesIO()
    with tempfile.TemporaryDirectory() as built, zipfile.ZipFile(buffer, "w") as archive:
        LocalPythonBundler(WORKFLOW.sources, WORKFLOW.requirements.path).try_bundle(built)
        for path in sorted(Path(built).rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(built).as_posix())
    return buffer.getvalue()


def approval_machine(function_arn: str) -> dict[str, Any]:
    return {
        "StartAt": "Approval",
        "States": {
            "Approval": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                "Parameters": {
                    "FunctionName": function_arn,
                    "Payload": {"token.$": "$$.Task.Token", "state.$": "$"},
                },
                "ResultPath": "$.approval",
                "TimeoutSeconds": 300,
                "Catch": [
                    {"ErrorEquals": [APPROVAL_DENIED, APPROVAL_TIMEOUT], "ResultPath": "$.approval", "Next": "Reject"}
                ],
                "Next": "Promote",
            },
            "Promote": {"Type": "Pass", "Result": "promote", "ResultPath": "$.next", "End": True},
            "Reject": {"Type": "Pass", "Result": "reject", "ResultPath": "$.next", "End": True},
        },
    }


class Approvals:
    """A deployed approval step: the topic with a queue subscribed, the Lambda, the state machine."""

    def __init__(self, running: Cloud) -> None:
        self.sfn = boto3_client(running, "stepfunctions")
        self.sqs = boto3_client(running, "sqs")
        sns = boto3_client(running, "sns")
        topic = sns.create_topic(Name=unique("approvals"))["TopicArn"]
        self.queue = self.sqs.create_queue(QueueName=unique("approvals"))["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.queue, AttributeNames=["QueueArn"])["Attributes"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn["QueueArn"])
        lambda_ = boto3_client(running, "lambda")
        name = unique("request-approval")
        function_arn = lambda_.create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=ROLE,
            Handler="functions.workflow.handlers.request_approval",
            Code={"ZipFile": functions_zip()},
            Timeout=30,
            MemorySize=256,
            Environment={"Variables": ApprovalSettings(service="driftloop-test-approval", topic_arn=topic).to_env()},
        )["FunctionArn"]
        lambda_.get_waiter("function_active_v2").wait(
            FunctionName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 150}
        )
        self.machine = self.sfn.create_state_machine(
            name=unique("approval"), definition=json.dumps(approval_machine(function_arn)), roleArn=ROLE
        )["stateMachineArn"]

    def start(self) -> str:
        execution: str = self.sfn.start_execution(stateMachineArn=self.machine, input=json.dumps(STATE))["executionArn"]
        return execution

    def request(self, execution: str) -> dict[str, str]:
        """The approval message ``execution`` published: its subject and text."""
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            described = self.sfn.describe_execution(executionArn=execution)
            if described["status"] != "RUNNING":
                raise AssertionError(f"the execution ended before asking for approval: {described}")
            received = self.sqs.receive_message(QueueUrl=self.queue, WaitTimeSeconds=2, MaxNumberOfMessages=1)
            for message in received.get("Messages", []):
                self.sqs.delete_message(QueueUrl=self.queue, ReceiptHandle=message["ReceiptHandle"])
                body = json.loads(message["Body"])
                return {"subject": body["Subject"], "message": body["Message"]}
        raise AssertionError(f"no approval request on the topic within {TIMEOUT:.0f} s")

    def finished(self, execution: str) -> dict[str, Any]:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            described: dict[str, Any] = self.sfn.describe_execution(executionArn=execution)
            if described["status"] != "RUNNING":
                return described
            time.sleep(0.3)
        raise AssertionError(f"{execution} still running after {TIMEOUT:.0f} s")


@pytest.fixture(scope="module")
def approvals(local_cloud: Cloud) -> Approvals:
    return Approvals(local_cloud)


def sts() -> str:
    """The local cloud's STS, where the CLI signs the proof for and the workflow's Lambdas send it."""
    return approver.sts_endpoint(os.environ, os.environ.get("AWS_DEFAULT_REGION"))


def command_in(message: str, verb: str) -> list[str]:
    """The answer command the message tells the operator to run, as arguments (the token is shell-quoted)."""
    [line] = [line for line in message.splitlines() if line.strip().startswith(f"driftloop {verb} ")]
    return shlex.split(line)[1:]


def test_an_approved_run_goes_on_to_promote_with_the_note_and_a_proof_the_local_sts_names_the_approver_from(
    approvals: Approvals, capsys: pytest.CaptureFixture[str]
) -> None:
    execution = approvals.start()
    request = approvals.request(execution)
    assert request["subject"] == "driftloop: approve promoting v-20261205-0001?"
    assert "Champion v-20261201-0001: 0.88" in request["message"]
    arguments = command_in(request["message"], "approve")
    arguments[arguments.index("--note") + 1] = "checked the holdout counts"

    assert main(arguments) == 0

    described = approvals.finished(execution)
    assert described["status"] == "SUCCEEDED", described
    output = json.loads(described["output"])
    assert output["next"] == "promote"
    assert output["approval"]["approved"] is True
    assert output["approval"]["note"] == "checked the holdout counts"
    assert "by" not in output["approval"]
    # What Promote does with the answer: the local cloud's STS names who signed its proof, made for this answer.
    answer = Answer(RUN, VERSION, approved=True, words="checked the holdout counts")
    assert re.fullmatch(r"arn:aws:(iam|sts)::\d{12}:.+", approver.verify(output["approval"]["proof"], answer, sts()))
    assert "approved" in capsys.readouterr().out


def test_a_denied_run_goes_to_reject_with_the_reason(approvals: Approvals) -> None:
    execution = approvals.start()
    arguments = command_in(approvals.request(execution)["message"], "deny")
    arguments[arguments.index("--reason") + 1] = "the holdout is too small this week"

    assert main(arguments) == 0

    described = approvals.finished(execution)
    assert described["status"] == "SUCCEEDED", described
    output = json.loads(described["output"])
    assert output["next"] == "reject"
    assert output["approval"]["Error"] == APPROVAL_DENIED
    denial = json.loads(output["approval"]["Cause"])
    assert denial["reason"] == "the holdout is too small this week"
    # What Reject does with it: the proof names who denied, for this run's version and a denial.
    answer = Answer(RUN, VERSION, approved=False, words=denial["reason"])
    assert re.fullmatch(r"arn:aws:(iam|sts)::\d{12}:.+", approver.verify(denial["proof"], answer, sts()))


def test_answering_a_request_twice_is_a_clear_error_not_a_traceback(
    approvals: Approvals, capsys: pytest.CaptureFixture[str]
) -> None:
    execution = approvals.start()
    arguments = command_in(approvals.request(execution)["message"], "approve")
    assert main(arguments) == 0
    assert approvals.finished(execution)["status"] == "SUCCEEDED"

    assert main(arguments) == 1
    assert "no longer waiting" in capsys.readouterr().err
