"""One structured log line per request, which is also valid CloudWatch Embedded Metric Format."""

from __future__ import annotations

from typing import Any

from tests.inference.conftest import Api, assert_valid_emf


def test_each_request_writes_one_json_line_that_is_valid_emf(api: Api, rows: list[dict[str, Any]]) -> None:
    reply = api.predict(rows)

    [line] = api.log_messages("request")
    assert_valid_emf(line)
    assert line["Service"] == "driftloop-test"
    assert line["ModelVersion"] == reply.json["model_version"]
    assert (line["method"], line["route"], line["path"], line["status"]) == ("POST", "/predict", "/predict", 200)
    assert line["request_id"] == reply.event["requestContext"]["requestId"]
    assert line["lambda_request_id"]
    assert line["BatchSize"] == line["Predictions"] == len(rows)
    assert line["ClientErrors"] == line["ServerErrors"] == line["CaptureFailures"] == 0
    assert line["Latency"] > 0


def test_client_errors_are_counted_and_carry_no_batch_metrics(api: Api) -> None:
    api.call("POST", "/predict", "{oops")
    api.call("GET", "/missing")

    malformed, missing = api.log_messages("request")
    for line in (malformed, missing):
        assert_valid_emf(line)
        assert (line["ClientErrors"], line["ServerErrors"]) == (1, 0)
        assert "BatchSize" not in line and "Predictions" not in line
    assert malformed["error"] == "malformed_json" and malformed["status"] == 400
    assert missing["error"] == "not_found" and missing["status"] == 404 and "Latency" not in missing
    assert (missing["route"], missing["path"]) == (None, "/missing")


def test_every_log_line_is_json(api: Api, rows: list[dict[str, Any]]) -> None:
    api.predict(rows)
    api.call("GET", "/health", content_type=None)
    lines = api.log_lines()
    assert [line["message"] for line in lines] == ["model loaded", "request", "request"]
    assert all(line["level"] in {"INFO", "WARNING", "ERROR"} for line in lines)
