"""The execution state's shapes: each part parses from the state machine's JSON, names what is wrong, and writes
back the JSON the state machine, the integration tests and the CLI read."""

from __future__ import annotations

from typing import Any

import pytest

from functions.workflow.errors import WorkflowError
from functions.workflow.state import (
    APPROVAL_DENIED,
    Approval,
    ApprovalEvent,
    AssemblyPlan,
    AssemblyQuery,
    ExecutionInput,
    GuardResult,
    PrepareResult,
    PromotionResult,
    RegistrationResult,
    RunState,
    StepError,
    StepEvent,
)

VERSION = "v20260301-120000-abcdef"
ACQUIRED = {
    "acquired": True,
    "execution_id": "exec-a",
    "trigger": {"source": "alarm", "alarm_name": "drift"},
    "started_at": "2026-03-01T12:00:00+00:00",
    "version": VERSION,
    "decision_id": "d-1",
}
SKIPPED = {
    "acquired": False,
    "execution_id": "exec-b",
    "trigger": {"source": "schedule"},
    "reason": "cooldown",
    "decision_id": "d-2",
}
PREPARED = {
    "version": VERSION,
    "training_job_name": f"driftloop-dev-{VERSION}",
    "hyperparameters": {"target": "churned"},
    "input_data_config": [{"ChannelName": "train"}],
    "output_path": "s3://models/training-jobs/",
    "champion": {"version": "v20260201-120000-aaaaaa", "sha256": "ab" * 32},
    "trigger": {"source": "manual", "by": "make demo"},
}
REGISTERED = {
    "version": VERSION,
    "passed": True,
    "reasons": ["beats the champion"],
    "held": False,
    "job_verdict_differs": False,
    "metric": "roc_auc",
    "challenger": 0.91,
    "champion": 0.88,
    "champion_version": "v20260201-120000-aaaaaa",
    "decision_id": "d-3",
}
PLANNED = {
    "prefix": f"assembled/{VERSION}/",
    "uri": f"s3://data/assembled/{VERSION}/",
    "base_fingerprint": "ab" * 32,
    "counts": {"rows": {"base": 3, "feedback": 0}},
    "unload": "UNLOAD (SELECT 1) TO 's3://data/assembled/v/feedback/' WITH (format = 'PARQUET')",
    "feedback": {"now": "2026-03-01T12:00:00+00:00", "hours": ["2026-03-01-11"], "model_versions": ["v1"]},
}
BASE_ONLY = {key: PLANNED[key] for key in ("prefix", "uri", "base_fingerprint", "counts")}
PROMOTED = {"promoted": True, "version": VERSION, "previous_version": None, "decision_id": "d-4"}
SUPERSEDED = {
    "promoted": False,
    "superseded": True,
    "version": VERSION,
    "live_version": "v20260302-000000-bbbbbb",
    "reason": "champion changed during training",
    "decision_id": "d-5",
}


@pytest.mark.parametrize(
    ("kind", "raw"),
    [
        (GuardResult, ACQUIRED),
        (GuardResult, SKIPPED),
        (AssemblyPlan, PLANNED),
        # No UNLOAD planned: the key is absent, which is what the FeedbackQuery? choice tests.
        (AssemblyPlan, BASE_ONLY),
        (PrepareResult, PREPARED),
        (RegistrationResult, REGISTERED),
        (PromotionResult, PROMOTED),
        (PromotionResult, SUPERSEDED),
    ],
)
def test_a_step_result_writes_back_the_json_it_was_read_from_key_for_key_in_order(kind: Any, raw: Any) -> None:
    assert list(kind.parse(raw).to_json().items()) == list(raw.items())


def test_the_state_machine_paths_come_from_the_result_shapes() -> None:
    assert GuardResult.path() == "$.guard"
    assert GuardResult.path("acquired") == "$.guard.acquired"
    assert RegistrationResult.path("passed") == "$.registration.passed"
    assert PromotionResult.path("promoted") == "$.promotion.promoted"
    assert PrepareResult.path("training_job_name") == "$.prepare.training_job_name"
    assert StepError.path(StepError.CAUSE) == "$.error.Cause"
    assert AssemblyPlan.path("unload") == "$.assembly_plan.unload"
    assert AssemblyQuery.path() == "$.assembly_query"
    with pytest.raises(KeyError, match="GuardResult has no field 'acquire'"):
        GuardResult.path("acquire")


