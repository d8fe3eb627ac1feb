"""The training workflow's paths, through real executions of the deployed state machine.

The tests share the registry and the run lock, so they run in this file's order on purpose: a first champion,
a challenger the gate rejects, invalid data, an input overriding a pinned gate setting, a job the training
program refuses, two executions at once, and the cooldown. Each waits until no other execution runs before it
starts its own, and reads the champion it compares with when it starts. Two runs promote (the first one and the
lock holder of the one-at-a-time test, trained on the same data: a gain of 0 passes ``min_improvement`` 0, and
scored on the same rows the champion never saw), which the rollback tests use.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from functions.common.layout import holdout_evaluation_key
from infra.constructs.training_workflow import FAILED_ERROR
from tests.integration.conftest import Notifications
from tests.integration.support import Deployed, Execution
from tests.plugins.local_cloud import unique

pytestmark = pytest.mark.integration

INVALID_DATA_KEY = "training-data/zz-invalid.csv"
# retraining.include_feedback is on: Athena's UNLOAD writes the feedback rows (none before any feedback).
SUCCESS_PATH = [
    "Guard", "Acquired?", "Assemble", "FeedbackQuery?", "AssembleFeedback", "HoldOut", "FinishAssembly", "Prepare",
    "Train", "Evaluate", "Register", "GatePassed?", "Promote", "Release", "Outcome", "Promoted",
]  # fmt: skip
REJECTION_PATH = [*SUCCESS_PATH[: SUCCESS_PATH.index("Promote")], "Reject", "Release", "Outcome", "Rejected"]
FAILURE_PATH = ["RecordFailure", "ReleaseAfterFailure", "NotifyFailure", "TrainingFailed"]
SKIPPED_PATH = ["Guard", "Acquired?", "Skipped"]


def trigger(reason: str) -> dict[str, Any]:
    return {"source": "manual", "reason": reason}


def actions(deployed: Deployed, run: Execution) -> list[str]:
    return [decision.action for decision in deployed.decisions_of(run.arn)]


def failure_reason(deployed: Deployed, job_name: str) -> str:
    job = deployed.client("sagemaker").describe_training_job(TrainingJobName=job_name)
    assert job["TrainingJobStatus"] == "Failed", job
    return str(job["FailureReason"])


def test_a_run_trains_registers_and_promotes_the_challenger_with_its_trigger(deployed: Deployed) -> None:
    deployed.wait_until_idle()
    before = deployed.champion()
    why = trigger("integration: the first champion")

    run = deployed.run("it-promote", {"trigger": why})

    assert run.status == "SUCCEEDED", run
    assert run.states == SUCCESS_PATH
    version = run.output["guard"]["version"]
    champion = deployed.champion()
    assert champion is not None
    assert champion.version == version == run.output["promotion"]["version"]
    assert champion.previous_version == (before.version if before else None)
    decisions = deployed.decisions_of(run.arn)
    assert [d.action for d in decisions] == ["triggered", "registered", "promoted"]
    assert all(d.version == version for d in decisions)
    assert decisions[0].details["trigger"] == why
    assert decisions[0].reasons == ("run started by trigger manual (integration: the first champion)",)
    assert champion.decision_id == decisions[2].id
    record = deployed.registry.get_version(version)
    assert record.lineage["trigger"] == why
    assert record.lineage["execution"] == run.arn
    assert record.lineage["data"]["fingerprint"] == run.output["assembly"]["fingerprint"]
    assert record.evaluation is not None and record.evaluation["passed"] is True
    assert record.sha256 == champion.sha256
    # SageMaker's model registry mirrors the version: a package of the deployment's group, approved.
    package = deployed.model_package(version)
    assert package["ModelPackageGroupName"] == deployed.prefix
    assert package["ModelApprovalStatus"] == "Approved"
    assert package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"].endswith(
        "/" + holdout_evaluation_key("", version)
    )
    lock = deployed.run_lock()
    assert (lock["state"], lock["execution"], lock["outcome"], lock["version"]) == (
        "released", run.arn, "promoted", version
    )  # fmt: skip


def test_a_challenger_below_the_gate_is_rejected_and_the_champion_stays(deployed: Deployed) -> None:
    deployed.wait_until_idle()
    before = deployed.champion()
    assert before is not None, "the previous test promotes a champion"

    # A one-stump forest (the algorithm and its knobs are all an execution may override) cannot match the
    # champion's boosted trees on the rows the champion never saw.
    weak = {"algorithm": "random_forest", "n_estimators": "1", "max_depth": "1"}
    run = deployed.run("it-reject", {"trigger": trigger("integration: gate"), "hyperparameters": weak})

    assert run.status == "SUCCEEDED", run
    assert run.states == REJECTION_PATH
    after = deployed.champion()
    assert after is not None
    assert (after.version, after.decision_id, after.sha256) == (before.version, before.decision_id, before.sha256)
    version = run.output["guard"]["version"]
    decisions = deployed.decisions_of(run.arn)
    assert [d.action for d in decisions] == ["triggered", "registered", "rejected"]
    rejected = decisions[-1]
    assert rejected.version == version
    assert any("exceeds max_trusted_regression 0" in reason for reason in rejected.reasons), rejected.reasons
    record = deployed.registry.get_version(version)
    assert record.evaluation is not None and record.evaluation["passed"] is False
    assert record.evaluation["champion_version"] == before.version
    assert deployed.model_package(version)["ModelApprovalStatus"] == "Rejected"
    assert rejected.details["model_package"]["status"] == "Rejected"
    lock = deployed.run_lock()
    assert (lock["state"], lock["execution"], lock["outcome"]) == ("released", run.arn, "rejected")


@pytest.fixture(scope="module")
def invalid_data_run(deployed: Deployed, failure_notifications: Notifications) -> Execution:
    """One run on training data with a non-numeric value in a numeric column (removed again afterwards)."""
    from training.synthetic import generate

    deployed.wait_until_idle()
    frame = generate(60, seed=5)
    frame["age"] = frame["age"].astype(object)
    frame.loc[7, "age"] = "forty"
    deployed.put_csv(INVALID_DATA_KEY, frame.to_csv(index=False))
    try:
        return deployed.run("it-invalid-data", {"trigger": trigger("integration: invalid data")})
    finally:
        deployed.delete(INVALID_DATA_KEY)


def test_invalid_training_data_fails_the_run_with_the_programs_validation_reason(
    deployed: Deployed, invalid_data_run: Execution, failure_notifications: Notifications
) -> None:
    run = invalid_data_run
    assert run.status == "FAILED", run
    assert run.states[: run.states.index("Train") + 1] == SUCCESS_PATH[: SUCCESS_PATH.index("Train") + 1]
    assert run.states[-4:] == FAILURE_PATH
    assert "Register" not in run.states
    decisions = deployed.decisions_of(run.arn)
    assert [d.action for d in decisions] == ["triggered", "failed"]
    failed = decisions[-1]
    reason = failure_reason(deployed, failed.details["training_job_name"])
    assert reason == (
        "AlgorithmError: training data validation failed: numeric column 'age' has 1 non-numeric value(s), "
        "e.g. 'forty' (fix the data, or declare the column in categorical_features), exit code: 1"
    )
    assert failed.reasons == (f"States.TaskFailed: {reason}",)
    assert failed.details["trigger"] == trigger("integration: invalid data")
    lock = deployed.run_lock()
    assert (lock["state"], lock["execution"], lock["outcome"]) == ("released", run.arn, "failed")
    notification = failure_notifications.about(run.arn)
    assert notification["error"] == "States.TaskFailed"
    assert json.loads(notification["cause"])["FailureReason"] == reason


def test_a_failed_run_ends_with_the_error_of_the_step_that_failed_in_its_cause(invalid_data_run: Execution) -> None:
    # TrainingFailed reports $.error, which RecordFailure and the lock release leave as the Train state set it.
    assert invalid_data_run.states[-1] == "TrainingFailed"
    assert invalid_data_run.error == FAILED_ERROR, (invalid_data_run.error, invalid_data_run.cause)
    error, _, cause = (invalid_data_run.cause or "").partition(": ")
    assert error == "States.TaskFailed"
    assert json.loads(cause).get("TrainingJobStatus") == "Failed"


def test_an_execution_input_that_overrides_a_pinned_gate_setting_fails_at_guard_and_is_recorded(
    deployed: Deployed,
) -> None:
    deployed.wait_until_idle()
    before = deployed.champion()

    run = deployed.run(
        "it-pinned", {"trigger": trigger("integration: pinned"), "hyperparameters": {"min_improvement": "-1"}}
    )

    assert run.status == "FAILED", run
    assert run.states == ["Guard", *FAILURE_PATH]
    [failed] = deployed.decisions_of(run.arn)
    assert failed.action == "failed"
    assert "may not set 'min_improvement' (pinned by the deployed configuration)" in failed.reasons[0]
    assert deployed.champion() == before
    assert deployed.run_lock()["execution"] != run.arn


def test_a_job_the_training_program_refuses_fails_with_its_reason_not_a_data_problem(
    deployed: Deployed, failure_notifications: Notifications
) -> None:
    deployed.wait_until_idle()
    before = deployed.champion()

    run = deployed.run(
        "it-refused", {"trigger": trigger("integration: bad knob"), "hyperparameters": {"n_estimators": "0"}}
    )

    assert run.status == "FAILED", run
    assert run.states[-4:] == FAILURE_PATH
    assert "Register" not in run.states
    decisions = deployed.decisions_of(run.arn)
    assert [d.action for d in decisions] == ["triggered", "failed"]
    reason = failure_reason(deployed, decisions[-1].details["training_job_name"])
    assert reason.startswith("AlgorithmError: invalid hyperparameters: hyperparameter 'n_estimators'='0' must be an ")
    assert reason.endswith(", exit code: 1")
    assert "validation" not in reason
    assert decisions[-1].reasons == (f"States.TaskFailed: {reason}",)
    assert deployed.champion() == before
    lock = deployed.run_lock()
    assert (lock["state"], lock["execution"], lock["outcome"]) == ("released", run.arn, "failed")
    assert failure_notifications.about(run.arn)["error"] == "States.TaskFailed"


def test_of_two_executions_started_back_to_back_one_runs_and_the_other_is_skipped_naming_it(
    deployed: Deployed,
) -> None:
    deployed.wait_until_idle()
    first = deployed.start(unique("it-first"), {"trigger": trigger("integration: first of two")})
    second = deployed.start(unique("it-second"), {"trigger": trigger("integration: second of two")})

    runs = {arn: deployed.finished(arn) for arn in (first, second)}

    assert all(run.status == "SUCCEEDED" for run in runs.values()), runs
    skipped = [run for run in runs.values() if run.states == SKIPPED_PATH]
    ran = [run for run in runs.values() if run.states != SKIPPED_PATH]
    assert len(skipped) == len(ran) == 1, {run.name: run.states for run in runs.values()}
    winner, loser = ran[0], skipped[0]
    assert winner.output["guard"]["acquired"] is True
    assert winner.states[-1] in ("Promoted", "Rejected")
    reason = loser.output["guard"]["reason"]
    assert reason.startswith(("another run is in progress: ", "another run took the lock at the same time: "))
    assert f"execution {winner.arn} (trigger: manual, started " in reason
    decisions = deployed.decisions_of(loser.arn)
    assert [(d.action, d.version, d.reasons) for d in decisions] == [("skipped", None, (reason,))]
    assert decisions[0].details["trigger"] == loser.input["trigger"]
    lock = deployed.run_lock()
    assert (lock["state"], lock["execution"]) == ("released", winner.arn)


def test_a_run_within_the_cooldown_is_skipped_with_the_cooldown_reason(deployed: Deployed) -> None:
    deployed.wait_until_idle()
    guard = deployed.function_named(f"{deployed.prefix}-training", "GuardFunction")
    configured = deployed.environment(guard)
    lock_before = deployed.run_lock()

    with deployed.changed_environment(guard, DRIFTLOOP_COOLDOWN_MINUTES="60"):
        run = deployed.run("it-cooldown", {"trigger": trigger("integration: too soon")})

    assert deployed.environment(guard) == configured
    assert run.status == "SUCCEEDED", run
    assert run.states == SKIPPED_PATH
    reason = run.output["guard"]["reason"]
    previous = f"execution {lock_before['execution']} ({lock_before['outcome']}), ended {lock_before['ended_at']}"
    assert reason.startswith(f"cooldown: the previous run, {previous}; no new run starts within 60 minutes of"), reason
    decisions = deployed.decisions_of(run.arn)
    assert [(d.action, d.reasons) for d in decisions] == [("skipped", (reason,))]
    assert deployed.run_lock() == lock_before
