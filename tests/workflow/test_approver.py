"""The answer's proof: ``driftloop approve`` / ``deny`` presign an STS GetCallerIdentity request bound to one run's
version and one answer, and Promote / Reject have STS say who signed it. Here a stand-in for STS checks the
signature as STS does (with the signer's secret, over the query and the signed headers Promote sends)."""

from __future__ import annotations

import urllib.parse
from datetime import UTC, datetime, timedelta

import pytest

from functions.workflow import approver
from functions.workflow.approver import Answer
from functions.workflow.errors import WorkflowError
from tests.workflow.sts import ALICE, ENDPOINT, FakeSts, sts_client

RUN = "arn:aws:states:eu-west-1:123456789012:execution:driftloop-training:run-1"
OTHER_RUN = "arn:aws:states:eu-west-1:123456789012:execution:driftloop-training:run-2"
APPROVE = Answer(RUN, "v-20261207-0001", approved=True, words="checked the trusted rows")
DENY = Answer(RUN, "v-20261207-0001", approved=False, words="recall dropped")


def signed_at(proof: str) -> datetime:
    stamp = urllib.parse.parse_qs(urllib.parse.urlsplit(proof).query)["X-Amz-Date"][0]
    return datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def test_the_approver_is_who_sts_says_signed_a_proof_made_for_this_answer() -> None:
    proof = approver.sign(sts_client(), APPROVE)
    sts = FakeSts()

    assert approver.verify(proof, APPROVE, ENDPOINT, sts) == ALICE

    [request] = sts.requests
    assert request.full_url == proof
    assert request.get_header(approver.HEADER.capitalize()) == APPROVE.binding()
    signed = urllib.parse.parse_qs(urllib.parse.urlsplit(proof).query)["X-Amz-SignedHeaders"]
    assert signed == [f"host;{approver.HEADER}"]


def test_a_denier_is_vouched_for_by_a_proof_made_for_the_denial() -> None:
    assert approver.verify(approver.sign(sts_client(), DENY), DENY, ENDPOINT, FakeSts()) == ALICE


@pytest.mark.parametrize(
    ("expected", "case"),
    [
        (Answer(OTHER_RUN, APPROVE.version, approved=True, words=APPROVE.words), "another execution"),
        (Answer(RUN, "v-20261207-0002", approved=True, words=APPROVE.words), "another version"),
        (Answer(RUN, APPROVE.version, approved=False, words=APPROVE.words), "the other answer"),
        (Answer(RUN, APPROVE.version, approved=True, words="approved by the CTO"), "other words"),
    ],
)
def test_sts_refuses_a_proof_replayed_for(expected: Answer, case: str) -> None:
    proof = approver.sign(sts_client(), APPROVE)

    with pytest.raises(WorkflowError, match=r"STS refused the \w+'s proof of who sent it \(SignatureDoesNotMatch"):
        approver.verify(proof, expected, ENDPOINT, FakeSts())


def test_an_expired_proof_is_refused_without_asking_sts() -> None:
    proof = approver.sign(sts_client(), APPROVE)
    sts = FakeSts()
    later = signed_at(proof) + timedelta(seconds=approver.PROOF_SECONDS + 1)

    with pytest.raises(WorkflowError, match=r"the approval's proof expired at .* \(300 s after it was signed\)"):
        approver.verify(proof, APPROVE, ENDPOINT, sts, now=later)
    assert sts.requests == []
    # Until then it is good.
    assert approver.verify(proof, APPROVE, ENDPOINT, sts, now=later - timedelta(seconds=2)) == ALICE


def test_a_proof_made_to_last_longer_than_allowed_is_refused_without_asking_sts() -> None:
    proof = approver.sign(sts_client(), DENY).replace("X-Amz-Expires=300", "X-Amz-Expires=604800")
    sts = FakeSts()

    with pytest.raises(WorkflowError, match="the denial's proof is made to last 604800 s, more than the 300 s"):
        approver.verify(proof, DENY, ENDPOINT, sts)
    assert sts.requests == []


def test_a_proof_goes_to_the_functions_own_sts_never_to_the_host_it_names() -> None:
    proof = approver.sign(sts_client("https://collector.example.com"), APPROVE)
    sts = FakeSts()

    # Signed for another host, so STS refuses it at its own.
    with pytest.raises(WorkflowError, match="SignatureDoesNotMatch"):
        approver.verify(proof, APPROVE, ENDPOINT, sts)

    assert urllib.parse.urlsplit(sts.requests[0].full_url).netloc == "sts.eu-west-1.amazonaws.com"


def test_sts_refusing_the_proof_refuses_the_answer_with_stss_reason() -> None:
    proof = approver.sign(sts_client(), APPROVE)
    expired = "<ErrorResponse><Error><Code>ExpiredToken</Code><Message>Request has expired</Message></Error>"

    with pytest.raises(WorkflowError, match=r"STS refused the approval's proof of who sent it \(ExpiredToken: Re"):
        approver.verify(proof, APPROVE, ENDPOINT, FakeSts(error=(403, expired)))


@pytest.mark.parametrize(
    ("proof", "why"),
    [
        (None, "the approval carries no proof"),
        (f"{ENDPOINT}/?Action=AssumeRole&X-Amz-SignedHeaders=host%3B{approver.HEADER}", "not an STS GetCallerIdentity"),
        (f"{ENDPOINT}/?Action=GetCallerIdentity&X-Amz-SignedHeaders=host", f"does not sign {approver.HEADER}"),
        (
            f"{ENDPOINT}/?Action=GetCallerIdentity&X-Amz-SignedHeaders=host%3B{approver.HEADER}",
            "no readable X-Amz-Date and X-Amz-Expires",
        ),
    ],
)
def test_an_answer_without_a_proof_made_for_an_answer_is_refused_without_asking_sts(
    proof: str | None, why: str
) -> None:
    sts = FakeSts()
    with pytest.raises(WorkflowError, match=why):
        approver.verify(proof, APPROVE, ENDPOINT, sts)
    assert sts.requests == []


def test_both_sides_use_the_configured_endpoint_else_the_regions_own() -> None:
    assert approver.sts_endpoint({"AWS_ENDPOINT_URL": "http://127.0.0.1:4566/"}, "us-east-1") == "http://127.0.0.1:4566"
    assert approver.sts_endpoint({}, "eu-west-1") == ENDPOINT
    with pytest.raises(WorkflowError, match="no AWS region"):
        approver.sts_endpoint({}, None)
