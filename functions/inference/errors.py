"""The errors the inference API answers with, and the one table that maps them to HTTP status codes.

Domain code raises these without knowing about HTTP; the app turns any of them into a JSON error body with
:func:`error_response`. Anything else is a bug: a 500 with a correlation id, the stack trace in the logs.

An error body stays small whatever the request (a Lambda response is at most 6 MB, and a client deserves a
readable answer): at most :data:`MAX_DETAILS` problems are listed (``omitted`` says how many more there are),
client text quoted in a message goes through :func:`quote`, and every string is cut to a bound as a last resort.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

MAX_DETAILS = 20
# Characters of client text (a field name, a label, a path) an error quotes; of a message or problem in all.
QUOTE_CHARS = 80
TEXT_CHARS = 400


@dataclass(frozen=True, slots=True)
class Problem:
    """One offending spot of a request: ``instance`` is the index in ``instances`` (or ``feedback``); None: the
    body itself."""

    instance: int | None
    field: str | None
    problem: str

    def to_dict(self) -> dict[str, Any]:
        field = None if self.field is None else _clip(self.field, QUOTE_CHARS)
        return {"instance": self.instance, "field": field, "problem": _clip(self.problem, TEXT_CHARS)}


class ServiceError(Exception):
    """A request the service refuses on purpose; ``error`` is the machine-readable code in the body."""

    error: ClassVar[str]

    def __init__(self, message: str, details: Sequence[Problem] = (), headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = tuple(details)
        self.headers = headers or {}


class MalformedJson(ServiceError):
    error = "malformed_json"


class RouteNotFound(ServiceError):
    error = "not_found"


class MethodNotAllowed(ServiceError):
    error = "method_not_allowed"


class BodyTooLarge(ServiceError):
    error = "body_too_large"


class UnsupportedMediaType(ServiceError):
    error = "unsupported_media_type"


class ValidationFailed(ServiceError):
    error = "validation_failed"


class ModelUnavailable(ServiceError):
    error = "model_unavailable"


class FeedbackUnavailable(ServiceError):
    """Valid feedback that could not be recorded: the client should send it again."""

    error = "feedback_unavailable"


STATUS_CODES: dict[type[ServiceError], int] = {
    MalformedJson: 400,
    RouteNotFound: 404,
    MethodNotAllowed: 405,
    BodyTooLarge: 413,
    UnsupportedMediaType: 415,
    ValidationFailed: 422,
    ModelUnavailable: 503,
    FeedbackUnavailable: 503,
}
INTERNAL_ERROR = "internal_error"


def error_response(exc: Exception, correlation_id: str) -> tuple[int, dict[str, Any], dict[str, str]]:
    """(status, JSON body, extra headers) for any exception raised while serving a request."""
    if isinstance(exc, ServiceError):
        message = exc.message
        omitted = len(exc.details) - MAX_DETAILS
        if omitted > 0:
            message += f" (the first {MAX_DETAILS} are listed, {omitted} more are not)"
        body: dict[str, Any] = {"error": exc.error, "message": _clip(message, TEXT_CHARS)}
        if exc.details:
            body["details"] = [problem.to_dict() for problem in exc.details[:MAX_DETAILS]]
        if omitted > 0:
            body["omitted"] = omitted
        return STATUS_CODES[type(exc)], body, exc.headers
    body = {
        "error": INTERNAL_ERROR,
        "message": "the service failed unexpectedly; quote the correlation_id when reporting it",
        "correlation_id": correlation_id,
    }
    return 500, body, {}


def quote(text: str) -> str:
    """Client text as a message quotes it: its repr (control characters and lone surrogates escaped), the first
    :data:`QUOTE_CHARS` characters of a longer one."""
    if len(text) <= QUOTE_CHARS:
        return repr(text)
    return f"{text[:QUOTE_CHARS]!r}... ({len(text)} characters)"


def _clip(text: str, limit: int) -> str:
    if len(text) > limit:
        text = text[:limit] + "..."
    # A lone surrogate cannot be encoded as UTF-8 (nor by orjson): escape it rather than fail the answer.
    return text.encode("utf-8", "backslashreplace").decode() if not text.isascii() else text
