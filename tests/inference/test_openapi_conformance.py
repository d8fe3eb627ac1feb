"""Schemathesis over /openapi.json: the API, in process (ASGI) with a real bundle, does what its document says.

Deterministic (derandomized, no example database) and bounded. Every phase the document can drive runs: its
examples, the coverage phase (boundary values, each constraint broken on purpose, missing and unexpected
headers, methods the routes do not declare), fuzzing in both modes, and the stateful phase, which follows the
document's link from a prediction to its feedback. Positive cases follow the document: they must be accepted
(except feedback, whose ids must also pass a checksum and be recent, which a JSON schema cannot say). Negative
cases break it: they must be refused with a 4xx. Every answer must be a declared status with a declared content
type, headers and body, and never a 5xx; a 405 must list the route's methods.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
import schemathesis
from hypothesis import settings
from schemathesis.checks import (
    allow_header_conformance,
    content_type_conformance,
    missing_required_header,
    negative_data_rejection,
    not_a_server_error,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)
from schemathesis.core.result import Ok
from schemathesis.generation.case import Case
from schemathesis.generation.hypothesis.builder import HypothesisTestConfig, HypothesisTestMode, create_test
from schemathesis.generation.modes import GenerationMode
from schemathesis.schemas import BaseSchema

from functions.inference.api import FEEDBACK_PATH, create_app
from functions.inference.settings import InferenceSettings
from functions.inference.telemetry import Telemetry
from tests.inference.conftest import RecordingSink

# Every check the document gives something to hold against. Left out: those of resources that can be deleted
# (use_after_free, ensure_resource_availability) and of declared security schemes (ignored_auth,
# object_level_authorization): the document declares neither (authentication is API Gateway's).
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    missing_required_header,
    unsupported_method,
    allow_header_conformance,
]
SETTINGS = settings(max_examples=100, derandomize=True, database=None, deadline=None)


@pytest.fixture(params=["trained_bundle", "regression_bundle"])
def api_schema(request: pytest.FixtureRequest) -> BaseSchema:
    app = create_app(
        InferenceSettings(model_dir=request.getfixturevalue(request.param)),
        sink=RecordingSink(),
        feedback=RecordingSink(),
        telemetry=Telemetry("driftloop-test", io.StringIO()),
    )
    loaded = schemathesis.openapi.from_asgi("/openapi.json", app)
    loaded.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
    return loaded


def checks_for(case: Case[Any]) -> list[Any]:
    if case.operation.path == FEEDBACK_PATH:
        return CHECKS
    return [*CHECKS, positive_data_acceptance]


def answers_as_documented(case: Case[Any]) -> None:
    case.call_and_validate(checks=checks_for(case))


def test_every_operation_answers_as_the_openapi_document_says(api_schema: BaseSchema) -> None:
    tested = []
    for result in api_schema.get_all_operations():
        assert isinstance(result, Ok), result
        operation = result.ok()
        # The examples, coverage and fuzzing phases, as Schemathesis's own pytest plugin builds them.
        config = HypothesisTestConfig(project=api_schema.config, modes=list(HypothesisTestMode), settings=SETTINGS)
        create_test(operation=operation, test_func=answers_as_documented, config=config)()
        tested.append(operation.label)

    # Schemathesis leaves out the document's own path.
    assert set(tested) == {"POST /predict", "POST /feedback", "GET /health", "GET /model"}


def test_a_prediction_and_its_feedback_answer_as_the_documents_link_says(api_schema: BaseSchema) -> None:
    machine = api_schema.as_state_machine()

    class Conformance(machine):  # type: ignore[misc,valid-type]
        def validate_response(
            self, response: Any, case: Case[Any], additional_checks: Any = None, **kwargs: Any
        ) -> None:
            case.validate_response(response, checks=checks_for(case))

    Conformance.run(settings=settings(SETTINGS, max_examples=30, stateful_step_count=4))
