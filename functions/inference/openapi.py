"""The OpenAPI 3.1 document of the API, generated from the live model's feature schema."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from functions.common.bundle import MISSING_CATEGORY, Feature
from functions.common.records import PREDICTION_ID_LENGTH
from functions.inference.errors import INTERNAL_ERROR, MAX_DETAILS, STATUS_CODES
from functions.inference.model import Model
from functions.inference.schema import FLOAT32_MAX

ID_PATTERN = f"^[0-9a-f]{{{PREDICTION_ID_LENGTH}}}$"
DESCRIPTION = """\
Predictions from the registry's champion model. Request rules:

- `instances` holds 1 to {max_instances} objects; each has every feature and no other key.
- A missing key is an error; an explicit `null` is a missing value, which the model was trained to handle, and
  so is a string equal to one of the texts the model was trained to read as missing, for any feature: {tokens}.
- Numeric features take JSON numbers only: not booleans, not numeric strings, not NaN or Infinity, and within
  the model's 32-bit float range (magnitude at most {float32_max}).
- Boolean features take JSON `true` or `false` only (not 0/1, not strings).
- Categorical features take strings only (numbers are refused). A category not seen in training is accepted
  (the model ignores it) and reported in that prediction's `warnings`.
- The body is JSON (`Content-Type: application/json`, UTF-8, not compressed) of at most {max_body_bytes} bytes,
  with no key repeated in any object (a repeated key is a 422 naming it, for `/feedback` too).

Every problem of a request is counted in one 422 response (the first {max_details} are listed in `details`).
Each prediction has a `prediction_id` to quote when reporting the true outcome later.

