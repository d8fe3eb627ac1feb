"""Every refused request gets a precise 4xx (or 503) with a JSON body; an unexpected failure a 500."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from functions.inference.config import Config
from functions.inference.model import Model
from tests.inference.conftest import Api, MakeApi, assert_valid_emf


def details(reply: Any) -> list[tuple[int | None, str | None]]:
    return [(d["instance"], d["field"]) for d in reply.json["details"]]


def test_unknown_route_returns_404_as_json(api: Api) -> None:
    reply = api.call("GET", "/nowhere")
    assert reply.status == 404
    assert reply.json["error"] == "not_found"


def test_wrong_method_returns_405_with_the_allowed_methods(api: Api) -> None:
    reply = api.call("GET", "/predict")
    assert reply.status == 405
    assert reply.json["error"] == "method_not_allowed"
    assert reply.headers["allow"] == "POST"


def test_malformed_json_returns_400(api: Api) -> None:
    reply = api.call("POST", "/predict", '{"instances": [')
    assert reply.status == 400
    assert reply.json["error"] == "malformed_json"
    assert "line 1" in reply.json["message"]


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1"]
)
def test_a_body_not_declared_as_utf8_json_returns_415(
    api: Api, rows: list[dict[str, Any]], content_type: str | None
) -> None:
    reply = api.call("POST", "/predict", json.dumps({"instances": rows}), content_type=content_type)
    assert reply.status == 415
    assert reply.json["error"] == "unsupported_media_type"


def test_a_body_over_the_size_limit_returns_413(
    make_api: MakeApi, trained_bundle: Path, rows: list[dict[str, Any]]
) -> None:
    api = make_api(Config(model_dir=trained_bundle, max_body_bytes=512))
    reply = api.predict(rows * 3)
    assert reply.status == 413
    assert reply.json["error"] == "body_too_large"
    assert "512 bytes" in reply.json["message"]


def test_predict_with_unknown_feature_returns_422(api: Api, rows: list[dict[str, Any]]) -> None:
    rows[1]["favourite_colour"] = "blue"
    reply = api.predict(rows)
    assert reply.status == 422
    assert reply.json["error"] == "validation_failed"
    assert reply.json["details"] == [{"instance": 1, "field": "favourite_colour", "problem": "unknown feature"}]


def test_predict_with_missing_feature_returns_422_and_suggests_null(api: Api, rows: list[dict[str, Any]]) -> None:
    del rows[0]["tenure_months"]
    reply = api.predict(rows)
    assert reply.status == 422
    [detail] = reply.json["details"]
    assert (detail["instance"], detail["field"]) == (0, "tenure_months")
    assert "send null" in detail["problem"]


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("tenure_months", True, "expected a number, got boolean"),
        ("tenure_months", "12", "expected a number, got string"),
        ("tenure_months", [12], "expected a number, got array"),
        ("age", 1e39, "out of range"),
        ("contract", 2, "expected a string (a category), got number"),
        ("contract", {"name": "one_year"}, "expected a string (a category), got object"),
    ],
)
def test_predict_with_a_wrongly_typed_value_returns_422_naming_it(
    api: Api, rows: list[dict[str, Any]], field: str, value: Any, problem: str
) -> None:
    rows[2][field] = value
    reply = api.predict(rows)
    assert reply.status == 422
    [detail] = reply.json["details"]
    assert (detail["instance"], detail["field"]) == (2, field)
    assert problem in detail["problem"]


@pytest.mark.parametrize(
    ("token", "problem"),
    [
        ("NaN", "NaN is not a number: send null"),
        ("Infinity", "Infinity is not a number"),
        ("-Infinity", "Infinity"),
        ("1e400", "Infinity"),
    ],
)
def test_non_finite_json_numbers_return_422_naming_the_field(
    api: Api, rows: list[dict[str, Any]], token: str, problem: str
) -> None:
    rows[1]["monthly_charges"] = "__TOKEN__"
    body = json.dumps({"instances": rows}).replace('"__TOKEN__"', token)

    reply = api.call("POST", "/predict", body)

    assert reply.status == 422, reply.body
    [detail] = reply.json["details"]
    assert (detail["instance"], detail["field"]) == (1, "monthly_charges")
    assert problem in detail["problem"]


def test_every_problem_of_a_request_is_listed_in_one_response(api: Api, rows: list[dict[str, Any]]) -> None:
    rows[0]["age"] = "old"
    del rows[1]["region"]
    rows[3]["contract"] = 1
    rows[3]["shoe_size"] = 44
    body: list[Any] = [*rows, "not an object"]

    reply = api.predict(body)

    assert reply.status == 422
    assert details(reply) == [(0, "age"), (1, "region"), (3, "shoe_size"), (3, "contract"), (5, None)]
    assert reply.json["message"] == "the request has 5 problems: see details"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({}, "missing"),
        ({"instances": {"age": 3}}, "expected an array of instances, got object"),
        ({"instances": []}, "empty"),
        ({"instances": [{}] * 101}, "101 instances: at most 100 per request"),
    ],
)
def test_a_body_without_a_usable_instances_list_returns_422(api: Api, body: Any, problem: str) -> None:
    reply = api.call("POST", "/predict", json.dumps(body))
    assert reply.status == 422
    [detail] = reply.json["details"]
    assert (detail["instance"], detail["field"]) == (None, "instances")
    assert problem in detail["problem"]


def test_a_body_that_is_not_an_object_returns_422(api: Api) -> None:
    reply = api.call("POST", "/predict", "[1, 2]")
    assert reply.status == 422
    assert reply.json["details"] == [{"instance": None, "field": None, "problem": "expected an object, got array"}]


def test_an_unknown_top_level_field_is_reported_with_the_instance_problems(
    api: Api, rows: list[dict[str, Any]]
) -> None:
    rows[0]["age"] = False
    reply = api.call("POST", "/predict", json.dumps({"instances": rows, "threshold": 0.5}))
    assert reply.status == 422
    assert details(reply) == [(None, "threshold"), (0, "age")]


def test_the_batch_limit_is_configurable(make_api: MakeApi, trained_bundle: Path, rows: list[dict[str, Any]]) -> None:
    api = make_api(Config(model_dir=trained_bundle, max_instances=2))
    assert api.predict(rows[:2]).status == 200
    assert api.predict(rows[:3]).status == 422


@pytest.mark.parametrize(
    ("method", "path"), [("POST", "/predict"), ("GET", "/health"), ("GET", "/model"), ("GET", "/openapi.json")]
)
def test_without_a_model_every_route_returns_503_with_a_clear_message(
    make_api: MakeApi, rows: list[dict[str, Any]], method: str, path: str
) -> None:
    api = make_api(Config())
    reply = api.call(method, path, json.dumps({"instances": rows}) if method == "POST" else None)
    assert reply.status == 503
    assert reply.json["error"] == "model_unavailable"
    assert "DRIFTLOOP_MODEL_DIR" in reply.json["message"]


def test_a_model_directory_that_does_not_exist_returns_503_saying_so(make_api: MakeApi, tmp_path: Path) -> None:
    reply = make_api(Config(model_dir=tmp_path / "nowhere")).call("GET", "/health", content_type=None)
    assert reply.status == 503
    assert reply.json["message"] == "no model available: the model directory does not exist"


def test_a_directory_bundle_that_fails_verification_is_refused_with_503(
    make_api: MakeApi, trained_bundle: Path, tmp_path: Path
) -> None:
    import shutil

    broken = tmp_path / "bundle"
    shutil.copytree(trained_bundle, broken)
    with (broken / "model.onnx").open("ab") as stream:
        stream.write(b"\0")

    api = make_api(Config(model_dir=broken))

    reply = api.call("GET", "/health")
    assert reply.status == 503
    assert "was refused" in reply.json["message"]
    [failure] = api.log_messages("model load failed")
    assert "checksum mismatch" in failure["exception"]
    assert failure["ModelLoadFailures"] == 1
    assert_valid_emf(failure)


def test_an_unexpected_exception_returns_500_with_a_correlation_id_and_logs_the_stack(
    api: Api, rows: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(self: Model, columns: object) -> None:
        raise RuntimeError("the graph exploded")

    monkeypatch.setattr(Model, "predict", explode)

    reply = api.predict(rows)

    assert reply.status == 500
    request_id = reply.event["requestContext"]["requestId"]
    assert reply.json == {
        "error": "internal_error",
        "message": "the service failed unexpectedly; quote the correlation_id when reporting it",
        "correlation_id": request_id,
    }
    [logged] = api.log_messages("unhandled error while serving a request")
    assert logged["request_id"] == request_id
    assert "RuntimeError: the graph exploded" in logged["stack"]
    assert "Traceback" in logged["stack"]
    [request] = api.log_messages("request")
    assert (request["status"], request["ServerErrors"], request["error"]) == (500, 1, "internal_error")
