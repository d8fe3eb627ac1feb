"""Successful predictions through the Lambda handler, their parity with scikit-learn, and the capture hook."""

from __future__ import annotations

import asyncio
import io
import json
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
from starlette.applications import Starlette
from starlette.types import Message

from functions.common.bundle import JOBLIB_FILE, MISSING_CATEGORY, read_metadata
from functions.common.records import (
    PREDICTION_ID_LENGTH,
    Caller,
    new_prediction_ids,
    prediction_time,
    to_json_lines,
)
from functions.inference.api import create_app
from functions.inference.id_keys import LOCAL_KEYS
from functions.inference.settings import InferenceSettings
from functions.inference.telemetry import Telemetry
from tests.inference.conftest import TARGET, Api, FailingSink, MakeApi, RecordingSink, instances
from tests.prediction_ids import ID_KEY


def test_predict_classification_returns_a_label_probabilities_and_an_id_per_instance(
    api: Api, rows: list[dict[str, Any]], trained_bundle: Path
) -> None:
    reply = api.predict(rows)

    assert reply.status == 200, reply.body
    assert reply.headers["content-type"] == "application/json"
    answer = reply.json
    classes = list(read_metadata(trained_bundle).classes)
    assert answer["model_version"].startswith("local-")
    assert len(answer["predictions"]) == len(rows)
    for prediction in answer["predictions"]:
        assert set(prediction) == {"prediction_id", "label", "probabilities"}
        assert prediction["label"] in classes
        assert list(prediction["probabilities"]) == classes
        assert math.isclose(sum(prediction["probabilities"].values()), 1.0, abs_tol=1e-5)
        assert prediction["label"] == max(prediction["probabilities"], key=prediction["probabilities"].get)
    ids = [p["prediction_id"] for p in answer["predictions"]]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == PREDICTION_ID_LENGTH and int(i, 16) >= 0 for i in ids)


def test_prediction_ids_carry_the_serving_time_and_a_mac_under_the_apps_key(
    api: Api, sink: RecordingSink, rows: list[dict[str, Any]]
) -> None:
    before = datetime.now(UTC)
    served = api.predict(rows).json["predictions"]
    after = datetime.now(UTC)

    times = {prediction_time(p["prediction_id"], LOCAL_KEYS) for p in served}
    [served_at] = times
    assert before - timedelta(milliseconds=1) <= served_at <= after
    # The record's time and the id's are the same instant (both in whole milliseconds; float rounding aside).
    assert all(abs(datetime.fromisoformat(r.time) - served_at) <= timedelta(milliseconds=1) for r in sink.predictions)


def test_prediction_ids_are_unique_across_requests(api: Api, rows: list[dict[str, Any]]) -> None:
    ids = [p["prediction_id"] for _ in range(20) for p in api.predict(rows).json["predictions"]]
    assert len(set(ids)) == len(ids) == 20 * len(rows)


def test_directory_model_version_is_stable_across_loads(
    make_api: MakeApi, trained_bundle: Path, rows: list[dict[str, Any]]
) -> None:
    first = make_api(InferenceSettings(model_dir=trained_bundle)).predict(rows).json["model_version"]
    second = make_api(InferenceSettings(model_dir=trained_bundle)).predict(rows).json["model_version"]
    assert first == second == f"local-{read_metadata(trained_bundle).files['model.onnx'][:12]}"


def test_predict_regression_returns_a_value_per_instance(
    make_api: MakeApi, regression_bundle: Path, churn_data: pd.DataFrame
) -> None:
    api = make_api(InferenceSettings(model_dir=regression_bundle))
    rows = instances(churn_data, 4, drop=(TARGET, "monthly_charges"))

    reply = api.predict(rows)

    assert reply.status == 200, reply.body
    predictions = reply.json["predictions"]
    assert [set(p) for p in predictions] == [{"prediction_id", "value"}] * 4
    assert all(isinstance(p["value"], float) and 0 < p["value"] < 500 for p in predictions)


def test_explicit_nulls_are_accepted_as_missing_values(api: Api, rows: list[dict[str, Any]]) -> None:
    blank = dict.fromkeys(rows[0])

    reply = api.predict([blank])

    assert reply.status == 200, reply.body
    assert "warnings" not in reply.json["predictions"][0]


