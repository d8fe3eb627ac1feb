"""The API client's commands against a local HTTP server, and ``api-key`` against stubbed AWS clients."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.stub import Stubber

from cli.main import main
from tests.cli.stubs import stubbed_clients


@pytest.fixture
def api_server() -> Iterator[tuple[str, list[dict[str, object]]]]:
    """An HTTP server that records each POST (path, headers, body) and answers 202."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received: list[dict[str, object]] = []

    class Recorder(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append({"path": self.path, "headers": dict(self.headers), "body": json.loads(body)})
            answer = json.dumps({"accepted": 1}).encode()
            self.send_response(202)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/v1/", received
    server.shutdown()
    thread.join()


def test_feedback_posts_the_labels_signed_with_sigv4_to_the_feedback_route(
    api_server: tuple[str, list[dict[str, object]]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, received = api_server
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    labels = {"prediction_id": "0123456789abcdef0123456789abcdef", "label": "1"}

    assert main(["feedback", "--url", url, "--json", json.dumps(labels), "--sign"]) == 0

    [request] = received
    assert request["path"] == "/v1/feedback"
    assert request["body"] == labels
    headers = request["headers"]
    assert isinstance(headers, dict)
    assert headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/eu-west-1/execute-api/aws4_request" in headers["Authorization"]
    assert "HTTP 202" in capsys.readouterr().out


def lowercase(headers: object) -> dict[str, str]:
    """HTTP header names are case-insensitive (urllib sends "X-api-key")."""
    assert isinstance(headers, dict)
    return {str(name).lower(): str(value) for name, value in headers.items()}


def test_signed_feedback_sends_the_clients_api_key_and_signs_it_too(
    api_server: tuple[str, list[dict[str, object]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, received = api_server
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    labels = '{"prediction_id": "0123456789abcdef0123456789abcdef", "label": "1"}'

    assert main(["feedback", "--url", url, "--json", labels, "--sign", "--api-key", "key-of-labeller"]) == 0

    [request] = received
    headers = lowercase(request["headers"])
    assert headers["x-api-key"] == "key-of-labeller"
    assert "x-api-key" in headers["authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")


SERVING_STACK = "driftloop-prod-serving"
KEY_IDS = json.dumps({"default": "k0default", "reports": "k1reports"})


@pytest.fixture
def key_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Stubber]]:
    """Stubbed CloudFormation and API Gateway clients, as the CLI's boto3.client returns them."""
    yield from stubbed_clients(monkeypatch, "cloudformation", "apigateway")


def serving_stack_with(outputs: dict[str, str]) -> dict[str, Any]:
    stack = {"StackName": SERVING_STACK, "CreationTime": "2026-01-01T00:00:00Z", "StackStatus": "CREATE_COMPLETE"}
    return {"Stacks": [{**stack, "Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in outputs.items()]}]}


def test_api_key_prints_the_named_clients_key_found_through_the_serving_stacks_output(
    key_api: dict[str, Stubber], capsys: pytest.CaptureFixture[str]
) -> None:
    key_api["cloudformation"].add_response(
        "describe_stacks", serving_stack_with({"ApiKeyIds": KEY_IDS}), {"StackName": SERVING_STACK}
    )
    key_api["apigateway"].add_response(
        "get_api_key", {"id": "k1reports", "value": "the-reports-key"}, {"apiKey": "k1reports", "includeValue": True}
    )

    assert main(["api-key", "--client", "reports", "--stack", SERVING_STACK]) == 0

    assert capsys.readouterr().out == "the-reports-key\n"


@pytest.mark.parametrize(
    ("outputs", "problem"),
    [
        ({"ApiKeyIds": KEY_IDS}, "no client 'churn-app' in serving.clients; deployed: default, reports"),
        ({"ApiUrl": "https://x"}, "the serving stack has no ApiKeyIds output: deploy this version of driftloop first"),
    ],
)
def test_api_key_names_what_is_missing_when_it_cannot_find_the_client(
    key_api: dict[str, Stubber], capsys: pytest.CaptureFixture[str], outputs: dict[str, str], problem: str
) -> None:
    key_api["cloudformation"].add_response("describe_stacks", serving_stack_with(outputs), {"StackName": SERVING_STACK})

    assert main(["api-key", "--client", "churn-app", "--stack", SERVING_STACK]) == 1

    assert capsys.readouterr().err == f"driftloop: {problem}\n"


def test_api_key_reports_a_missing_stack_as_a_command_error(
    key_api: dict[str, Stubber], capsys: pytest.CaptureFixture[str]
) -> None:
    key_api["cloudformation"].add_client_error(
        "describe_stacks", "ValidationError", f"Stack with id {SERVING_STACK} does not exist"
    )

    assert main(["api-key", "--stack", SERVING_STACK]) == 1

    error = capsys.readouterr().err
    assert error.startswith(f"driftloop: cannot read the API key of client 'default' from {SERVING_STACK}: ")
    assert "does not exist" in error
