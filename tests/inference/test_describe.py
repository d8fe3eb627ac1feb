"""/health, /model and /openapi.json describe the live model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from functions.common.bundle import read_metadata
from functions.inference.settings import InferenceSettings
from tests.inference.conftest import Api, MakeApi


def resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def test_health_reports_the_loaded_model(api: Api) -> None:
    reply = api.call("GET", "/health", content_type=None)
    assert reply.status == 200
    assert reply.json["status"] == "ok"
    assert reply.json["task"] == "classification"
    assert reply.json["model_version"].startswith("local-")


def test_model_describes_version_task_target_features_classes_and_metrics(api: Api, trained_bundle: Path) -> None:
    metadata = read_metadata(trained_bundle)

    reply = api.call("GET", "/model", content_type=None)

    assert reply.status == 200
    answer = reply.json
    assert answer["version"] == api.call("GET", "/health", content_type=None).json["model_version"]
    assert answer["task"] == "classification"
    assert answer["target"] == "churned"
    assert [f["name"] for f in answer["features"]] == list(metadata.feature_names)
    assert answer["classes"] == list(metadata.classes)
    assert answer["metrics"] == metadata.metrics
    assert answer["created_at"] == metadata.created_at
    assert "baseline" not in answer
    assert answer["card"] is None  # a bundle served from a directory has no registry, so no card


def test_openapi_document_describes_the_live_feature_schema(api: Api, trained_bundle: Path) -> None:
    metadata = read_metadata(trained_bundle)

    reply = api.call("GET", "/openapi.json", content_type=None)

    assert reply.status == 200
    document = reply.json
    assert document["openapi"] == "3.1.0"
    assert set(document["paths"]) == {"/predict", "/feedback", "/health", "/model", "/openapi.json"}
    operation = document["paths"]["/predict"]["post"]
    request = resolve(document, operation["requestBody"]["content"]["application/json"]["schema"])
    assert request["properties"]["instances"]["maxItems"] == 100
    instance = resolve(document, request["properties"]["instances"]["items"])
    assert instance["required"] == list(metadata.feature_names)
    assert instance["additionalProperties"] is False
    for feature in metadata.features:
        schema = instance["properties"][feature.name]
        if feature.type == "numeric":
            assert schema["anyOf"] == [{"type": ["number", "null"]}, {"enum": list(metadata.missing_tokens)}]
        else:
            assert schema["anyOf"][0] == {"enum": list(feature.categories)}
            assert {"type": "null"} in schema["anyOf"]
    assert {"200", "400", "413", "415", "422", "500", "503"} <= set(operation["responses"])
    error = resolve(document, operation["responses"]["422"])["content"]["application/json"]["schema"]
    assert "validation_failed" in resolve(document, error)["properties"]["error"]["enum"]
    prediction = resolve(document, document["components"]["schemas"]["Prediction"])
    assert prediction["properties"]["label"] == {"enum": list(metadata.classes)}
    assert "null" in document["info"]["description"]


def test_openapi_document_for_a_regressor_describes_values(make_api: MakeApi, regression_bundle: Path) -> None:
    document = (
        make_api(InferenceSettings(model_dir=regression_bundle)).call("GET", "/openapi.json", content_type=None).json
    )
    prediction = document["components"]["schemas"]["Prediction"]
    assert prediction["required"] == ["prediction_id", "value"]
