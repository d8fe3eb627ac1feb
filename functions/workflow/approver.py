"""Who approved a promotion: the identity STS vouches for, never one the answer claims.

``driftloop approve`` runs on the operator's machine, so any name it wrote into its answer would be a claim. It
sends a proof instead: an STS ``GetCallerIdentity`` request, presigned (SigV4 in the query string) with the
operator's own credentials, with a signed header that binds it to this answer (:func:`binding`). Promote sends
that request to STS itself (:func:`verify`), which answers with the ARN of whoever signed it, or refuses it when
it expired, was altered or was signed for another answer. Promote records that ARN; nothing the CLI says about
who it is reaches a decision. The proof needs no permission (``GetCallerIdentity`` is allowed to every
principal) and grants none: it can only say who signed it.

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
from typing import Any, Protocol

from functions.workflow.errors import WorkflowError

# The signed header that binds a proof to one answer: a proof made for anything else (another service's login,
# another note) does not carry it and is refused by STS or by :func:`verify`.
HEADER = "x-driftloop-approval"
# How long a proof is good for: Promote verifies it right after the answer, within its retries' minute or two.
PROOF_SECONDS = 300
# Where the answer carries it (``$.approval.proof``).
PROOF = "proof"
ACTION = "GetCallerIdentity"
TIMEOUT_SECONDS = 10
_ARN = re.compile(r"<GetCallerIdentityResult>.*?<Arn>([^<]+)</Arn>", re.DOTALL)
_ERROR = re.compile(r"<Code>([^<]*)</Code>.*?<Message>([^<]*)</Message>", re.DOTALL)

Opener = Callable[[urllib.request.Request], Any]


class Presigner(Protocol):
    """What :func:`sign` needs of a boto3 STS client."""

    @property
    def meta(self) -> Any: ...

    def generate_presigned_url(self, ClientMethod: str, *, ExpiresIn: int, HttpMethod: str) -> str: ...  # noqa: N803


def binding(note: str | None) -> str:
    """The header value a proof for this answer signs: a digest of the answer itself."""
    answer = json.dumps({"approved": True, "note": note}, sort_keys=True)
    return hashlib.sha256(f"driftloop approval {answer}".encode()).hexdigest()


def sts_endpoint(environ: Mapping[str, str], region: str | None) -> str:
    """The STS endpoint both sides use: the configured one (the local cloud), else the region's own, which is where
    the CLI signs the proof for and where Promote sends it (a proof is valid only at the host it was signed for)."""
    configured = environ.get("AWS_ENDPOINT_URL_STS") or environ.get("AWS_ENDPOINT_URL")
    if configured:
        return configured.rstrip("/")
    if not region:
        raise WorkflowError("no AWS region to find STS in: the approval's proof is signed for the region's endpoint")
    return f"https://sts.{region}.amazonaws.com"


def sign(sts: Presigner, note: str | None) -> dict[str, Any]:
    """``driftloop approve``'s answer: approved, the note, and the presigned proof of who sends it."""
    bound = binding(note)

    def add_header(request: Any, **_: Any) -> None:
        request.headers[HEADER] = bound

    sts.meta.events.register(f"before-sign.sts.{ACTION}", add_header)
    url = sts.generate_presigned_url("get_caller_identity", ExpiresIn=PROOF_SECONDS, HttpMethod="GET")
    return {"approved": True, "note": note, PROOF: url}


def verify(answer: Mapping[str, Any], endpoint: str, opener: Opener | None = None) -> str:
    """The ARN STS vouches for as the signer of ``answer``'s proof; :class:`WorkflowError` when there is none.

    The request goes to ``endpoint`` (this function's own STS), never to the host the proof names: an answer
    cannot point Promote at a server of its choosing.
    """
    proof = answer.get(PROOF)
    if not isinstance(proof, str) or not proof:
        raise WorkflowError(
            f"the approval carries no proof of who sent it ($.approval.{PROOF}): answer with `driftloop approve`"
        )
    query = urllib.parse.urlsplit(proof).query
    params = urllib.parse.parse_qs(query)
    if params.get("Action") != [ACTION]:
        raise WorkflowError(f"the approval's proof is not an STS {ACTION} request: {params.get('Action')}")
    signed = (params.get("X-Amz-SignedHeaders") or [""])[0].split(";")
    if HEADER not in signed:
        raise WorkflowError(f"the approval's proof does not sign {HEADER}: it was not made for this answer")
    note = answer.get("note")
    # To this function's own STS endpoint (https on AWS; the local cloud's http), with the proof's query only.
    request = urllib.request.Request(  # noqa: S310
        f"{endpoint}/?{query}", headers={HEADER: binding(note if isinstance(note, str) else None)}
    )
    open_url = opener or _open
    try:
        with open_url(request) as response:
            body = response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        error = _ERROR.search(exc.read().decode("utf-8", "replace"))
        why = f"{error.group(1)}: {error.group(2)}" if error else f"HTTP {exc.code}"
        raise WorkflowError(f"STS refused the approval's proof of who sent it ({why})") from exc
    except OSError as exc:
        raise WorkflowError(f"STS could not be asked who sent the approval: {exc}") from exc
    found = _ARN.search(body)
    if found is None:
        raise WorkflowError(f"STS answered the approval's proof without an ARN: {body[:200]!r}")
    return found.group(1).strip()


def _open(request: urllib.request.Request) -> Any:
    return urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS)  # noqa: S310
