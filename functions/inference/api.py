"""The HTTP adapter: routes, content type and size checks, JSON responses, per-request telemetry.

Everything that can go wrong while serving a request ends in :class:`_Observed`, which renders it through
:func:`errors.error_response` (the one status-code table) and writes the request's log/metrics line.

Paths match exactly: ``/predict/`` is a 404, not a redirect (behind API Gateway a redirect would drop the stage
from the URL). The caller API Gateway identified (``requestContext.identity`` of the REST proxy event, which
Mangum passes as ``scope["aws.event"]``) goes into the capture and feedback records; a request that did not come
through API Gateway (uvicorn) has none.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from functions.common.records import Caller, IdKeys
from functions.inference.capture import Sampler, Sink, capture_sink, feedback_sink
from functions.inference.errors import (
    BodyTooLarge,
    MethodNotAllowed,
    RouteNotFound,
    ServiceError,
    UnsupportedMediaType,
    error_response,
    quote,
)
from functions.inference.id_keys import id_keys
from functions.inference.service import InferenceService
from functions.inference.settings import InferenceSettings
from functions.inference.sources import ModelProvider, model_source
from functions.inference.telemetry import RequestLog, Telemetry

PREDICT_PATH = "/predict"
FEEDBACK_PATH = "/feedback"
# Where the middleware leaves the request's RequestLog for the endpoints to fill in.
LOG_KEY = "driftloop.log"


def create_app(
    settings: InferenceSettings,
    *,
    sink: Sink | None = None,
    feedback: Sink | None = None,
    rng: random.Random | None = None,
    telemetry: Telemetry | None = None,
    clock: Callable[[], float] = time.monotonic,
    keys: IdKeys | None = None,
) -> Starlette:
    """Build the app, read the prediction id keys and load the model now: in Lambda that is the init phase, not the
    first request.

    A model that cannot be loaded does not stop the app: it answers 503 and retries at the next refresh. Keys that
    cannot be read do: without them it can neither mint nor check an id.
    ``sink`` and ``feedback`` replace the sinks the settings name, ``keys`` the keys; ``rng`` drives capture sampling.
    """
    telemetry = telemetry or Telemetry(settings.service, level=settings.log_level)
    keys = keys or id_keys(settings.id_key_secret, telemetry)
    provider = ModelProvider(model_source(settings), settings.refresh_seconds, telemetry, clock)
    provider.refresh()
    capture = sink or capture_sink(settings.capture)
    feedback = feedback or feedback_sink(settings.feedback_stream)
    _warm_up(capture, feedback, telemetry=telemetry)
    service = InferenceService(
        provider,
        capture=capture,
        sampler=Sampler(settings.sample_rate, rng),
        feedback=feedback,
        telemetry=telemetry,
        max_instances=settings.max_instances,
        max_body_bytes=settings.max_body_bytes,
        feedback_max_age=timedelta(days=settings.feedback_max_age_days),
        keys=keys,
    )
    endpoints = _Endpoints(service)
    routes = [
        Route(PREDICT_PATH, endpoints.predict, methods=["POST"]),
        Route(FEEDBACK_PATH, endpoints.feedback, methods=["POST"]),
        Route("/health", endpoints.health, methods=["GET"]),
        Route("/model", endpoints.model, methods=["GET"]),
        Route("/openapi.json", endpoints.openapi, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(_Observed, telemetry=telemetry)],
        exception_handlers={HTTPException: _routing_error},
    )
    app.router.redirect_slashes = False
    return app


def _warm_up(*sinks: Sink, telemetry: Telemetry) -> None:
    """Create the sinks' AWS clients now (Lambda's init phase), not in the first request that needs one.

    A client that cannot be created yet is created on first use instead; the failure is only logged here.
    """
    for sink in sinks:
        warm_up = getattr(sink, "warm_up", None)
        if warm_up is None:
            continue
        try:
            warm_up()
        except Exception as exc:
            telemetry.exception("creating a sink's client at start failed; it is retried on first use", exc)


class _Endpoints:
    def __init__(self, service: InferenceService) -> None:
        self._service = service

    async def predict(self, request: Request) -> Response:
        _require_json(request)
        body = await _read_body(request, self._service.max_body_bytes)
        return _json(200, self._service.predict(body, request.scope[LOG_KEY], _caller(request.scope)))

    async def feedback(self, request: Request) -> Response:
        _require_json(request)
        body = await _read_body(request, self._service.max_body_bytes)
        return _json(202, self._service.feedback(body, request.scope[LOG_KEY], _caller(request.scope)))

    async def health(self, request: Request) -> Response:
        return _json(200, self._service.health(request.scope[LOG_KEY]))

    async def model(self, request: Request) -> Response:
        return _json(200, self._service.describe(request.scope[LOG_KEY]))

    async def openapi(self, request: Request) -> Response:
        return _json(200, self._service.openapi(request.scope[LOG_KEY]))


def _require_json(request: Request) -> None:
    content_type = request.headers.get("content-type")
    media_type, _, parameters = (content_type or "").partition(";")
    if media_type.strip().lower() != "application/json":
        got = f"Content-Type {quote(content_type)}" if content_type else "no Content-Type"
        raise UnsupportedMediaType(f"send the body as application/json (got {got})")
    for parameter in parameters.split(";"):
        key, _, value = parameter.partition("=")
        if key.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise UnsupportedMediaType(f"the body must be UTF-8 JSON (got charset {quote(value.strip())})")
    # Nothing here decompresses: a gzip body would otherwise be read as malformed JSON, or count against the size
    # limit compressed.
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding not in ("", "identity"):
        raise UnsupportedMediaType(
            f"the body must not be compressed: send it without Content-Encoding (got {quote(encoding)})"
        )


async def _read_body(request: Request, limit: int) -> bytes:
    too_large = BodyTooLarge(f"the body exceeds {limit} bytes: send fewer instances per request")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def _routing_error(request: Request, exc: Exception) -> Response:
    # The router's own 404 and 405, re-raised as service errors so that _Observed renders them like any other.
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        raise MethodNotAllowed(
            f"{request.method} is not allowed on {quote(request.url.path)}", headers=dict(exc.headers or {})
        )
    raise RouteNotFound(f"no route {quote(request.url.path)}: see /openapi.json")


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, headers=headers, media_type="application/json")


class _Observed:
    """Outermost layer inside Starlette's own: times the request, renders every error, writes one log line."""

    def __init__(self, app: ASGIApp, telemetry: Telemetry) -> None:
        self._app = app
        self._telemetry = telemetry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        log = _request_log(scope)
        scope[LOG_KEY] = log
        response_started = False

        async def observe(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
                log.status = message["status"]
            await send(message)

        try:
            await self._app(scope, receive, observe)
        except Exception as exc:
            if not isinstance(exc, ServiceError):
                self._telemetry.exception("unhandled error while serving a request", exc, request_id=log.request_id)
            response = self._error(exc, log)
            if not response_started:
                await response(scope, receive, observe)
        finally:
            log.latency_ms = (time.perf_counter() - started) * 1000
            log.route = getattr(scope.get("route"), "path", None)  # set by Starlette's router on a match
            self._telemetry.request(log, predict=log.route == PREDICT_PATH and log.method == "POST")

    def _error(self, exc: Exception, log: RequestLog) -> Response:
        """The JSON error response for ``exc``; a failure to render it is itself answered with a JSON 500."""
        try:
            status, body, headers = error_response(exc, log.request_id)
            response = _json(status, body, headers)
        except Exception as failure:
            self._telemetry.exception("rendering an error response failed", failure, request_id=log.request_id)
            status, body, headers = error_response(failure, log.request_id)
            response = _json(status, body, headers)
        log.error = body["error"]
        return response


def _caller(scope: Scope) -> Caller | None:
    """Who sent the request, as API Gateway identified it; None without an API Gateway event."""
    event = scope.get("aws.event")
    if not event:
        return None
    identity = (event.get("requestContext") or {}).get("identity") or {}
    # userArn: the IAM user or assumed-role session of a SigV4 request (a session's STS ARN never holds the role's
    # path: IAM names no path there); caller and user: the principal id ("AROA...:<session>" for a session), when
    # there is no ARN. Caller collapses a session to its role.
    return Caller(
        principal=identity.get("userArn") or identity.get("caller") or identity.get("user"),
        api_key_id=identity.get("apiKeyId"),
        source_ip=identity.get("sourceIp"),
    )


def _request_log(scope: Scope) -> RequestLog:
    # Under Mangum the scope carries the API Gateway event and the Lambda context; under uvicorn neither.
    event = scope.get("aws.event") or {}
    context = scope.get("aws.context")
    api_request_id = (event.get("requestContext") or {}).get("requestId")
    lambda_request_id = getattr(context, "aws_request_id", None)
    return RequestLog(
        method=scope["method"],
        path=scope["path"],
        request_id=api_request_id or lambda_request_id or uuid.uuid4().hex,
        lambda_request_id=lambda_request_id,
    )