def test_an_unknown_category_is_accepted_and_reported_as_a_warning_on_that_instance(
    api: Api, rows: list[dict[str, Any]]
) -> None:
    rows[1]["region"] = "atlantis"

    reply = api.predict(rows[:3])

    assert reply.status == 200, reply.body
    first, second, third = reply.json["predictions"]
    assert "warnings" not in first and "warnings" not in third
    [warning] = second["warnings"]
    assert warning["field"] == "region"
    assert "unknown category 'atlantis'" in warning["problem"]


def test_json_with_a_utf8_charset_and_a_base64_encoded_body_is_accepted(api: Api, rows: list[dict[str, Any]]) -> None:
    reply = api.call(
        "POST",
        "/predict",
        json.dumps({"instances": rows}),
        content_type="Application/JSON; charset=UTF-8",
        binary=True,
    )
    assert reply.status == 200, reply.body


@pytest.mark.parametrize("bundle_fixture", ["trained_bundle", "trained_forest_bundle"])
def test_predictions_through_the_api_equal_the_scikit_learn_pipeline(
    make_api: MakeApi, churn_data: pd.DataFrame, bundle_fixture: str, request: pytest.FixtureRequest
) -> None:
    from training.features import model_inputs

    bundle: Path = request.getfixturevalue(bundle_fixture)
    metadata = read_metadata(bundle)
    frame = churn_data.sample(100, random_state=3)
    api = make_api(InferenceSettings(model_dir=bundle))

    served = api.predict(instances(frame, 100)).json["predictions"]

    pipeline = joblib.load(bundle / JOBLIB_FILE)
    expected = pipeline.predict_proba(model_inputs(frame, {f.name: f.type for f in metadata.features}))
    got = np.array([[p["probabilities"][c] for c in metadata.classes] for p in served])
    np.testing.assert_allclose(got, expected, atol=1e-4)
    decisive = np.abs(expected[:, 0] - expected[:, 1]) > 1e-4
    expected_labels = np.array(metadata.classes)[expected.argmax(axis=1)]
    assert [p["label"] for p, keep in zip(served, decisive, strict=True) if keep] == list(expected_labels[decisive])


def test_a_model_trained_on_column_names_onnx_cannot_spell_serves_them_by_their_own_names(
    make_api: MakeApi, make_job: Callable[..., Path], churn_data: pd.DataFrame
) -> None:
    from training.program import run

    renamed = {"tenure_months": "tenure (months)", "region": "Unnamed: 0", "contract": "contract type"}
    frame = churn_data.head(600).rename(columns=renamed)
    base = make_job({"target": TARGET, "algorithm": "logistic_regression"}, frame)
    assert run(base) == 0, (base / "output" / "failure").read_text()
    metadata = read_metadata(base / "model")
    assert {f.name: f.onnx_input for f in metadata.features if f.name in renamed.values()} == {
        "tenure (months)": "tenure_months",
        "Unnamed: 0": "Unnamed_0",
        "contract type": "contract_type",
    }
    api = make_api(InferenceSettings(model_dir=base / "model"))

    reply = api.predict(instances(frame, 3))

    assert reply.status == 200, reply.body
    assert [set(p) for p in reply.json["predictions"]] == [{"prediction_id", "label", "probabilities"}] * 3


def test_the_missing_category_token_is_the_one_training_uses(trained_bundle: Path) -> None:
    from training.features import categories

    assert categories(pd.Series([None, "a"])).tolist() == [MISSING_CATEGORY, "a"]


def test_the_capture_hook_receives_exactly_the_served_predictions(
    api: Api, sink: RecordingSink, rows: list[dict[str, Any]]
) -> None:
    reply = api.predict(rows)

    assert len(sink.batches) == 1
    records = sink.predictions
    served = reply.json["predictions"]
    assert [r.prediction_id for r in records] == [p["prediction_id"] for p in served]
    assert [r.label for r in records] == [p["label"] for p in served]
    assert [r.probabilities for r in records] == [p["probabilities"] for p in served]
    assert [r.features for r in records] == rows
    assert {r.model_version for r in records} == {reply.json["model_version"]}
    assert {r.request_id for r in records} == {reply.event["requestContext"]["requestId"]}
    assert all(r.value is None for r in records)
    assert all(r.time.endswith("+00:00") for r in records)


