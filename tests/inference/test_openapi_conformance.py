"""Schemathesis over /openapi.json: the API, in process (ASGI) with a real bundle, does what its document says.

Deterministic (derandomized, no example database) and bounded (100 examples per operation and mode). Positive
cases follow the document: they must be accepted (except feedback, whose ids must also pass a checksum and be
recent, which a JSON schema cannot say). Negative cases break it: they must be refused with a 4xx. Every answer
must be a declared status with a declared content type and body, and never a 5xx.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
import schemathesis
from hypothesis import given, settings
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.result import Ok
from schemathesis.generation.case import Case
from schemathesis.generation.modes import GenerationMode
from schemathesis.schemas import APIOperation

from functions.inference.api import FEEDBACK_PATH, create_app
from functions.inference.settings import InferenceSettings
from functions.inference.telemetry import Telemetry
from tests.inference.conftest import RecordingSink

ALWAYS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("bundle", ["trained_bundle", "regression_bundle"])
def test_every_operation_answers_as_the_openapi_document_says(
    bundle: str, mode: GenerationMode, request: pytest.FixtureRequest
) -> None:
    app = create_app(
        InferenceSettings(model_dir=request.getfixturevalue(bundle)),
        sink=RecordingSink(),
        feedback=RecordingSink(),
        telemetry=Telemetry("driftloop-test", io.StringIO()),
    )
    tested = []
    for result in schemathesis.openapi.from_asgi("/openapi.json", app).get_all_operations():
        assert isinstance(result, Ok), result
        operation = result.ok()
        if mode is GenerationMode.NEGATIVE and not operation.body:
            continue  # nothing to break in a request without parameters or body
        fuzz(operation, mode)
        tested.append(operation.label)

    # Schemathesis leaves out the document's own path.
    expected = {"POST /predict", "POST /feedback"}
    if mode is GenerationMode.POSITIVE:
        expected |= {"GET /health", "GET /model"}
    assert set(tested) == expected


def fuzz(operation: APIOperation[Any, Any, Any, Any], mode: GenerationMode) -> None:
    if mode is GenerationMode.NEGATIVE:
        checks = [*ALWAYS, negative_data_rejection]
    elif operation.path == FEEDBACK_PATH:
        checks = ALWAYS
    else:
        checks = [*ALWAYS, positive_data_acceptance]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=100, derandomize=True, database=None, deadline=None)
    def answers_as_documented(case: Case[Any]) -> None:
        case.call_and_validate(checks=checks)

    answers_as_documented()
