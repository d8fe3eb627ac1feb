"""The Lambda Runtime API server (driftloop_localstack.runtime_api), driven over real HTTP as a runtime would."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from driftloop_localstack.runtime_api import MAX_RESPONSE_BYTES, Invocation, RuntimeApi

NEXT = "/2018-06-01/runtime/invocation/next"


@pytest.fixture
def api() -> Iterator[RuntimeApi]:
    with RuntimeApi() as server:
        yield server


def request(
    api: RuntimeApi, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    host, port = api.address.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def poll_in_background(api: RuntimeApi) -> tuple[threading.Thread, dict[str, Any]]:
    answer: dict[str, Any] = {}

    def poll() -> None:
        answer["status"], answer["headers"], answer["body"] = request(api, "GET", NEXT)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    return thread, answer


def wait_for(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def invocation(request_id: str = "req-1", payload: bytes = b'{"a": 1}') -> Invocation:
    return Invocation(request_id, payload, deadline_ms=1_900_000_000_000, function_arn="arn:fn", trace_id="Root=1-x")


def test_next_delivers_the_event_with_lambda_headers(api: RuntimeApi) -> None:
    thread, answer = poll_in_background(api)
    wait_for(lambda: api.polls == 1)
    assert api.idle
    api.submit(invocation())
    thread.join(5)
    assert answer["status"] == 200
    assert answer["body"] == b'{"a": 1}'
    headers = answer["headers"]
    assert headers["lambda-runtime-aws-request-id"] == "req-1"
    assert headers["lambda-runtime-deadline-ms"] == "1900000000000"
    assert headers["lambda-runtime-invoked-function-arn"] == "arn:fn"
    assert headers["lambda-runtime-trace-id"] == "Root=1-x"
    # awslambdaric's C client crashes on an event without a content type.
    assert headers["content-type"] == "application/json"
    assert not api.idle


def test_response_becomes_the_outcome(api: RuntimeApi) -> None:
    thread, _ = poll_in_background(api)
    wait_for(lambda: api.polls == 1)
    api.submit(invocation())
    thread.join(5)
    status, _, body = request(api, "POST", "/2018-06-01/runtime/invocation/req-1/response", b'{"ok": true}')
    assert status == 202
    assert json.loads(body) == {"status": "OK"}
    outcome = api.take_outcome("req-1")
    assert outcome is not None
    assert (outcome.payload, outcome.is_error) == (b'{"ok": true}', False)
    assert api.take_outcome("req-1") is None


def test_error_keeps_the_document_and_the_error_type_header(api: RuntimeApi) -> None:
    thread, _ = poll_in_background(api)
    wait_for(lambda: api.polls == 1)
    api.submit(invocation())
    thread.join(5)
    document = {"errorMessage": "boom", "errorType": "ValueError", "stackTrace": []}
    status, _, _ = request(
        api,
        "POST",
        "/2018-06-01/runtime/invocation/req-1/error",
        json.dumps(document).encode(),
        {"Lambda-Runtime-Function-Error-Type": "Unhandled"},
    )
    assert status == 202
    outcome = api.take_outcome("req-1")
    assert outcome is not None
    assert outcome.is_error
    assert json.loads(outcome.payload) == document
    assert outcome.error_type == "Unhandled"


def test_result_for_an_unknown_request_is_refused(api: RuntimeApi) -> None:
    status, _, body = request(api, "POST", "/2018-06-01/runtime/invocation/nope/response", b"{}")
    assert status == 400
    assert json.loads(body)["errorType"] == "InvalidRequestID"
    assert api.take_outcome("nope") is None


def test_abandoned_invocation_rejects_a_late_result(api: RuntimeApi) -> None:
    thread, _ = poll_in_background(api)
    wait_for(lambda: api.polls == 1)
    api.submit(invocation())
    thread.join(5)
    api.abandon("req-1")
    status, _, _ = request(api, "POST", "/2018-06-01/runtime/invocation/req-1/response", b"{}")
    assert status == 400


def test_init_error_is_recorded(api: RuntimeApi) -> None:
    document = b'{"errorType": "Runtime.ImportModuleError", "errorMessage": "no module"}'
    status, _, _ = request(api, "POST", "/2018-06-01/runtime/init/error", document)
    assert status == 202
    assert api.init_error == document


def test_oversized_response_becomes_a_lambda_error(api: RuntimeApi) -> None:
    thread, _ = poll_in_background(api)
    wait_for(lambda: api.polls == 1)
    api.submit(invocation())
    thread.join(5)
    status, _, _ = request(
        api, "POST", "/2018-06-01/runtime/invocation/req-1/response", b"x" * (MAX_RESPONSE_BYTES + 1)
    )
    assert status == 413
    outcome = api.take_outcome("req-1")
    assert outcome is not None
    assert outcome.is_error
    assert json.loads(outcome.payload)["errorType"] == "Function.ResponseSizeTooLarge"


def test_chunked_response_body_is_read(api: RuntimeApi) -> None:
    thread, _ = poll_in_background(api)
    wait_for(lambda: api.polls == 1)
    api.submit(invocation())
    thread.join(5)
    host, port = api.address.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.request(
        "POST", "/2018-06-01/runtime/invocation/req-1/response", body=iter([b'{"par', b'ts": 2}']), encode_chunked=True
    )
    assert connection.getresponse().status == 202
    connection.close()
    outcome = api.take_outcome("req-1")
    assert outcome is not None
    assert outcome.payload == b'{"parts": 2}'


def test_one_invocation_at_a_time(api: RuntimeApi) -> None:
    api.submit(invocation("a"))
    with pytest.raises(RuntimeError, match="one at a time"):
        api.submit(invocation("b"))


def test_on_change_fires_for_polls_and_results() -> None:
    events: list[str] = []
    with RuntimeApi(on_change=lambda: events.append("change")) as api:
        thread, _ = poll_in_background(api)
        wait_for(lambda: len(events) == 1)
        api.submit(invocation())
        thread.join(5)
        request(api, "POST", "/2018-06-01/runtime/invocation/req-1/response", b"{}")
        assert len(events) == 2


def test_close_releases_a_waiting_runtime() -> None:
    api = RuntimeApi().start()
    thread, answer = poll_in_background(api)
    wait_for(lambda: api.polls == 1)
    api.close()
    thread.join(5)
    assert answer["status"] == 500
    with pytest.raises(RuntimeError):
        api.submit(invocation())


def test_unknown_paths_are_404(api: RuntimeApi) -> None:
    assert request(api, "GET", "/2018-06-01/runtime/invocation/other")[0] == 404
    assert request(api, "POST", "/2018-06-01/runtime/invocation/x/other", b"")[0] == 404