def test_requests_that_fail_capture_nothing(api: Api, sink: RecordingSink, rows: list[dict[str, Any]]) -> None:
    rows[0]["age"] = "forty"
    assert api.predict(rows).status == 422
    assert sink.batches == []


def test_a_capture_failure_does_not_fail_the_request_and_is_logged_and_counted(
    make_api: MakeApi, trained_bundle: Path, rows: list[dict[str, Any]]
) -> None:
    api = make_api(InferenceSettings(model_dir=trained_bundle), sink=FailingSink())

    reply = api.predict(rows)

    assert reply.status == 200
    assert len(reply.json["predictions"]) == len(rows)
    [failure] = api.log_messages("capture failed; the predictions were served but not captured")
    assert failure["level"] == "ERROR"
    assert "ConnectionError: the delivery stream is unreachable" in failure["stack"]
    [request] = api.log_messages("request")
    assert request["CaptureFailures"] == len(rows)
    assert request["status"] == 200


def test_capture_records_carry_the_caller_but_never_the_api_key_value(
    api: Api, sink: RecordingSink, rows: list[dict[str, Any]]
) -> None:
    identity = {
        "userArn": "arn:aws:iam::123456789012:user/scorer",
        "apiKeyId": "k9y8x7w6v5",
        "apiKey": "the-secret-key-value",
        "sourceIp": "198.51.100.23",
    }

    assert api.predict(rows, identity=identity).status == 200

    expected = Caller(principal=identity["userArn"], api_key_id="k9y8x7w6v5", source_ip="198.51.100.23")
    assert {record.caller for record in sink.predictions} == {expected}
    assert "the-secret-key-value" not in to_json_lines(sink.predictions).decode()


def asgi_post(app: Starlette, path: str, body: bytes) -> int:
    """One request as uvicorn hands it to the app: a plain ASGI scope, no API Gateway event."""
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"localhost"), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 50000),
        "server": ("localhost", 8080),
    }
    asyncio.run(app(scope, receive, send))
    status: int = sent[0]["status"]
    return status


def test_without_api_gateway_capture_and_feedback_records_have_no_caller(
    trained_bundle: Path, sink: RecordingSink, feedback_sink: RecordingSink, rows: list[dict[str, Any]]
) -> None:
    # Locally (driftloop serve, uvicorn) nothing identifies the client: no caller rather than a guessed one.
    app = create_app(
        InferenceSettings(model_dir=trained_bundle),
        sink=sink,
        feedback=feedback_sink,
        telemetry=Telemetry("t", io.StringIO()),
    )
    [prediction_id] = new_prediction_ids(1, datetime.now(UTC), ID_KEY)

    assert asgi_post(app, "/predict", json.dumps({"instances": rows}).encode()) == 200
    assert asgi_post(app, "/feedback", json.dumps({"prediction_id": prediction_id, "label": "1"}).encode()) == 202

    assert [record.caller for record in sink.predictions] == [None] * len(rows)
    assert [record.caller for record in feedback_sink.feedback] == [None]


def test_a_regression_output_that_overflows_is_null_with_a_warning_on_that_instance_only(
    make_api: MakeApi, regression_bundle: Path, churn_data: pd.DataFrame, sink: RecordingSink
) -> None:
    api = make_api(InferenceSettings(model_dir=regression_bundle), sink=sink)
    rows = instances(churn_data, 3, drop=(TARGET, "monthly_charges"))
    # Within float32, as the document allows, but far beyond training: the linear model's output overflows.
    rows[1] |= {"tenure_months": 3.4e38, "data_usage_gb": 3.4e38, "support_calls": 3.4e38, "age": 3.4e38}
    rows[1]["region"] = "atlantis"

    reply = api.predict(rows)

    assert reply.status == 200, reply.body
    first, second, third = reply.json["predictions"]
    assert isinstance(first["value"], float) and isinstance(third["value"], float)
    assert "warnings" not in first and "warnings" not in third
    assert second["value"] is None
    assert [w["field"] for w in second["warnings"]] == ["region", "value"]
    assert "not a finite number" in second["warnings"][1]["problem"]
    assert [record.value is None for record in sink.predictions] == [False, True, False]
