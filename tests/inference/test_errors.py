"""Every refused request gets a precise 4xx (or 503) with a JSON body; an unexpected failure a 500."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path
from typing import Any

import pytest

from functions.inference.errors import Problem
from functions.inference.model import Model
from functions.inference.settings import InferenceSettings
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
    api = make_api(InferenceSettings(model_dir=trained_bundle, max_body_bytes=512))
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
        ("1e400", "out of range: the number is beyond a 64-bit float"),
        ("-1e400", "out of range: the number is beyond a 64-bit float"),
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


def test_a_number_beyond_the_float_range_is_named_as_such_not_as_infinity(api: Api, rows: list[dict[str, Any]]) -> None:
    rows[1]["monthly_charges"] = "__TOKEN__"
    body = json.dumps({"instances": rows}).replace('"__TOKEN__"', "1e400")

    reply = api.call("POST", "/predict", body)

    assert reply.status == 422, reply.body
    assert reply.json["details"] == [
        {
            "instance": 1,
            "field": "monthly_charges",
            "problem": "out of range: the number is beyond a 64-bit float (magnitude at most 1.8e308)",
        }
    ]


def test_a_byte_that_is_not_utf8_is_named_by_its_offset_not_as_a_surrogate(
    api: Api, rows: list[dict[str, Any]]
) -> None:
    body = json.dumps({"instances": rows}).encode().replace(b'"north"', b'"nor\xffth"', 1)
    offset = body.index(b"\xff")

    reply = api.call("POST", "/predict", body, binary=True)

    assert reply.status == 400, reply.body
    assert reply.json["error"] == "malformed_json"
    assert reply.json["message"] == f"the body is not valid UTF-8: invalid start byte at byte offset {offset}"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            '{"instances": [__ROW__], "instances": []}',
            [{"instance": None, "field": "instances", "problem": "repeated key: given 2 times at the top level"}],
            id="the instances",
        ),
        pytest.param(
            '{"instances": [__ROW__, __AGE__]}',
            [{"instance": 1, "field": "age", "problem": "repeated key: given 2 times in the object at /instances/1"}],
            id="a feature",
        ),
        pytest.param(
            '{"instances": [{"age": {"x": 1, "x": 2, "x": 3}}]}',
            [{"instance": 0, "field": "x", "problem": "repeated key: given 3 times in the object at /instances/0/age"}],
            id="inside a value",
        ),
    ],
)
def test_a_repeated_key_anywhere_in_a_prediction_request_returns_422_naming_the_key_and_its_object(
    api: Api, rows: list[dict[str, Any]], body: str, expected: list[dict[str, Any]]
) -> None:
    row = json.dumps(rows[0])
    text = body.replace("__ROW__", row).replace("__AGE__", row.replace('"age":', '"age": "x", "age":'))

    reply = api.call("POST", "/predict", text)

    assert reply.status == 422, reply.body
    assert reply.json["error"] == "validation_failed"
    assert reply.json["details"] == expected


def test_a_repeated_key_is_found_when_colons_in_values_keep_the_quick_count_from_ruling_it_out(
    api: Api, rows: list[dict[str, Any]]
) -> None:
    rows[0]["region"] = "north:east"
    text = json.dumps({"instances": rows}).replace('"age":', '"age": 1, "age":', 1)

    reply = api.call("POST", "/predict", text)

    assert reply.status == 422, reply.body
    assert [(d["instance"], d["field"]) for d in reply.json["details"]] == [(0, "age")]


def test_a_repeated_key_beside_a_nan_is_refused_as_repeated(api: Api, rows: list[dict[str, Any]]) -> None:
    text = json.dumps({"instances": rows}).replace('"age":', '"age": NaN, "age":', 1)

    reply = api.call("POST", "/predict", text)

    assert reply.status == 422, reply.body
    assert [(d["instance"], d["field"], d["problem"][:12]) for d in reply.json["details"]] == [
        (0, "age", "repeated key")
    ]


def test_colons_in_values_alone_do_not_make_a_request_ambiguous(api: Api, rows: list[dict[str, Any]]) -> None:
    rows[0]["region"] = "north:east"

    assert api.predict(rows).status == 200


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
    api = make_api(InferenceSettings(model_dir=trained_bundle, max_instances=2))
    assert api.predict(rows[:2]).status == 200
    assert api.predict(rows[:3]).status == 422


@pytest.mark.parametrize(
    ("method", "path"), [("POST", "/predict"), ("GET", "/health"), ("GET", "/model"), ("GET", "/openapi.json")]
)
def test_without_a_model_every_route_returns_503_with_a_clear_message(
    make_api: MakeApi, rows: list[dict[str, Any]], method: str, path: str
) -> None:
    api = make_api(InferenceSettings())
    reply = api.call(method, path, json.dumps({"instances": rows}) if method == "POST" else None)
    assert reply.status == 503
    assert reply.json["error"] == "model_unavailable"
    assert "DRIFTLOOP_MODEL_DIR" in reply.json["message"]


def test_a_model_directory_that_does_not_exist_returns_503_saying_so(make_api: MakeApi, tmp_path: Path) -> None:
    reply = make_api(InferenceSettings(model_dir=tmp_path / "nowhere")).call("GET", "/health", content_type=None)
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

    api = make_api(InferenceSettings(model_dir=broken))

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


@pytest.mark.parametrize(
    ("path", "body"),
    [
        pytest.param("/predict", '{"instances": [], "\\ud800": 1}', id="predict key"),
        pytest.param("/predict", '{"instances": [{"region": "\\udc00"}]}', id="predict value"),
        pytest.param("/feedback", '{"prediction_id": "x", "\\ud800": 1}', id="feedback key"),
        pytest.param("/feedback", '{"prediction_id": "x", "label": "a\\ud800b"}', id="feedback value"),
    ],
)
def test_a_lone_surrogate_anywhere_in_the_body_returns_400_as_json(api: Api, path: str, body: str) -> None:
    # The JSON text carries the escape itself: a lone UTF-16 surrogate is not a character, so the body is malformed.
    assert "\\u" in body

    reply = api.call("POST", path, body)

    assert reply.status == 400, reply.body
    assert reply.headers["content-type"] == "application/json"
    assert reply.json["error"] == "malformed_json"
    assert "surrogate" in reply.json["message"]
    [request] = api.log_messages("request")
    assert (request["status"], request["ClientErrors"], request["ServerErrors"]) == (400, 1, 0)


def test_a_nan_is_still_explained_by_field_but_a_lone_surrogate_beside_it_makes_the_body_malformed(
    api: Api, rows: list[dict[str, Any]]
) -> None:
    rows[0]["age"] = "__NAN__"
    body = json.dumps({"instances": rows}).replace('"__NAN__"', "NaN")

    assert api.call("POST", "/predict", body).status == 422
    assert api.call("POST", "/predict", body.replace('"north"', '"\\ud800"', 1)).status == 400


def test_an_error_response_that_cannot_be_rendered_becomes_a_json_500_counted_in_server_errors(
    api: Api, rows: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(self: Problem) -> dict[str, Any]:
        raise RuntimeError("a problem that cannot be shown")

    monkeypatch.setattr(Problem, "to_dict", explode)
    rows[0]["age"] = "old"

    reply = api.predict(rows)

    assert reply.status == 500
    assert reply.headers["content-type"] == "application/json"
    assert reply.json["error"] == "internal_error"
    assert reply.json["correlation_id"] == reply.event["requestContext"]["requestId"]
    [failure] = api.log_messages("rendering an error response failed")
    assert "RuntimeError: a problem that cannot be shown" in failure["stack"]
    [request] = api.log_messages("request")
    assert (request["status"], request["ServerErrors"], request["error"]) == (500, 1, "internal_error")


def test_a_422_lists_the_first_20_problems_and_counts_the_others(api: Api, rows: list[dict[str, Any]]) -> None:
    # A 1 MiB body of unknown fields: listing each would make a ~10 MB answer, over Lambda's 6 MB response limit.
    unknown = {f"field_{index}": 1 for index in range(58_000)}
    body = json.dumps({"instances": rows[:1], **unknown})
    assert 1_000_000 < len(body) <= 1 << 20

    reply = api.call("POST", "/predict", body)

    assert reply.status == 422
    answer = reply.json
    assert details(reply) == [(None, f"field_{index}") for index in range(20)]
    assert answer["omitted"] == 58_000 - 20
    assert answer["message"] == (
        "the request has 58000 problems: see details (the first 20 are listed, 57980 more are not)"
    )
    assert len(reply.body) < 4096


def test_a_422_with_at_most_20_problems_lists_them_all_without_omitted(api: Api, rows: list[dict[str, Any]]) -> None:
    reply = api.call("POST", "/predict", json.dumps({"instances": rows[:1], **{f"f{i}": 1 for i in range(20)}}))
    assert len(reply.json["details"]) == 20
    assert "omitted" not in reply.json


LONG = "x" * 500_000


@pytest.mark.parametrize(
    ("method", "path", "body", "options"),
    [
        pytest.param("POST", "/predict", json.dumps({"instances": [{LONG: 1}]}), {}, id="unknown feature name"),
        pytest.param("POST", "/predict", json.dumps({"instances": [{}], LONG: 1}), {}, id="unknown field name"),
        pytest.param("POST", "/feedback", json.dumps({"prediction_id": "0" * 32, "label": LONG}), {}, id="label"),
        pytest.param("GET", "/" + LONG[:8000], None, {}, id="path"),
        pytest.param("POST", "/predict", "{}", {"content_type": "text/" + LONG[:8000]}, id="content type"),
        pytest.param("POST", "/predict", "{}", {"headers": {"Content-Encoding": LONG[:8000]}}, id="content encoding"),
    ],
)
def test_client_text_quoted_in_an_error_is_cut_so_the_answer_stays_small(
    api: Api, method: str, path: str, body: str | None, options: dict[str, Any]
) -> None:
    reply = api.call(method, path, body, **options)

    assert 400 <= reply.status < 500
    assert len(reply.body) < 2048, reply.body[:200]
    listed = reply.json.get("details", [])
    quoted = [reply.json["message"], *(d["field"] or "" for d in listed), *(d["problem"] for d in listed)]
    assert any("xxxxxxxx" in text for text in quoted), reply.body


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/predict/"),
        ("POST", "/feedback/"),
        ("GET", "/health/"),
        ("GET", "/model/"),
        ("GET", "/openapi.json/"),
    ],
)
def test_a_route_with_a_trailing_slash_is_a_json_404_not_a_redirect(api: Api, method: str, path: str) -> None:
    # A redirect would send the client to a URL without the API Gateway stage.
    reply = api.call(method, path, "{}" if method == "POST" else None)
    assert reply.status == 404
    assert "location" not in reply.headers
    assert reply.json["error"] == "not_found"


@pytest.mark.parametrize("encoding", ["gzip", "br", "deflate", "GZIP", "gzip, identity"])
@pytest.mark.parametrize("path", ["/predict", "/feedback"])
def test_a_compressed_body_returns_415_naming_the_encoding(api: Api, path: str, encoding: str) -> None:
    reply = api.call("POST", path, gzip.compress(b"{}"), headers={"Content-Encoding": encoding}, binary=True)
    assert reply.status == 415
    assert reply.json["error"] == "unsupported_media_type"
    assert reply.json["message"] == (
        f"the body must not be compressed: send it without Content-Encoding (got {encoding.lower()!r})"
    )


def test_an_identity_content_encoding_is_accepted(api: Api, rows: list[dict[str, Any]]) -> None:
    assert api.predict(rows, headers={"Content-Encoding": "identity"}).status == 200


def test_numeric_values_are_taken_up_to_the_float32_bound_the_openapi_document_declares(
    api: Api, rows: list[dict[str, Any]]
) -> None:
    document = api.call("GET", "/openapi.json", content_type=None).json
    age = document["components"]["schemas"]["Instance"]["properties"]["age"]
    bound = age["maximum"]
    assert (age["minimum"], bound) == (-3.4028234663852886e38, 3.4028234663852886e38)

    rows[0]["age"], rows[1]["age"] = bound, -bound
    assert api.predict(rows).status == 200

    rows[0]["age"] = math.nextafter(bound, math.inf)
    reply = api.predict(rows)
    assert reply.status == 422
    assert details(reply) == [(0, "age")]