Feedback (`POST /feedback`): one item `{{"prediction_id": ..., "{answer}": ...}}` or a batch
`{{"feedback": [...]}}` of 1 to {max_instances} items. The id must be one this API served within the last
{max_age_days} days; {answer_rule} Every problem is counted in one 422; a 202 means the feedback is recorded, a
503 `feedback_unavailable` that it is not and the same request should be sent again.
"""

ANSWER_RULES = {
    "classification": "`label` is the true class, one of the model's classes, as a string.",
    "regression": "`value` is the true value, a finite number.",
}

ERROR_RESPONSES = {
    400: "The body is not valid JSON (a lone UTF-16 surrogate escape such as `\\ud800` included) or not UTF-8 (the "
    "message names the byte offset).",
    404: "No such route.",
    405: "The route does not accept this method.",
    413: "The body is too large.",
    415: "The body is not declared as JSON (`application/json`, optionally with `charset=utf-8`), or is compressed "
    "(any `Content-Encoding` but `identity`).",
    422: "The request does not match the model's schema, or repeats a key in an object (which one counts would be "
    "ambiguous): `details` lists the problems (the first "
    f"{MAX_DETAILS}; `omitted` counts the others).",
    500: "The service failed unexpectedly: quote `correlation_id` when reporting it.",
    503: "No model is available (none configured, no champion yet, or the champion could not be loaded), or "
    "(`/feedback`) the feedback could not be recorded: send it again.",
}


def document(model: Model, max_instances: int, max_body_bytes: int, feedback_max_age_days: int) -> dict[str, Any]:
    metadata = model.metadata
    answer = "label" if model.task == "classification" else "value"
    description = DESCRIPTION.format(
        max_instances=max_instances,
        max_body_bytes=max_body_bytes,
        answer=answer,
        answer_rule=ANSWER_RULES[model.task],
        max_age_days=feedback_max_age_days,
        float32_max=FLOAT32_MAX,
        max_details=MAX_DETAILS,
        tokens=", ".join(json.dumps(token) for token in metadata.missing_tokens),
    )
    return {
        "openapi": "3.1.0",
        "info": {"title": "driftloop inference API", "version": model.version, "description": description},
        "paths": {
            "/predict": {
                "post": {
                    "operationId": "predict",
                    "summary": f"Predict {metadata.target} for 1 to {max_instances} instances",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("PredictRequest")}},
                    },
                    "responses": {
                        "200": _ok("The predictions, in the order of the instances.", "PredictResponse")
                        | {"links": {"feedback": _feedback_link(answer)}},
                        **_errors(400, 413, 415, 422, 500, 503),
                    },
                }
            },
            "/feedback": {
                "post": {
                    "operationId": "feedback",
                    "summary": f"Report the true {metadata.target} of 1 to {max_instances} served predictions",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"oneOf": [_ref("FeedbackItem"), _ref("FeedbackBatch")]}}
                        },
                    },
                    "responses": {
                        "202": _ok("The feedback is recorded.", "FeedbackAccepted"),
                        **_errors(400, 413, 415, 422, 500, 503),
                    },
                }
            },
            "/health": {"get": _get("health", "Whether a model is loaded, and which", "Health")},
            "/model": {"get": _get("describeModel", "The served model's schema, metrics and model card", "ModelInfo")},
            "/openapi.json": {"get": _get("openapi", "This document", None)},
        },
        "components": {
            "schemas": {
                "PredictRequest": {
                    "type": "object",
                    "properties": {
                        "instances": {
                            "type": "array",
                            "items": _ref("Instance"),
                            "minItems": 1,
                            "maxItems": max_instances,
                        }
                    },
                    "required": ["instances"],
                    "additionalProperties": False,
                },
                "Instance": {
                    "type": "object",
                    "description": "One row: every feature and no other key; null is a missing value.",
                    "properties": {
                        feature.name: _feature(feature, metadata.missing_tokens) for feature in metadata.features
                    },
                    "required": list(metadata.feature_names),
                    "additionalProperties": False,
                },
                "PredictResponse": {
                    "type": "object",
                    "properties": {
                        "model_version": {"type": "string"},
                        "predictions": {"type": "array", "items": _ref("Prediction")},
                    },
                    "required": ["model_version", "predictions"],
                },
                "Prediction": _prediction(model),
                "FeedbackItem": _feedback_item(model, answer),
                "FeedbackBatch": {
                    "type": "object",
                    "properties": {
                        "feedback": {
                            "type": "array",
                            "items": _ref("FeedbackItem"),
                            "minItems": 1,
                            "maxItems": max_instances,
                        }
                    },
                    "required": ["feedback"],
                    "additionalProperties": False,
                },
                "FeedbackAccepted": {
                    "type": "object",
                    "properties": {"accepted": {"type": "integer", "minimum": 1}},
                    "required": ["accepted"],
                },
                "Warning": {
                    "type": "object",
                    "properties": {"field": {"type": "string"}, "problem": {"type": "string"}},
                    "required": ["field", "problem"],
                },
                "Error": {
                    "type": "object",
                    "properties": {
                        "error": {"enum": sorted({c.error for c in STATUS_CODES} | {INTERNAL_ERROR})},
                        "message": {"type": "string"},
                        "details": {"type": "array", "items": _ref("Problem"), "maxItems": MAX_DETAILS},
                        "omitted": {
                            "type": "integer",
                            "minimum": 1,
                            "description": "problems not listed in details (present only when there are some)",
                        },
                        "correlation_id": {"type": "string", "description": "500 only: the id of the logged failure."},
                    },
                    "required": ["error", "message"],
                },
                "Problem": {
                    "type": "object",
                    "properties": {
                        "instance": {
                            "type": ["integer", "null"],
                            "description": "index in instances (or feedback); null: the body",
                        },
                        "field": {"type": ["string", "null"]},
                        "problem": {"type": "string"},
                    },
                    "required": ["instance", "field", "problem"],
                },
                "Health": {
                    "type": "object",
                    "properties": {
                        "status": {"const": "ok"},
                        "model_version": {"type": "string"},
                        "task": {"enum": ["classification", "regression"]},
                        "loaded_at": {"type": "string", "format": "date-time"},
                    },
                    "required": ["status", "model_version", "task", "loaded_at"],
                },
                "ModelInfo": {
                    "type": "object",
                    "properties": {
                        "version": {"type": "string"},
                        "task": {"enum": ["classification", "regression"]},
                        "target": {"type": "string"},
                        "algorithm": {"type": "string"},
                        "features": {"type": "array", "items": {"type": "object"}},
                        "classes": {"type": "array", "items": {"type": "string"}},
                        "primary_metric": {"type": "string"},
                        "metrics": {"type": "object", "additionalProperties": {"type": "number"}},
                        "created_at": {"type": "string", "format": "date-time"},
                        "loaded_at": {"type": "string", "format": "date-time"},
                        "card": {
                            "type": ["object", "null"],
                            "description": "The version's model card (data, features, metrics per class and slice, "
                            "importances, warnings, limits, lineage); null when it has none (registered before "
                            "model cards, or served from a directory) or it could not be read (logged).",
                        },
                    },
                },
            },
            "responses": {
                str(status): {"description": text, "content": {"application/json": {"schema": _ref("Error")}}}
                for status, text in ERROR_RESPONSES.items()
            },
        },
    }


def _feature(feature: Feature, missing_tokens: Sequence[str]) -> dict[str, Any]:
    if feature.type == "numeric":
        observed = ""
        if feature.minimum is not None and feature.maximum is not None:
            observed = f" Seen in training: {feature.minimum:g} to {feature.maximum:g} (not enforced)."
        return {
            "anyOf": [{"type": ["number", "null"]}, {"enum": list(missing_tokens)}],
            # The model's input is float32: a larger magnitude is refused (422), not rounded to infinity. (The bounds
            # constrain numbers only.)
            "minimum": -FLOAT32_MAX,
            "maximum": FLOAT32_MAX,
            "description": f"Numeric; null (or a missing token) when missing.{observed}",
        }
    if feature.type == "boolean":
        return {
            "anyOf": [{"type": ["boolean", "null"]}, {"enum": list(missing_tokens)}],
            "description": "Boolean; null (or a missing token) when missing.",
        }
    known = [category for category in feature.categories if category != MISSING_CATEGORY]
    return {
        "description": "Categorical; null (or a missing token) when missing. Known categories are listed; any other "
        "string is accepted and reported as a warning.",
        "anyOf": [{"enum": known}, {"type": "string"}, {"type": "null"}],
    }


def _prediction(model: Model) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "prediction_id": {"type": "string", "pattern": ID_PATTERN, "description": "quote it with the outcome"},
        "warnings": {"type": "array", "items": _ref("Warning"), "description": "present only when there are some"},
    }
    classes = list(model.metadata.classes)
    if model.task == "classification":
        properties["label"] = {"enum": classes}
        properties["probabilities"] = {
            "type": "object",
            "properties": {name: {"type": "number", "minimum": 0, "maximum": 1} for name in classes},
            "required": classes,
            "additionalProperties": False,
        }
        required = ["prediction_id", "label", "probabilities"]
    else:
        properties["value"] = {
            "type": ["number", "null"],
            "description": "null when the model's output is not a finite number (a warning says so)",
        }
        required = ["prediction_id", "value"]
    return {"type": "object", "properties": properties, "required": required}


def _feedback_item(model: Model, answer: str) -> dict[str, Any]:
    truth: dict[str, Any]
    if model.task == "classification":
        truth = {"enum": list(model.metadata.classes), "description": "the true class"}
    else:
        truth = {"type": "number", "description": "the true value (finite)"}
    return {
        "type": "object",
        "properties": {
            "prediction_id": {"type": "string", "pattern": ID_PATTERN, "description": "as /predict served it"},
            answer: truth,
        },
        "required": ["prediction_id", answer],
        "additionalProperties": False,
    }


def _get(operation: str, summary: str, schema: str | None) -> dict[str, Any]:
    content = {"application/json": {"schema": _ref(schema) if schema else {"type": "object"}}}
    return {
        "operationId": operation,
        "summary": summary,
        "responses": {"200": {"description": summary, "content": content}, **_errors(500, 503)},
    }


def _feedback_link(answer: str) -> dict[str, Any]:
    """The first prediction's feedback, its served answer taken as the truth: a client's next step."""
    first = "$response.body#/predictions/0"
    return {
        "operationId": "feedback",
        "description": "Report the true outcome of the first prediction",
        "requestBody": {"prediction_id": f"{first}/prediction_id", answer: f"{first}/{answer}"},
    }


def _ok(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(status): {"$ref": f"#/components/responses/{status}"} for status in statuses}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}
