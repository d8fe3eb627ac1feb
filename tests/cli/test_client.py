"""The API client's commands against a local HTTP server."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from cli.main import main


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
