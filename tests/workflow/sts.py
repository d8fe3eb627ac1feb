"""A stand-in for STS that checks an answer's proof as STS does: the SigV4 signature over the query and the signed
headers the verifying step sends, with the signer's secret."""

from __future__ import annotations

import io
import urllib.error
import urllib.parse
import urllib.request
from email.message import Message
from typing import Any

import boto3
from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from functions.workflow import approver
from functions.workflow.approver import Answer

REGION = "eu-west-1"
ENDPOINT = f"https://sts.{REGION}.amazonaws.com"
ALICE = "arn:aws:sts::123456789012:assumed-role/operators/alice"
KEY, SECRET = "AKIDALICE", "alice-secret"
IDENTITY = (
    "<GetCallerIdentityResponse><GetCallerIdentityResult><Arn>{arn}</Arn><UserId>AROAEXAMPLE:alice</UserId>"
    "<Account>123456789012</Account></GetCallerIdentityResult></GetCallerIdentityResponse>"
)
MISMATCH = (
    "<ErrorResponse><Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not "
    "match the signature you provided.</Message></Error></ErrorResponse>"
)


def sts_client(endpoint: str = ENDPOINT) -> Any:
    return boto3.client(
        "sts", region_name=REGION, endpoint_url=endpoint, aws_access_key_id=KEY, aws_secret_access_key=SECRET
    )


class FakeSts:
    """Records each request and answers as STS does: with ``arn`` when the signature matches what was signed (the
    query and the signed headers as this request carries them), else SignatureDoesNotMatch (or ``error``)."""

    def __init__(
        self, arn: str = ALICE, error: tuple[int, str] | None = None, *, key: str = KEY, secret: str = SECRET
    ) -> None:
        """``key`` and ``secret`` are the signer's credentials, ``arn`` who STS says they are."""
        self.arn, self.error, self.credentials = arn, error, Credentials(key, secret)
        self.requests: list[urllib.request.Request] = []

    def __call__(self, request: urllib.request.Request) -> Any:
        self.requests.append(request)
        if self.error is None and not self.signature_matches(request):
            self.error = (403, MISMATCH)
        if self.error is not None:
            code, body = self.error
            raise urllib.error.HTTPError(request.full_url, code, "Forbidden", Message(), io.BytesIO(body.encode()))
        return io.BytesIO(IDENTITY.format(arn=self.arn).encode())

    def signature_matches(self, request: urllib.request.Request) -> bool:
        url = urllib.parse.urlsplit(request.full_url)
        pairs = url.query.split("&")
        params = dict(urllib.parse.parse_qsl(url.query))
        unsigned = url._replace(query="&".join(pair for pair in pairs if not pair.startswith("X-Amz-Signature=")))
        signed = params["X-Amz-SignedHeaders"].split(";")
        headers = {name.lower(): value for name, value in request.header_items() if name.lower() in signed}
        recomputed = AWSRequest("GET", urllib.parse.urlunsplit(unsigned), headers=headers)
        recomputed.context["timestamp"] = params["X-Amz-Date"]
        region = params["X-Amz-Credential"].split("/")[2]
        auth = SigV4QueryAuth(self.credentials, "sts", region, expires=int(params["X-Amz-Expires"]))
        expected = auth.signature(auth.string_to_sign(recomputed, auth.canonical_request(recomputed)), recomputed)
        return expected == params["X-Amz-Signature"]


def vouching(sts: FakeSts) -> Any:
    """A step's approver that asks ``sts`` (functions.workflow.handlers._approver, with the stand-in)."""

    def verify(proof: str | None, answer: Answer) -> str:
        return approver.verify(proof, answer, ENDPOINT, sts)

    return verify
