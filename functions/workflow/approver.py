"""Who answered an approval request: the identity STS vouches for, never one the answer claims.

``driftloop approve`` and ``deny`` run on the operator's machine, so any name they wrote into the answer would be a
claim. They send a proof instead: an STS ``GetCallerIdentity`` request, presigned (SigV4 in the query string) with
the operator's own credentials, with a signed header that binds it to one answer (:class:`Answer`): this run's
execution, this version, approve or deny, and the operator's words. Promote (an approval) and Reject (a denial)
send that request to STS themselves (:func:`verify`) with the header value *they* expect from the state, so STS
answers with the ARN of whoever signed it only when the proof was made for this very answer; a proof captured from
another run, for another version or for the other answer fails STS's signature check. The proof needs no
permission (``GetCallerIdentity`` is allowed to every principal) and grants none: it can only say who signed it.

Standard library only on the verifying side; the CLI signs with its boto3 client (:func:`sign`).
"""

from __future__ import annotations

import hashlib
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from functions.workflow.errors import WorkflowError

# The signed header that binds a proof to one answer: a proof made for anything else (another service's login,
# another run's answer) does not carry this value and is refused by STS or by :func:`verify`.
HEADER = "x-driftloop-approval"
# How long a proof is good for: Promote or Reject verifies it right after the answer, within their retries' two
# minutes. A proof made to live longer is refused whatever STS says.
PROOF_SECONDS = 300
ACTION = "GetCallerIdentity"
TIMEOUT_SECONDS = 10
_SIGNED_AT = "%Y%m%dT%H%M%SZ"
_ARN = re.compile(r"<GetCallerIdentityResult>.*?<Arn>([^<]+)</Arn>", re.DOTALL)
_ERROR = re.compile(r"<Code>([^<]*)</Code>.*?<Message>([^<]*)</Message>", re.DOTALL)

Opener = Callable[[urllib.request.Request], Any]


class Presigner(Protocol):
    """What :func:`sign` needs of a boto3 STS client."""

    @property
    def meta(self) -> Any: ...

    def generate_presigned_url(self, ClientMethod: str, *, ExpiresIn: int, HttpMethod: str) -> str: ...  # noqa: N803


@dataclass(frozen=True)
class Answer:
    """What one proof is signed for: the run (its execution ARN), the version it asks about, approve or deny, and
    the operator's words (the approval's note, the denial's reason)."""

    execution: str
    version: str
    approved: bool
    words: str | None

    @property
    def verb(self) -> str:
        return "approval" if self.approved else "denial"

    def binding(self) -> str:
        """The header value a proof for this answer signs: a digest of all of it."""
        answer = {
            "answer": "approve" if self.approved else "deny",
            "execution": self.execution,
            "version": self.version,
            "words": self.words,
        }
        return hashlib.sha256(f"driftloop approval {json.dumps(answer, sort_keys=True)}".encode()).hexdigest()


def sts_endpoint(environ: Mapping[str, str], region: str | None) -> str:
    """The STS endpoint both sides use: the configured one (the local cloud), else the region's own, which is where
    the CLI signs the proof for and where Promote sends it (a proof is valid only at the host it was signed for)."""
    configured = environ.get("AWS_ENDPOINT_URL_STS") or environ.get("AWS_ENDPOINT_URL")
    if configured:
        return configured.rstrip("/")
    if not region:
        raise WorkflowError("no AWS region to find STS in: the approval's proof is signed for the region's endpoint")
    return f"https://sts.{region}.amazonaws.com"


def sign(sts: Presigner, answer: Answer) -> str:
    """The proof ``driftloop approve`` / ``deny`` sends with ``answer``: a presigned URL good for
    :data:`PROOF_SECONDS`."""
    bound = answer.binding()

    def add_header(request: Any, **_: Any) -> None:
        request.headers[HEADER] = bound

    sts.meta.events.register(f"before-sign.sts.{ACTION}", add_header)
    return sts.generate_presigned_url("get_caller_identity", ExpiresIn=PROOF_SECONDS, HttpMethod="GET")


def verify(
    proof: str | None, answer: Answer, endpoint: str, opener: Opener | None = None, now: datetime | None = None
) -> str:
    """The ARN STS vouches for as the signer of ``proof``, made for ``answer``; :class:`WorkflowError` when there is
    none.

    ``answer`` comes from the state (the run's execution and version), never from the proof. The request goes to
    ``endpoint`` (this function's own STS), never to the host the proof names: an answer cannot point the step at
    a server of its choosing.
    """
    what = f"the {answer.verb}"
    if not isinstance(proof, str) or not proof:
        raise WorkflowError(f"{what} carries no proof of who sent it: answer with `driftloop approve` or `deny`")
    query = urllib.parse.urlsplit(proof).query
    params = urllib.parse.parse_qs(query)
    if params.get("Action") != [ACTION]:
        raise WorkflowError(f"{what}'s proof is not an STS {ACTION} request: {params.get('Action')}")
    signed = (params.get("X-Amz-SignedHeaders") or [""])[0].split(";")
    if HEADER not in signed:
        raise WorkflowError(f"{what}'s proof does not sign {HEADER}: it was not made for an answer")
    _check_fresh(params, now or datetime.now(UTC), what)
    # To this function's own STS endpoint (https on AWS; the local cloud's http), with the proof's query only.
    request = urllib.request.Request(f"{endpoint}/?{query}", headers={HEADER: answer.binding()})  # noqa: S310
    open_url = opener or _open
    try:
        with open_url(request) as response:
            body = response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        error = _ERROR.search(exc.read().decode("utf-8", "replace"))
        why = f"{error.group(1)}: {error.group(2)}" if error else f"HTTP {exc.code}"
        raise WorkflowError(
            f"STS refused {what}'s proof of who sent it ({why}): a proof is good for one run's version and one "
            f"answer ({answer.version} of {answer.execution}), for {PROOF_SECONDS} s"
        ) from exc
    except OSError as exc:
        raise WorkflowError(f"STS could not be asked who sent {what}: {exc}") from exc
    found = _ARN.search(body)
    if found is None:
        raise WorkflowError(f"STS answered {what}'s proof without an ARN: {body[:200]!r}")
    return found.group(1).strip()


def _check_fresh(params: Mapping[str, list[str]], now: datetime, what: str) -> None:
    """Refuse a proof made to live longer than :data:`PROOF_SECONDS` or past its life, before asking STS (which
    checks the same, as part of the signature; the local cloud's does not)."""
    try:
        signed_at = datetime.strptime(params["X-Amz-Date"][0], _SIGNED_AT).replace(tzinfo=UTC)
        lifetime = int(params["X-Amz-Expires"][0])
    except (KeyError, ValueError) as exc:
        raise WorkflowError(f"{what}'s proof has no readable X-Amz-Date and X-Amz-Expires: {exc}") from exc
    if lifetime > PROOF_SECONDS:
        raise WorkflowError(f"{what}'s proof is made to last {lifetime} s, more than the {PROOF_SECONDS} s allowed")
    expired = signed_at + timedelta(seconds=lifetime)
    if now > expired:
        raise WorkflowError(
            f"{what}'s proof expired at {expired:%Y-%m-%dT%H:%M:%SZ} ({PROOF_SECONDS} s after it was signed)"
        )


def _open(request: urllib.request.Request) -> Any:
    return urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS)  # noqa: S310
