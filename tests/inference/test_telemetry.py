"""One structured log line per request, which is also valid CloudWatch Embedded Metric Format."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from mangum import Mangum

from functions.common.metrics import NAMESPACE, InferenceMetric
from functions.inference.api import create_app
from functions.inference.settings import InferenceSettings
from functions.inference.telemetry import RequestLog, Telemetry
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


def test_every_metric_a_request_publishes_is_the_contract_s_with_its_unit(api: Api, rows: list[dict[str, Any]]) -> None:
    prediction_id = api.predict(rows).json["predictions"][0]["prediction_id"]
    api.feedback({"prediction_id": prediction_id, "label": "1"})
    api.call("POST", "/predict", "{oops")

    published: dict[str, str] = {}
    for line in api.log_messages("request"):
        [directive] = line["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == NAMESPACE
        published |= {metric["Name"]: metric["Unit"] for metric in directive["Metrics"]}
    assert published == {
        metric.value: metric.unit.value
        for metric in InferenceMetric
        if metric is not InferenceMetric.MODEL_LOAD_FAILURES
    }


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def write_every_kind_of_line(telemetry: Telemetry) -> None:
    telemetry.event("DEBUG", "debug event")
    telemetry.event("INFO", "info event")
    telemetry.event("WARNING", "warning event")
    telemetry.exception("error event", ValueError("broken"))
    telemetry.request(RequestLog("GET", "/health", "r1", status=200), predict=False)
    telemetry.model_load_failed("v1", ValueError("tampered"))


@pytest.mark.parametrize(
    ("level", "events"),
    [
        ("DEBUG", ["debug event", "info event", "warning event", "error event"]),
        ("INFO", ["info event", "warning event", "error event"]),
        ("WARNING", ["warning event", "error event"]),
        ("ERROR", ["error event"]),
    ],
)
def test_the_log_level_filters_events_but_never_a_line_that_carries_metrics(level: str, events: list[str]) -> None:
    stream = io.StringIO()

    write_every_kind_of_line(Telemetry("svc", stream, level=level))

    assert [line["message"] for line in lines(stream)] == [*events, "request", "model load failed"]


def test_the_app_logs_at_the_level_its_settings_name(
    trained_bundle: Path, rows: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    for level in ("INFO", "WARNING"):
        settings = InferenceSettings(service="svc", log_level=level, model_dir=trained_bundle)
        api = Api(Mangum(create_app(settings), lifespan="off"), io.StringIO())
        api.predict(rows)
        written = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        loaded = ["model loaded"] if level == "INFO" else []
        assert [line["message"] for line in written] == [*loaded, "request"]
        assert {line["Service"] for line in written} == {"svc"}
