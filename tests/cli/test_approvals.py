"""The approval commands against stubbed STS and Step Functions clients."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.stub import ANY, Stubber

from cli.main import main
from functions.workflow import approver
from functions.workflow.approver import Answer
from functions.workflow.errors import WorkflowError
from functions.workflow.state import APPROVAL_DENIED
from tests.cli.stubs import stubbed_clients
from tests.workflow.sts import ALICE, FakeSts


@pytest.fixture
def approval_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Stubber]]:
    """Stubbed STS and Step Functions clients, as the CLI's boto3.client returns them, in the region's own STS."""
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_STS", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    yield from stubbed_clients(monkeypatch, "sts", "stepfunctions")


RUN = "arn:aws:states:us-east-1:123456789012:execution:driftloop-training:run-1"
VERSION = "v-20261207-0001"
# What the approval message's commands carry besides the token.
BOUND = ["--execution", RUN, "--version", VERSION]


def sts_finds(proof: str, answer: Answer) -> str:
    """Who STS says signed ``proof`` (with the fixture's credentials) if it was made for ``answer``."""
    endpoint = f"https://{urllib.parse.urlsplit(proof).netloc}"
    return approver.verify(proof, answer, endpoint, FakeSts(key="testing", secret="testing"))


def test_approve_sends_the_note_and_a_proof_for_this_run_version_and_answer_but_no_identity_of_its_own(
    approval_api: dict[str, Stubber], capsys: pytest.CaptureFixture[str]
) -> None:
    sent: dict[str, Any] = {}
    approval_api["stepfunctions"].add_response("send_task_success", {}, {"taskToken": "token-1", "output": ANY})
    client = approval_api["stepfunctions"].client
    client.meta.events.register(
        "before-parameter-build.sfn.SendTaskSuccess", lambda params, **_: sent.update(json.loads(params["output"]))
    )

    assert main(["approve", "--token", "token-1", *BOUND, "--note", "looks good"]) == 0

    # No STS call and no "by": who approved is what STS finds in the proof, when Promote asks.
    assert set(sent) == {"approved", "note", "proof"} and "by" not in sent
    assert (sent["approved"], sent["note"]) == (True, "looks good")
    assert sts_finds(sent["proof"], Answer(RUN, VERSION, approved=True, words="looks good")) == ALICE
    with pytest.raises(WorkflowError, match="SignatureDoesNotMatch"):
        sts_finds(sent["proof"], Answer(RUN, "v-20261207-0002", approved=True, words="looks good"))
    assert "approved" in capsys.readouterr().out


def test_deny_fails_the_task_with_the_approval_denied_error_the_reason_and_a_proof_for_the_denial(
    approval_api: dict[str, Stubber],
) -> None:
    sent: dict[str, Any] = {}
    approval_api["stepfunctions"].add_response(
        "send_task_failure", {}, {"taskToken": "token-2", "error": APPROVAL_DENIED, "cause": ANY}
    )
    client = approval_api["stepfunctions"].client
    client.meta.events.register(
        "before-parameter-build.sfn.SendTaskFailure", lambda params, **_: sent.update(json.loads(params["cause"]))
    )

    assert main(["deny", "--token", "token-2", *BOUND, "--reason", "recall dropped on the holdout"]) == 0

    assert set(sent) == {"reason", "proof"} and sent["reason"] == "recall dropped on the holdout"
    assert sts_finds(sent["proof"], Answer(RUN, VERSION, approved=False, words=sent["reason"])) == ALICE
    with pytest.raises(WorkflowError, match="SignatureDoesNotMatch"):
        sts_finds(sent["proof"], Answer(RUN, VERSION, approved=True, words=sent["reason"]))


def test_deny_refuses_a_blank_reason_and_sends_nothing(
    approval_api: dict[str, Stubber], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["deny", "--token", "token-2", *BOUND, "--reason", "  "]) == 1
    assert "--reason must say why" in capsys.readouterr().err


@pytest.mark.parametrize("code", ["TaskTimedOut", "TaskDoesNotExist", "InvalidToken"])
def test_answering_a_request_that_no_longer_waits_says_so(
    approval_api: dict[str, Stubber], capsys: pytest.CaptureFixture[str], code: str
) -> None:
    approval_api["stepfunctions"].add_client_error("send_task_failure", service_error_code=code)
    assert main(["deny", "--token", "stale", *BOUND, "--reason", "too late"]) == 1
    assert f"no longer waiting ({code})" in capsys.readouterr().err
