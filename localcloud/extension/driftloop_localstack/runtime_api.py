"""The Lambda Runtime API for one runtime process: the HTTP interface that AWS's Runtime Interface Client
(``awslambdaric``) polls for events and posts results to, as inside a real Lambda execution environment.

The subset of https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html that a Python runtime uses:

- ``GET  /2018-06-01/runtime/invocation/next``: long-polls for the next event (body = payload; the request id,
  deadline, function ARN and trace id in ``Lambda-Runtime-*`` headers). The first call means "init done".
- ``POST /2018-06-01/runtime/invocation/<id>/response``: the handler's result.
- ``POST /2018-06-01/runtime/invocation/<id>/error``: the handler raised (``{"errorType", "errorMessage", ...}``).
- ``POST /2018-06-01/runtime/init/error``: the handler could not be loaded; the runtime then exits.

Standard library only: it runs inside LocalStack's Python 3.13 venv and is unit-tested in the project's venv.
One server per runtime process, bound to 127.0.0.1 on a free port, so concurrent execution environments never
share state.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

LOG = logging.getLogger(__name__)
PREFIX = "/2018-06-01/runtime"
# Lambda's limit for a synchronous response (6 MB).
MAX_RESPONSE_BYTES = 6 * 1024 * 1024
ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"
# How often a blocked GET .../next re-checks whether the server is closing.
_POLL_SECONDS = 0.5


@dataclass(frozen=True)
class Invocation:
    """One event for the runtime, with what the ``Lambda-Runtime-*`` headers carry."""

    request_id: str
    payload: bytes
    deadline_ms: int  # epoch milliseconds: context.get_remaining_time_in_millis() counts down to it
    function_arn: str
    trace_id: str | None = None
    client_context: str | None = None
    cognito_identity: str | None = None


@dataclass(frozen=True)
class Outcome:
    """What the runtime posted for one invocation."""

    request_id: str
    payload: bytes
    is_error: bool
    error_type: str | None = None


def error_document(error_type: str, message: str) -> bytes:
    """A Lambda error payload, as the service returns it to the caller."""
    return json.dumps({"errorType": error_type, "errorMessage": message}).encode()


class RuntimeApi:
    """The Runtime API server of one execution environment.

    ``submit`` queues an invocation for the runtime's next poll; ``take_outcome`` returns the result once the
    runtime posted it. ``on_change`` (if given) is called from server threads whenever something happens (the
    runtime became ready, posted a result or an init error), so that a waiting caller can wake up.
    """

    def __init__(self, on_change: Callable[[], None] | None = None, host: str = "127.0.0.1") -> None:
        self._on_change = on_change or (lambda: None)
        self._lock = threading.Condition()
        self._pending: Invocation | None = None  # submitted, not yet fetched by the runtime
        self._current: str | None = None  # fetched by the runtime, no result yet
        self._outcomes: dict[str, Outcome] = {}
        self._polls = 0  # GET .../next calls so far
        self._init_error: bytes | None = None
        self._closed = False
        self._server = _Server((host, 0), _Handler, self)
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------------

    @property
    def address(self) -> str:
        """``host:port``, the value of ``AWS_LAMBDA_RUNTIME_API``."""
        host, port = self._server.server_address[:2]
        return f"{host!s}:{port}"

    def start(self) -> RuntimeApi:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="lambda-runtime-api", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._lock.notify_all()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()

    def __enter__(self) -> RuntimeApi:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- state, for the process that owns the runtime ---------------------------------------------------------

    @property
    def polls(self) -> int:
        """How many times the runtime asked for an event: > 0 once it finished initialising."""
        with self._lock:
            return self._polls

    @property
    def idle(self) -> bool:
        """The runtime is waiting for an event (initialised, nothing in flight)."""
        with self._lock:
            return self._polls > 0 and self._pending is None and self._current is None and not self._outcomes

    @property
    def init_error(self) -> bytes | None:
        with self._lock:
            return self._init_error

    def submit(self, invocation: Invocation) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("the runtime API is closed")
            if self._pending is not None or self._current is not None:
                raise RuntimeError("an invocation is already in flight: one at a time per execution environment")
            self._pending = invocation
            self._lock.notify_all()

    def take_outcome(self, request_id: str) -> Outcome | None:
        with self._lock:
            return self._outcomes.pop(request_id, None)

    def abandon(self, request_id: str) -> None:
        """Forget an invocation the caller gave up on (timeout, crash): a late result is then rejected."""
        with self._lock:
            if self._pending is not None and self._pending.request_id == request_id:
                self._pending = None
            if self._current == request_id:
                self._current = None
            self._outcomes.pop(request_id, None)

    def reset(self) -> None:
        """Forget everything about the previous runtime process before starting a new one on this API."""
        with self._lock:
            self._pending = None
            self._current = None
            self._outcomes.clear()
            self._polls = 0
            self._init_error = None

    # -- called by the request handler ------------------------------------------------------------------------

    def _next(self) -> Invocation | None:
        with self._lock:
            self._polls += 1
            self._current = None
        self._on_change()
        with self._lock:
            while self._pending is None and not self._closed:
                self._lock.wait(_POLL_SECONDS)
            if self._closed or self._pending is None:
                return None
            invocation, self._pending = self._pending, None
            self._current = invocation.request_id
            return invocation

    def _post(self, request_id: str, payload: bytes, *, is_error: bool, error_type: str | None) -> bool:
        with self._lock:
            if request_id != self._current:
                return False
            self._current = None
            self._outcomes[request_id] = Outcome(request_id, payload, is_error, error_type)
        self._on_change()
        return True

    def _post_init_error(self, payload: bytes) -> None:
        with self._lock:
            self._init_error = payload
        self._on_change()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Several environments start at once when a function is invoked concurrently.
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], api: RuntimeApi) -> None:
        self.api = api
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A runtime killed mid-request (timeout, stop) is expected: no traceback on stderr."""
        exc = sys.exc_info()[1]
        if not isinstance(exc, ConnectionError):
            LOG.warning("Lambda runtime API request from %s failed", client_address, exc_info=exc)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the runtime polls constantly."""

    def do_GET(self) -> None:
        if self.path != f"{PREFIX}/invocation/next":
            self._reply(HTTPStatus.NOT_FOUND, {"errorType": "NotFound", "errorMessage": self.path})
            return
        invocation = self.server.api._next()
        if invocation is None:
            # Shutting down: Lambda tells the runtime to exit with a 500 ("container error").
            self._reply(HTTPStatus.INTERNAL_SERVER_ERROR, {"errorType": "Shutdown", "errorMessage": "shutting down"})
            return
        headers = {
            # awslambdaric's C client crashes (SIGSEGV) on an event without a content type: Lambda always sends it.
            "Content-Type": "application/json",
            "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
            "Lambda-Runtime-Deadline-Ms": str(invocation.deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn": invocation.function_arn,
        }
        if invocation.trace_id:
            headers["Lambda-Runtime-Trace-Id"] = invocation.trace_id
        if invocation.client_context:
            headers["Lambda-Runtime-Client-Context"] = invocation.client_context
        if invocation.cognito_identity:
            headers["Lambda-Runtime-Cognito-Identity"] = invocation.cognito_identity
        self._send(HTTPStatus.OK, invocation.payload, headers)

    def do_POST(self) -> None:
        body = self._body()
        path = self.path
        if path == f"{PREFIX}/init/error":
            self.server.api._post_init_error(body)
            self._reply(HTTPStatus.ACCEPTED, {"status": "OK"})
            return
        parts = path.removeprefix(f"{PREFIX}/invocation/").split("/")
        if not path.startswith(f"{PREFIX}/invocation/") or len(parts) != 2 or parts[1] not in ("response", "error"):
            self._reply(HTTPStatus.NOT_FOUND, {"errorType": "NotFound", "errorMessage": path})
            return
        request_id, kind = parts
        if kind == "response" and len(body) > MAX_RESPONSE_BYTES:
            message = (
                f"Response payload size ({len(body)} bytes) exceeded maximum allowed payload size "
                f"({MAX_RESPONSE_BYTES} bytes)."
            )
            self.server.api._post(
                request_id,
                error_document("Function.ResponseSizeTooLarge", message),
                is_error=True,
                error_type="Function.ResponseSizeTooLarge",
            )
            self._reply(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"errorType": "RequestEntityTooLarge", "errorMessage": message}
            )
            return
        accepted = self.server.api._post(
            request_id, body, is_error=kind == "error", error_type=self.headers.get(ERROR_TYPE_HEADER)
        )
        if accepted:
            self._reply(HTTPStatus.ACCEPTED, {"status": "OK"})
        else:
            self._reply(
                HTTPStatus.BAD_REQUEST,
                {"errorType": "InvalidRequestID", "errorMessage": f"no invocation in flight with id {request_id}"},
            )

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    # Trailer headers (if any), up to the empty line.
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _reply(self, status: HTTPStatus, document: dict[str, str]) -> None:
        self._send(status, json.dumps(document).encode(), {"Content-Type": "application/json"})

    def _send(self, status: HTTPStatus, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
