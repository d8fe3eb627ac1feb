"""The approver's proof: ``driftloop approve`` presigns an STS GetCallerIdentity request bound to its answer, and
Promote has STS say who signed it (here a stand-in for STS records what Promote sends and answers as STS does)."""

from __future__ import annotations

import io
import urllib.error
import urllib.parse
import urllib.request
from email.message import Message
from typing import Any

import boto3
import pytest

from functions.workflow import approver
from functions.workflow.errors import WorkflowError

ENDPOINT = "https://sts.eu-west-1.amazonaws.com"
ALICE = "arn:aws:sts::123456789012:assumed-role/operators/alice"
IDENTITY = (
    "<GetCallerIdentityResponse><GetCallerIdentityResult><Arn>{arn}</Arn><UserId>AROAEXAMPLE:alice</UserId>"
    "<Account>123456789012</Account></GetCallerIdentityResult></GetCallerIdentityResponse>"
)


def sts_client(endpoint: str = ENDPOINT) -> Any:
    return boto3.client(
        "sts",
        region_name="eu-west-1",
        endpoint_url=endpoint,
        aws_access_key_id="AKIDALICE",
        aws_secret_access_key="secret",
    )


class FakeSts:
    """Records each request and answers with ``arn`` (or the error, as STS sends one)."""

    def __init__(self, arn: str = ALICE, error: tuple[int, str] | None = None) -> None:
        self.arn, self.error = arn, error
        self.requests: list[urllib.request.Request] = []

    def __call__(self, request: urllib.request.Request) -> Any:
        self.requests.append(request)
        if self.error is not None:
            code, body = self.error
            raise urllib.error.HTTPError(request.full_url, code, "Forbidden", Message(), io.BytesIO(body.encode()))
        return io.BytesIO(IDENTITY.format(arn=self.arn).encode())


def test_the_approver_is_who_sts_says_signed_the_proof_sent_as_signed_with_the_answers_binding() -> None:
    answer = approver.sign(sts_client(), "checked the trusted rows")
    sts = FakeSts()

    assert approver.verify(answer, ENDPOINT, sts) == ALICE

    assert set(answer) == {"approved", "note", "proof"} and answer["approved"] is True
    [request] = sts.requests
    assert request.full_url == answer["proof"]
    assert request.get_header(approver.HEADER.capitalize()) == approver.binding("checked the trusted rows")
    signed = urllib.parse.parse_qs(urllib.parse.urlsplit(answer["proof"]).query)["X-Amz-SignedHeaders"]
    assert signed == [f"host;{approver.HEADER}"]


def test_a_proof_goes_to_the_functions_own_sts_never_to_the_host_it_names() -> None:
    answer = approver.sign(sts_client("https://collector.example.com"), None)
    sts = FakeSts()

    approver.verify(answer, ENDPOINT, sts)

    assert urllib.parse.urlsplit(sts.requests[0].full_url).netloc == "sts.eu-west-1.amazonaws.com"


def test_an_answer_whose_note_was_changed_sends_another_binding_than_the_one_signed() -> None:
    answer = approver.sign(sts_client(), "looks good")
    sts = FakeSts()

    approver.verify({**answer, "note": "approved by the CTO"}, ENDPOINT, sts)

    # STS refuses a request whose signed header differs from the one signed (SignatureDoesNotMatch).
    assert sts.requests[0].get_header(approver.HEADER.capitalize()) != approver.binding("looks good")


def test_sts_refusing_the_proof_refuses_the_approval_with_stss_reason() -> None:
    answer = approver.sign(sts_client(), None)
    expired = "<ErrorResponse><Error><Code>ExpiredToken</Code><Message>Request has expired</Message></Error>"

    with pytest.raises(WorkflowError, match=r"STS refused the approval's proof of who sent it \(ExpiredToken: Re"):
        approver.verify(answer, ENDPOINT, FakeSts(error=(403, expired)))


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        ({"approved": True, "by": ALICE, "note": None}, "carries no proof"),
        (
            {"approved": True, "proof": f"{ENDPOINT}/?Action=AssumeRole&X-Amz-SignedHeaders=host%3B{approver.HEADER}"},
            "not an STS GetCallerIdentity request",
        ),
        (
            {"approved": True, "proof": f"{ENDPOINT}/?Action=GetCallerIdentity&X-Amz-SignedHeaders=host"},
            f"does not sign {approver.HEADER}",
        ),
    ],
)
def test_an_answer_without_a_proof_made_for_it_is_refused_without_asking_sts(answer: dict[str, Any], why: str) -> None:
    sts = FakeSts()
    with pytest.raises(WorkflowError, match=why):
        approver.verify(answer, ENDPOINT, sts)
    assert sts.requests == []


def test_both_sides_use_the_configured_endpoint_else_the_regions_own() -> None:
    assert approver.sts_endpoint({"AWS_ENDPOINT_URL": "http://127.0.0.1:4566/"}, "us-east-1") == "http://127.0.0.1:4566"
    assert approver.sts_endpoint({}, "eu-west-1") == ENDPOINT
    with pytest.raises(WorkflowError, match="no AWS region"):
        approver.sts_endpoint({}, None)
