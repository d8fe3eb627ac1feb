"""The Lambda entry point as deployed: module import, settings, and the same app over real HTTP."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from functions.common.env import EnvError
from functions.inference.api import create_app
from functions.inference.settings import InferenceSettings
from functions.inference.telemetry import Telemetry
from tests.inference.events import LambdaContext, rest_event

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("boto3", "botocore", "sklearn", "scipy", "pandas", "joblib", "fastapi", "pydantic")


def run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DRIFTLOOP_", "POWERTOOLS_"))}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env={**clean, **env}, capture_output=True, text=True, timeout=120
    )


def test_a_cold_start_with_a_model_dir_loads_the_model_without_the_aws_sdk_or_training_libraries(
    trained_bundle: Path, rows: list[dict[str, Any]]
) -> None:
    event = rest_event("POST", "/predict", json.dumps({"instances": rows}))
    code = f"""
import json, sys
from functions.inference.app import handler
loaded = sorted({{name.split(".")[0] for name in sys.modules}} & set({HEAVY!r}))
response = handler(json.loads({json.dumps(event)!r}), None)
print(json.dumps({{"heavy": loaded, "status": response["statusCode"]}}))
"""
    result = run_python(code, {"DRIFTLOOP_MODEL_DIR": str(trained_bundle)})

    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.splitlines()[-1])
    assert outcome == {"heavy": [], "status": 200}
    loaded = json.loads(result.stdout.splitlines()[0])
    assert loaded["message"] == "model loaded"


def test_the_module_imports_without_a_model_and_answers_503() -> None:
    event = rest_event("GET", "/health", content_type=None)
    code = f"""
