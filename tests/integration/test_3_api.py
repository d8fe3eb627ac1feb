"""The inference API through LocalStack's API Gateway (REST, Lambda proxy integration): predictions, every error
class, the describing routes, and feedback.

API Gateway answers a path or method the REST API does not define itself (403 ``Missing Authentication Token``,
as on AWS): the app's own 404 and 405 are reached by invoking the deployed function with an API Gateway event.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from functions.common.records import PREDICTION_ID_LENGTH
from functions.inference.id_keys import CURRENT, PREVIOUS, read_key
from functions.inference.schema import MISSING_FEATURE
from tests.inference.events import rest_event
from tests.integration.support import Answer, Api, Deployed, as_instances

pytestmark = pytest.mark.integration

ROUTES = {"/predict", "/feedback", "/health", "/model", "/openapi.json"}
HEX_ID = re.compile(rf"^[0-9a-f]{{{PREDICTION_ID_LENGTH}}}$")


@pytest.fixture(scope="module")
def instances() -> list[dict[str, Any]]:
    """Three customers as a client sends them: every feature, missing values as null, no target."""
    from training.synthetic import generate

    return as_instances(generate(3, seed=23))


def problems(answer: Answer) -> list[tuple[int | None, str | None, str]]:
    assert answer.status == 422, answer
    assert answer.json["error"] == "validation_failed", answer
    return [(item["instance"], item["field"], item["problem"]) for item in answer.json["details"]]


def test_predictions_come_from_the_served_champion_one_per_instance(
    deployed: Deployed, served_champion: str, instances: list[dict[str, Any]]
) -> None:
    answer = deployed.api.post("/predict", {"instances": instances})

    assert answer.status == 200, answer
    assert answer.headers["content-type"] == "application/json"
    body = answer.json
    assert body["model_version"] == served_champion
    predictions = body["predictions"]
    assert len(predictions) == len(instances)
    classes = deployed.api.get("/model").json["classes"]
    for prediction in predictions:
        assert HEX_ID.match(prediction["prediction_id"]), prediction
        assert prediction["label"] in classes
        assert sorted(prediction["probabilities"]) == sorted(classes)
        assert sum(prediction["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert len({p["prediction_id"] for p in predictions}) == len(predictions)


def test_null_is_a_missing_value_and_an_unknown_category_is_a_warning(
    deployed: Deployed, served_champion: str, instances: list[dict[str, Any]]
) -> None:
    unusual = {**instances[0], "age": None, "region": "atlantis"}

    answer = deployed.api.post("/predict", {"instances": [unusual]})

    assert answer.status == 200, answer
    (prediction,) = answer.json["predictions"]
    assert prediction["warnings"] == [
        {"field": "region", "problem": "unknown category 'atlantis': not seen in training, the model ignores it"}
    ]


def test_a_body_that_is_not_json_is_a_400(deployed: Deployed, served_champion: str) -> None:
    answer = deployed.api.call("POST", "/predict", b'{"instances": [')
    assert answer.status == 400, answer
    assert answer.json["error"] == "malformed_json"


def test_a_body_over_the_limit_is_a_413(deployed: Deployed, served_champion: str) -> None:
    limit = int(deployed.environment(deployed.deployment.inference_function)["DRIFTLOOP_MAX_BODY_BYTES"])
    answer = deployed.api.call("POST", "/predict", b" " * (limit + 1))
    assert answer.status == 413, answer
    assert answer.json["error"] == "body_too_large"


@pytest.mark.parametrize("content_type", ["text/plain", "application/json; charset=latin-1", None])
def test_a_body_that_is_not_utf8_json_is_a_415(
    deployed: Deployed, served_champion: str, content_type: str | None
) -> None:
    # urllib labels a body without a type application/x-www-form-urlencoded.
    answer = deployed.api.call("POST", "/predict", b"{}", content_type=content_type)
    assert answer.status == 415, answer
    assert answer.json["error"] == "unsupported_media_type"


def test_every_invalid_instance_and_field_is_listed_in_one_422(
    deployed: Deployed, served_champion: str, instances: list[dict[str, Any]]
) -> None:
    missing = {key: value for key, value in instances[0].items() if key != "age"}
    unknown = {**instances[1], "colour": "red"}
    wrong_type = {**instances[2], "tenure_months": "ten", "contract": 2}

    found = problems(deployed.api.post("/predict", {"instances": [missing, unknown, wrong_type, 7]}))

    assert found == [
        (0, "age", MISSING_FEATURE),
        (1, "colour", "unknown feature"),
        (2, "tenure_months", "expected a number, got string"),
        (2, "contract", "expected a string (a category), got number"),
        (3, None, "expected an object of features, got number"),
    ]


def test_nan_is_refused_with_the_instance_and_field_named(
    deployed: Deployed, served_champion: str, instances: list[dict[str, Any]]
) -> None:
    body = json.dumps({"instances": [instances[0], {**instances[1], "monthly_charges": float("nan")}]})
    assert "NaN" in body
    found = problems(deployed.api.call("POST", "/predict", body.encode()))
    assert found == [(1, "monthly_charges", "NaN is not a number: send null for a missing value")]


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"instances": []}, (None, "instances", "empty: send 1 to 1000 instances")),
        ({"instances": {}}, (None, "instances", "expected an array of instances, got object")),
        ({"rows": []}, (None, "rows", 'unknown field (the body holds only "instances")')),
        ([], (None, None, "expected an object, got array")),
    ],
    ids=["empty", "not-a-list", "no-instances", "not-an-object"],
)
def test_a_body_of_the_wrong_shape_is_a_422(
    deployed: Deployed, served_champion: str, document: Any, expected: tuple[int | None, str | None, str]
) -> None:
    assert expected in problems(deployed.api.post("/predict", document))


def test_more_instances_than_allowed_is_a_422(
    deployed: Deployed, served_champion: str, instances: list[dict[str, Any]]
) -> None:
    limit = int(deployed.environment(deployed.deployment.inference_function)["DRIFTLOOP_MAX_INSTANCES"])
    found = problems(deployed.api.post("/predict", {"instances": [instances[0]] * (limit + 1)}))
    assert found == [(None, "instances", f"{limit + 1} instances: at most {limit} per request")]


@pytest.mark.parametrize(("method", "path"), [("GET", "/predictions"), ("DELETE", "/predict"), ("POST", "/health")])
def test_api_gateway_refuses_a_route_or_method_the_api_does_not_define(
    deployed: Deployed, method: str, path: str
) -> None:
    answer = deployed.api.call(method, path, b"{}" if method == "POST" else None)
    assert answer.status == 403, answer
    assert answer.json == {"message": "Missing Authentication Token"}


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/predict"), ("POST", "/feedback"), ("GET", "/health"), ("GET", "/model"), ("GET", "/openapi.json")],
)
@pytest.mark.parametrize("key", [None, "not-a-clients-key"])
def test_every_route_refuses_a_request_without_a_clients_api_key(
    deployed: Deployed, served_champion: str, method: str, path: str, key: str | None
) -> None:
    # Without a client's key a request would count against no client's usage plan (LocalStack checks the key is
    # in a plan of the stage, as AWS does, but throttles no plan: tests/infra/test_serving_stack.py shows each
    # client's own limits).
    answer = Api(deployed.api.url, key).call(method, path, b"{}" if method == "POST" else None)
    assert answer.status == 403, answer
    assert answer.json["message"] == "Forbidden", answer


@pytest.mark.parametrize(
    ("method", "path", "status", "error"),
    [("GET", "/predictions", 404, "not_found"), ("GET", "/predict", 405, "method_not_allowed")],
)
def test_the_deployed_function_answers_an_unknown_route_404_and_a_wrong_method_405(
    deployed: Deployed, served_champion: str, method: str, path: str, status: int, error: str
) -> None:
    event = rest_event(method, path, stage="v1", content_type=None)
    payload, function_error = deployed.invoke(deployed.deployment.inference_function, event)
    assert function_error is None, payload
    assert payload["statusCode"] == status, payload
    assert json.loads(payload["body"])["error"] == error


def test_health_names_the_served_version(deployed: Deployed, served_champion: str) -> None:
    answer = deployed.api.get("/health")
    assert answer.status == 200, answer
    assert (answer.json["status"], answer.json["model_version"], answer.json["task"]) == (
        "ok", served_champion, "classification"
    )  # fmt: skip


def test_model_describes_the_champion_the_registry_holds(deployed: Deployed, served_champion: str) -> None:
    answer = deployed.api.get("/model")
    assert answer.status == 200, answer
    described = answer.json
    metadata = deployed.registry.get_metadata(served_champion)
    assert described["version"] == served_champion
    assert (described["task"], described["target"]) == ("classification", "churned")
    assert [f["name"] for f in described["features"]] == [f["name"] for f in metadata["features"]]
    assert described["classes"] == ["0", "1"]
    assert described["metrics"] == metadata["metrics"]


def test_the_openapi_document_describes_the_routes_and_the_champions_features(
    deployed: Deployed, served_champion: str
) -> None:
    answer = deployed.api.get("/openapi.json")
    assert answer.status == 200, answer
    document = answer.json
    assert document["openapi"] == "3.1.0"
    assert document["info"]["version"] == served_champion
    assert set(document["paths"]) == ROUTES
    features = [f["name"] for f in deployed.api.get("/model").json["features"]]
    instance = document["components"]["schemas"]["Instance"]
    assert list(instance["properties"]) == features
    assert instance["required"] == features


def test_feedback_for_served_predictions_is_accepted_with_202(
    deployed: Deployed, served_champion: str, instances: list[dict[str, Any]]
) -> None:
    ids = [p["prediction_id"] for p in deployed.api.predict(instances)["predictions"]]

    single = deployed.api.post("/feedback", {"prediction_id": ids[0], "label": "1"})
    batch = deployed.api.post("/feedback", {"feedback": [{"prediction_id": i, "label": "0"} for i in ids[1:]]})

    assert (single.status, single.json) == (202, {"accepted": 1}), single
    assert (batch.status, batch.json) == (202, {"accepted": len(ids) - 1}), batch


def test_invalid_feedback_is_a_422_listing_every_problem(
    deployed: Deployed, served_champion: str, instances: list[dict[str, Any]]
) -> None:
    served = deployed.api.predict(instances[:2])["predictions"]
    forged = served[0]["prediction_id"][:-1] + ("0" if served[0]["prediction_id"][-1] != "0" else "1")
    items = [
        {"prediction_id": forged, "label": "1"},
        {"prediction_id": served[0]["prediction_id"], "label": "2"},
        {"prediction_id": served[1]["prediction_id"], "label": 1, "note": "x"},
    ]

    found = problems(deployed.api.post("/feedback", {"feedback": items}))

    assert found == [
        (0, "prediction_id", "no prediction was served with this id (its MAC does not match)"),
        (1, "label", "unknown class '2': expected one of '0', '1'"),
        (2, "note", 'unknown field (an item holds "prediction_id" and "label")'),
        (2, "label", "expected a string, one of '0', '1'; got number"),
    ]


def test_the_id_key_rotates_through_its_function_and_ids_of_the_previous_key_stay_valid(
    deployed: Deployed, served_champion: str, instances: list[dict[str, Any]]
) -> None:
    secrets = deployed.client("secretsmanager")
    secret = deployed.environment(deployed.deployment.inference_function)["DRIFTLOOP_ID_KEY_SECRET"]
    rotation = deployed.function_named(f"{deployed.prefix}-serving", "PredictionIdKeysRotation")
    [prediction] = deployed.api.predict(instances[:1])["predictions"]
    before = read_key(secrets, secret, CURRENT)

    # LocalStack's RotationSchedule resource configures nothing: rotate as the schedule would, through the function.
    secrets.rotate_secret(SecretId=secret, RotationLambdaARN=rotation)

    after = read_key(secrets, secret, CURRENT)
    assert before is not None and after is not None and after.tag != before.tag
    assert read_key(secrets, secret, PREVIOUS) == before
    answer = deployed.api.post("/feedback", {"prediction_id": prediction["prediction_id"], "label": "1"})
    assert (answer.status, answer.json) == (202, {"accepted": 1}), answer
