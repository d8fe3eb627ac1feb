"""The approval commands against stubbed STS and Step Functions clients."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.stub import ANY, Stubber

from cli.main import main
from functions.workflow import approver
from functions.workflow.state import APPROVAL_DENIED


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


def test_approve_sends_the_note_and_a_presigned_identity_proof_but_no_identity_of_its_own(
    approval_api: dict[str, Stubber], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_STS", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    sent: dict[str, Any] = {}
    approval_api["stepfunctions"].add_response("send_task_success", {}, {"taskToken": "token-1", "output": ANY})
    client = approval_api["stepfunctions"].client
    client.meta.events.register(
        "before-parameter-build.sfn.SendTaskSuccess", lambda params, **_: sent.update(json.loads(params["output"]))
    )

    assert main(["approve", "--token", "token-1", "--note", "looks good"]) == 0

    # No STS call and no "by": who approved is what STS finds in the proof, when Promote asks.
    assert set(sent) == {"approved", "note", "proof"} and "by" not in sent
    assert (sent["approved"], sent["note"]) == (True, "looks good")
    proof = urllib.parse.parse_qs(urllib.parse.urlsplit(sent["proof"]).query)
    assert proof["Action"] == ["GetCallerIdentity"]
    assert proof["X-Amz-SignedHeaders"] == [f"host;{approver.HEADER}"]
    assert "approved" in capsys.readouterr().out


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
