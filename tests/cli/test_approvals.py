"""The approval commands against stubbed STS and Step Functions clients."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import botocore.session
import pytest
from botocore.stub import Stubber

from cli.main import main
from functions.workflow.state import APPROVAL_DENIED

OPERATOR = "arn:aws:sts::000000000000:assumed-role/operators/alice"


@pytest.fixture
def approval_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Stubber]]:
    """Stubbed STS and Step Functions clients, as the CLI's boto3.client returns them."""
    session = botocore.session.get_session()
    clients = {
        name: session.create_client(
            name, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
        )
        for name in ("sts", "stepfunctions")
    }
    monkeypatch.setattr(boto3, "client", lambda name, **_: clients[name])
    stubs = {name: Stubber(client) for name, client in clients.items()}
    for stub in stubs.values():
        stub.activate()
    yield stubs
    for stub in stubs.values():
        stub.assert_no_pending_responses()


def test_approve_sends_task_success_naming_the_caller_and_the_note(
    approval_api: dict[str, Stubber], capsys: pytest.CaptureFixture[str]
) -> None:
    approval_api["sts"].add_response(
        "get_caller_identity", {"Arn": OPERATOR, "Account": "000000000000", "UserId": "AIDEXAMPLE"}
    )
    approval_api["stepfunctions"].add_response(
        "send_task_success",
        {},
        {"taskToken": "token-1", "output": json.dumps({"approved": True, "by": OPERATOR, "note": "looks good"})},
    )
    assert main(["approve", "--token", "token-1", "--note", "looks good"]) == 0
    assert f"approved by {OPERATOR}" in capsys.readouterr().out


def test_deny_fails_the_task_with_the_approval_denied_error_and_the_reason(approval_api: dict[str, Stubber]) -> None:
    approval_api["stepfunctions"].add_response(
        "send_task_failure",
        {},
        {"taskToken": "token-2", "error": APPROVAL_DENIED, "cause": "recall dropped on the holdout"},
    )
    assert main(["deny", "--token", "token-2", "--reason", "recall dropped on the holdout"]) == 0


def test_deny_refuses_a_blank_reason_and_sends_nothing(
    approval_api: dict[str, Stubber], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["deny", "--token", "token-2", "--reason", "  "]) == 1
    assert "--reason must say why" in capsys.readouterr().err


@pytest.mark.parametrize("code", ["TaskTimedOut", "TaskDoesNotExist", "InvalidToken"])
def test_answering_a_request_that_no_longer_waits_says_so(
    approval_api: dict[str, Stubber], capsys: pytest.CaptureFixture[str], code: str
) -> None:
    approval_api["stepfunctions"].add_client_error("send_task_failure", service_error_code=code)
    assert main(["deny", "--token", "stale", "--reason", "too late"]) == 1
    assert f"no longer waiting ({code})" in capsys.readouterr().err