@pytest.mark.parametrize(
    ("state", "problem"),
    [
        ("[]", "$ must be an object, got '[]'"),
        ({"guard": {"acquired": True, "version": 5}}, "$.guard.version must be a string, got 5"),
        ({"guard": {"acquired": "yes"}}, "$.guard.acquired must be true or false, got 'yes'"),
        ({"prepare": "job"}, "$.prepare must be an object, got 'job'"),
        ({"prepare": {"hyperparameters": {"max_depth": 3}}}, "$.prepare.hyperparameters must be an object of strings"),
        ({"prepare": {"champion": {"version": "v"}}}, "$.prepare.champion.sha256 is missing"),
        ({"training": {"TrainingJobName": "job"}}, "$.training.ModelArtifacts must be an object, got None"),
        ({"registration": {"passed": True}}, "$.registration.version is missing"),
        ({"registration": {"version": VERSION, "passed": True, "challenger": "high"}}, "challenger must be a number"),
        ({"registration": {"version": VERSION, "passed": True, "reasons": [1]}}, "reasons must be a list of strings"),
        ({"promotion": {"version": VERSION}}, "$.promotion.promoted is missing"),
        ({"assembly": {"object_count": True}}, "$.assembly.object_count must be an integer, got True"),
        ({"assembly_plan": {"prefix": "assembled/v/"}}, "$.assembly_plan.uri is missing"),
        ({"assembly_query": {"DataScannedInBytes": 5}}, "$.assembly_query.QueryExecutionId is missing"),
        ({"error": {"Error": 3}}, "$.error.Error must be a string, got 3"),
    ],
)
def test_a_malformed_state_is_refused_naming_the_path_at_fault(state: Any, problem: str) -> None:
    with pytest.raises(WorkflowError) as raised:
        RunState.parse(state)
    assert problem in str(raised.value)


@pytest.mark.parametrize(
    ("execution_input", "problem"),
    [
        ({"hyperparameters": [1]}, "execution input 'hyperparameters' must be an object of strings or numbers"),
        ({"hyperparameters": {"max_depth": True}}, "execution input hyperparameter 'max_depth' must be a string or"),
        ({"trigger": "alarm"}, "execution input 'trigger' must be an object with a 'source'"),
    ],
)
def test_a_malformed_execution_input_is_refused_when_a_step_reads_it(
    execution_input: dict[str, Any], problem: str
) -> None:
    state = RunState.parse(execution_input)  # RecordFailure still reads such a state

    with pytest.raises(WorkflowError) as raised:
        state.execution_input()
    assert problem in str(raised.value)


def test_a_run_without_guards_version_is_refused_by_the_step_that_needs_it() -> None:
    with pytest.raises(WorkflowError, match=r"no version in the state \(\$\.guard\.version\)"):
        RunState.parse({"guard": {"acquired": False}}).version()


def test_the_trigger_is_guards_copy_once_guard_ran_else_the_execution_inputs() -> None:
    assert RunState.parse({"trigger": {"source": "schedule"}}).trigger().source == "schedule"
    state = RunState.parse({"trigger": {"source": "schedule"}, "guard": ACQUIRED})
    assert state.trigger().to_json() == ACQUIRED["trigger"]
    assert ExecutionInput.parse({}).trigger.source == "manual"


def test_the_approval_is_the_operators_answer_or_the_error_the_catch_put_there() -> None:
    answer = {"approved": True, "note": "looks good", "proof": "https://sts.us-east-1.amazonaws.com/?Action=..."}
    assert Approval(answer).approved and Approval(answer).error is None
    denied = Approval({"Error": APPROVAL_DENIED, "Cause": "too small"})
    assert not denied.approved and denied.error == StepError(APPROVAL_DENIED, "too small")
    assert not Approval("yes").approved and Approval("yes").error is None


def test_the_context_payloads_are_what_the_events_parse() -> None:
    payload = StepEvent.payload("exec-a", {"guard": ACQUIRED}, "2026-03-01T12:00:00Z")
    event = StepEvent.parse(payload)
    assert event.execution_id == "exec-a" and event.state.guard == GuardResult.parse(ACQUIRED)
    assert event.started_at is not None and event.started_at.isoformat() == "2026-03-01T12:00:00+00:00"
    assert StepEvent.parse(StepEvent.payload("exec-a", None)).state.guard is None
    with pytest.raises(WorkflowError, match=r"Release needs the execution id \(\$\$\.Execution\.Id\)"):
        StepEvent.parse({"state": {}}).require_execution("Release")
    assert ApprovalEvent.parse(ApprovalEvent.payload("token-1", {})).token == "token-1"
