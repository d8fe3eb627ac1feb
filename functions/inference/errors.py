"""The errors the inference API answers with, and the one table that maps them to HTTP status codes.

Domain code raises these without knowing about HTTP; the app turns any of them into a JSON error body with
:func:`error_response`. Anything else is a bug: a 500 with a correlation id, the stack trace in the logs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True, slots=True)
class Problem:
    """One offending spot of a request: ``instance`` is the index in ``instances`` (or ``feedback``); None: the
    body itself."""

    instance: int | None
    field: str | None
    problem: str

    def to_dict(self) -> dict[str, Any]:
        return {"instance": self.instance, "field": self.field, "problem": self.problem}


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
        body: dict[str, Any] = {"error": exc.error, "message": exc.message}
        if exc.details:
            body["details"] = [problem.to_dict() for problem in exc.details]
        return STATUS_CODES[type(exc)], body, exc.headers
    body = {
        "error": INTERNAL_ERROR,
        "message": "the service failed unexpectedly; quote the correlation_id when reporting it",
        "correlation_id": correlation_id,
    }
    return 500, body, {}