import json
from functions.inference.app import handler
print(json.dumps(handler(json.loads({json.dumps(event)!r}), None)))
"""
    result = run_python(code, {})

    assert result.returncode == 0, result.stderr
    response = json.loads(result.stdout.splitlines()[-1])
    assert response["statusCode"] == 503


def test_invalid_settings_stop_the_start_listing_every_problem() -> None:
    with pytest.raises(EnvError) as caught:
        InferenceSettings.from_env(
            {
                "DRIFTLOOP_REFRESH_SECONDS": "soon",
                "DRIFTLOOP_MAX_INSTANCES": "0",
                "DRIFTLOOP_MAX_BODY_BYTES": "1.5",
                "DRIFTLOOP_CAPTURE": "kafka",
            }
        )
    message = str(caught.value)
    for name in ("REFRESH_SECONDS", "MAX_INSTANCES", "MAX_BODY_BYTES", "CAPTURE"):
        assert f"DRIFTLOOP_{name}=" in message


def test_settings_are_read_from_the_environment_with_defaults() -> None:
    assert InferenceSettings.from_env({}) == InferenceSettings()
    settings = InferenceSettings.from_env(
        {
            "DRIFTLOOP_MODEL_BUCKET": "models",
            "DRIFTLOOP_REGISTRY_PREFIX": "team/registry/",
            "DRIFTLOOP_REFRESH_SECONDS": "5",
            "DRIFTLOOP_MAX_INSTANCES": "10",
            "DRIFTLOOP_CAPTURE": "log",
            "DRIFTLOOP_MODEL_DIR": "",
        }
    )
    assert (settings.model_bucket, settings.registry_prefix, settings.refresh_seconds) == (
        "models",
        "team/registry/",
        5.0,
    )
    assert (settings.max_instances, settings.capture, settings.model_dir) == (10, "log", None)


def test_capture_and_feedback_settings_are_read_from_the_environment() -> None:
    settings = InferenceSettings.from_env(
        {
            "DRIFTLOOP_CAPTURE": "log",
            "DRIFTLOOP_CAPTURE_SAMPLE_RATE": "0.25",
            "DRIFTLOOP_FEEDBACK_STREAM": "driftloop-dev-feedback",
            "DRIFTLOOP_FEEDBACK_MAX_AGE_DAYS": "14",
            "POWERTOOLS_SERVICE_NAME": "driftloop-dev-inference",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
        }
    )
    assert (settings.capture, settings.sample_rate) == ("log", 0.25)
    assert (settings.feedback_stream, settings.feedback_max_age_days) == ("driftloop-dev-feedback", 14)
    assert (settings.service, settings.log_level) == ("driftloop-dev-inference", "WARNING")
    defaults = InferenceSettings()
    assert (defaults.sample_rate, defaults.feedback_stream, defaults.feedback_max_age_days) == (1.0, None, 30)


def test_invalid_capture_settings_are_refused_with_every_problem() -> None:
    with pytest.raises(EnvError) as caught:
        InferenceSettings.from_env(
            {
                "DRIFTLOOP_CAPTURE": "firehose",
                "DRIFTLOOP_CAPTURE_SAMPLE_RATE": "1.5",
                "DRIFTLOOP_FEEDBACK_MAX_AGE_DAYS": "0",
            }
        )
    message = str(caught.value)
    assert "DRIFTLOOP_CAPTURE_SAMPLE_RATE='1.5': must be a number between 0 and 1" in message
    assert "DRIFTLOOP_FEEDBACK_MAX_AGE_DAYS='0'" in message
    # Captures are log lines now: the function has no capture stream to call.
    assert "DRIFTLOOP_CAPTURE='firehose': must be one of none, log" in message
    with pytest.raises(EnvError, match="must be a number between 0 and 1"):
        InferenceSettings.from_env({"DRIFTLOOP_CAPTURE_SAMPLE_RATE": "nan"})


def test_the_work_dir_is_resolved_where_the_function_runs_never_rendered_by_the_stack(tmp_path: Path) -> None:
    defaults = InferenceSettings()
    assert "DRIFTLOOP_WORK_DIR" not in defaults.to_env()
    assert defaults.models_dir == Path(tempfile.gettempdir()) / "driftloop-models"
    assert InferenceSettings.from_env({"DRIFTLOOP_WORK_DIR": str(tmp_path)}).models_dir == tmp_path


def test_without_capture_the_rendered_environment_has_no_sampling_rate_and_reads_back_the_same() -> None:
    settings = InferenceSettings(service="svc", model_bucket="models", feedback_stream="feedback")
    rendered = settings.to_env()
    assert "DRIFTLOOP_CAPTURE_SAMPLE_RATE" not in rendered and rendered["DRIFTLOOP_CAPTURE"] == "none"
    assert InferenceSettings.from_env(rendered) == settings


def test_the_default_registry_prefix_is_the_registry_s_own() -> None:
    from functions.common.registry import DEFAULT_PREFIX

    assert InferenceSettings().registry_prefix == DEFAULT_PREFIX


def test_the_handler_answers_a_lambda_invocation_with_a_context(
    trained_bundle: Path, rows: list[dict[str, Any]]
) -> None:
    from mangum import Mangum

    handler = Mangum(create_app(InferenceSettings(model_dir=trained_bundle)), lifespan="off")
    response = handler(rest_event("POST", "/predict", json.dumps({"instances": rows})), LambdaContext())
    assert response["statusCode"] == 200


@pytest.fixture
def http_server(trained_bundle: Path) -> Iterator[str]:
    app = create_app(InferenceSettings(model_dir=trained_bundle), telemetry=Telemetry("driftloop-test", io.StringIO()))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def post(url: str, body: bytes, content_type: str = "application/json") -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_the_app_serves_predictions_over_real_http_under_uvicorn(http_server: str, rows: list[dict[str, Any]]) -> None:
    status, answer = post(f"{http_server}/predict", json.dumps({"instances": rows}).encode())
    assert status == 200
    assert len(answer["predictions"]) == len(rows)

    status, answer = post(f"{http_server}/predict", b"{}", content_type="text/plain")
    assert (status, answer["error"]) == (415, "unsupported_media_type")

    with urllib.request.urlopen(f"{http_server}/health", timeout=10) as response:
        assert json.loads(response.read())["status"] == "ok"
