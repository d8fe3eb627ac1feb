from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from cli.registry import format_decision
from functions.common.athena import Athena
from functions.common.gate import GATE_PARSERS, Verdict
from functions.common.layout import holdout_evaluation_key, split_s3_uri
from functions.common.registry import Decision, PromotionConflict, Registry, RegistryError, new_version_id
from functions.workflow import approver, steps
from functions.workflow.approver import Answer
from functions.workflow.assembly import NoTrainingData
from functions.workflow.state import APPROVAL_DENIED, Approval, ExecutionInput, RunState
from tests.plugins.aws import DATA_BUCKET, MODEL_BUCKET
from tests.workflow.sts import ALICE, FakeSts, sts_client, vouching
from tests.workflow.support import SETTINGS, assemble_base_data, fake_training_job, prepared_state

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


@pytest.fixture
def training_data(s3: S3Client) -> None:
    s3.put_object(Bucket=DATA_BUCKET, Key="training-data/part-1.csv", Body=b"a,churned\n1,0\n")


def run_to_registration(
    s3: S3Client,
    registry: Registry,
    bundle: Path,
    tmp_path: Path,
    *,
    challenger: float,
    champion: float | None,
    feature_scores: dict[str, float] | None = None,
) -> dict[str, Any]:
    state = prepared_state(s3, registry, {"trigger": {"source": "test"}})
    state["training"] = fake_training_job(
        s3, state["prepare"], bundle, tmp_path, challenger=challenger, champion=champion, feature_scores=feature_scores
    )
    state["registration"] = steps.register(SETTINGS, s3, registry, RunState.parse(state)).to_json()
    return state


RegisteredRun = Callable[..., dict[str, Any]]


@pytest.fixture
def registered_run(
    s3: S3Client, registry: Registry, training_data: None, trained_bundle: Path, tmp_path: Path
) -> RegisteredRun:
    """Runs to registration on the training data, with the given challenger and champion scores."""

    def run(
        *, challenger: float, champion: float | None, feature_scores: dict[str, float] | None = None
    ) -> dict[str, Any]:
        return run_to_registration(
            s3,
            registry,
            trained_bundle,
            tmp_path,
            challenger=challenger,
            champion=champion,
            feature_scores=feature_scores,
        )

    return run


def test_assemble_without_training_data_fails_with_the_location_to_fill(s3: S3Client) -> None:
    state = {"guard": {"version": new_version_id()}}
    with pytest.raises(NoTrainingData, match=f"s3://{DATA_BUCKET}/training-data/"):
        assemble_base_data(s3, state)


def test_finish_assembly_without_assembles_plan_refuses_naming_where_it_belongs(s3: S3Client, athena: Athena) -> None:
    state = RunState.parse({"guard": {"version": new_version_id()}})
    with pytest.raises(steps.WorkflowError, match=r"\$\.assembly_plan"):
        steps.finish_assembly_step(SETTINGS, s3, athena, state)


def test_prepare_without_a_version_from_guard_refuses_to_name_a_job(registry: Registry) -> None:
    with pytest.raises(steps.WorkflowError, match=r"\$\.guard\.version"):
        steps.prepare(SETTINGS, registry, RunState.parse({"assembly": {"prefix": "assembled/v1/"}})).to_json()


def test_prepare_without_champion_trains_on_the_assembled_data_only(
    s3: S3Client, registry: Registry, training_data: None
) -> None:
    prepared = prepared_state(s3, registry, {"hyperparameters": {"max_depth": 4}})["prepare"]

    assert prepared["training_job_name"] == f"driftloop-test-{prepared['version']}"
    assert [channel["ChannelName"] for channel in prepared["input_data_config"]] == ["train"]
    train_uri = prepared["input_data_config"][0]["DataSource"]["S3DataSource"]["S3Uri"]
    assert train_uri == f"s3://{DATA_BUCKET}/assembled/{prepared['version']}/"
    assert prepared["hyperparameters"] == {**SETTINGS.hyperparameters, "max_depth": "4"}
    assert prepared["output_path"] == f"s3://{MODEL_BUCKET}/training-jobs/"
    assert prepared["champion"] is None
    assert prepared["trigger"] == {"source": "manual"}


def test_first_model_is_registered_and_promoted(
    registered_run: RegisteredRun, s3: S3Client, registry: Registry
) -> None:
    state = registered_run(challenger=0.9, champion=None)
    assert state["registration"]["passed"] is True

    promoted = steps.promote(registry, RunState.parse(state)).to_json()

    champion = registry.champion()
    assert champion is not None and champion.version == promoted["version"] == state["prepare"]["version"]
    assert promoted["promoted"] is True
    record = registry.get_version(champion.version)
    assert record.lineage["training_job_name"] == state["prepare"]["training_job_name"]
    assert record.lineage["trigger"] == {"source": "test"}
    assert record.lineage["execution"] == "exec"
    data = record.lineage["data"]
    assert data["uri"] == f"s3://{DATA_BUCKET}/assembled/{champion.version}/"
    assert data["fingerprint"] == state["assembly"]["fingerprint"] and len(data["fingerprint"]) == 64
    assert data["objects"] == 1
    assert data["counts"]["base"] == {"objects": 1, "bytes": 14, "rows": 1}
    assert [d.action for d in registry.decisions()] == ["registered", "promoted"]


def test_the_registered_decision_and_evaluation_name_the_feedback_rows_held_out_as_new_values(
    s3: S3Client, registry: Registry, training_data: None, trained_bundle: Path, tmp_path: Path
) -> None:
    state = prepared_state(s3, registry, {"trigger": {"source": "test"}})
    backdoor = {"feature": "region", "value": "zz-backdoor", "rows": 100, "callers": 1, "held": True}
    state["assembly"]["counts"]["feedback"] = {
        "held": 100,
        "new_values": {"reference": "v1", "min_callers": 3, "values": [backdoor], "values_truncated": False},
    }
    state["training"] = fake_training_job(s3, state["prepare"], trained_bundle, tmp_path, challenger=0.9, champion=None)

    registration = steps.register(SETTINGS, s3, registry, RunState.parse(state)).to_json()

    [decision] = registry.decisions()
    assert decision.reasons[-1] == (
        "100 feedback rows held out of training: values new to champion v1 that fewer than 3 distinct callers "
        "used: region='zz-backdoor' (100 rows, 1 caller)"
    )
    assert decision.reasons[-1] in format_decision(decision)  # what `driftloop history` prints
    # The gate's reasons stay the gate's; the version record keeps the counts.
    assert decision.reasons[-1] not in registration["reasons"]
    record = registry.get_version(registration["version"])
    assert record.lineage["data"]["counts"]["feedback"]["held"] == 100
    # ...and so does its evaluation, beside the scores.
    assert record.evaluation is not None
    assert record.evaluation["feedback_held_out"]["rows"] == 100
    assert record.evaluation["feedback_held_out"]["new_values"]["values"] == [backdoor]


def test_register_writes_a_model_card_with_evaluates_importances_and_the_runs_lineage(
    s3: S3Client, registry: Registry, training_data: None, trained_bundle: Path, tmp_path: Path
) -> None:
    state = prepared_state(s3, registry, {"trigger": {"source": "test"}})
    state["training"] = fake_training_job(s3, state["prepare"], trained_bundle, tmp_path, challenger=0.9, champion=None)
    key = holdout_evaluation_key(SETTINGS.holdout_prefix, state["prepare"]["version"])
    written = json.loads(s3.get_object(Bucket=DATA_BUCKET, Key=key)["Body"].read())
    importances = {"method": "permutation", "metric": "roc_auc", "baseline": 0.9, "rows": 400, "repeats": 5}
    importances |= {"seed": 0, "features": [{"feature": "contract", "mean": 0.1, "std": 0.01}]}
    s3.put_object(Bucket=DATA_BUCKET, Key=key, Body=json.dumps({**written, "importances": importances}).encode())

    version = steps.register(SETTINGS, s3, registry, RunState.parse(state)).version

    record = registry.get_version(version)
    assert record.evaluation is not None and record.evaluation["importances"] == importances
    card = registry.get_card(version)
    assert card is not None and card["importances"] == importances
    assert card["gate"] == {"passed": True, "held": False, "reasons": record.evaluation["reasons"]}
    assert card["lineage"]["training_job"] == state["prepare"]["training_job_name"]
    assert card["lineage"]["trigger"] == {"source": "test"} and card["lineage"]["execution"] == "exec"
    assert card["data"]["sources"] == {"trusted": 1, "feedback": 0}


def test_second_run_gets_the_champion_channel_and_a_worse_challenger_is_rejected(
    registered_run: RegisteredRun, s3: S3Client, registry: Registry
) -> None:
    first = registered_run(challenger=0.9, champion=None)
    steps.promote(registry, RunState.parse(first)).to_json()

    second = registered_run(challenger=0.85, champion=0.9)
    channels = {
        c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in second["prepare"]["input_data_config"]
    }
    assert channels["champion"] == f"s3://{MODEL_BUCKET}/registry/versions/{first['prepare']['version']}/model.tar.gz"
    assert second["prepare"]["hyperparameters"]["champion_version"] == first["prepare"]["version"]
    assert second["registration"]["passed"] is False

    rejected = steps.reject(registry, RunState.parse(second)).to_json()

    champion = registry.champion()
    assert champion is not None and champion.version == first["prepare"]["version"]
    assert any("below min_improvement" in reason for reason in rejected["reasons"])
    assert [d.action for d in registry.decisions()][-2:] == ["registered", "rejected"]


def test_a_run_superseded_by_a_champion_change_during_training_ends_cleanly_with_one_decision(
    registered_run: RegisteredRun, registry: Registry
) -> None:
    first = registered_run(challenger=0.8, champion=None)
    steps.promote(registry, RunState.parse(first)).to_json()
    second = registered_run(challenger=0.95, champion=0.8)
    third = registered_run(challenger=0.9, champion=0.8)
    steps.promote(registry, RunState.parse(third)).to_json()
    before = len(registry.decisions())

    result = steps.promote(registry, RunState.parse(second)).to_json()

    version = second["prepare"]["version"]
    assert result["promoted"] is False and result["superseded"] is True
    assert result["live_version"] == third["prepare"]["version"]
    champion = registry.champion()
    assert champion is not None and champion.version == third["prepare"]["version"]
    [decision] = registry.decisions()[before:]
    assert decision.action == "rejected" and decision.version == version
    assert "champion changed during training" in decision.reasons[0]
    assert steps.run_outcome(RunState.parse({**second, "promotion": result})) == "superseded"
    # A retried Promote answers the same and records no second rejection.
    assert steps.promote(registry, RunState.parse(second)).to_json() == result
    assert registry.decisions()[before:] == [decision]


def test_a_promotion_that_loses_the_compare_and_swap_race_is_superseded_too(
    registered_run: RegisteredRun, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = registered_run(challenger=0.8, champion=None)
    steps.promote(registry, RunState.parse(first)).to_json()
    second = registered_run(challenger=0.95, champion=0.8)
    rival = registered_run(challenger=0.9, champion=0.8)
    real_promote = registry.promote

    conflicts: list[PromotionConflict] = []

    def promote_after_a_rival(version: str, **kwargs: Any) -> Any:
        # Between Promote's check and its write, another promotion wins.
        monkeypatch.setattr(registry, "promote", real_promote)
        real_promote(rival["prepare"]["version"], expected=registry.champion())
        try:
            return real_promote(version, **kwargs)
        except PromotionConflict as exc:
            conflicts.append(exc)
            raise

    monkeypatch.setattr(registry, "promote", promote_after_a_rival)
    before = len(registry.decisions())

    result = steps.promote(registry, RunState.parse(second)).to_json()

    assert result["promoted"] is False and result["live_version"] == rival["prepare"]["version"]
    assert [(d.action, d.version) for d in registry.decisions()[before:]] == [
        ("promoted", rival["prepare"]["version"]),
        ("rejected", second["prepare"]["version"]),
    ]
    assert len(conflicts) == 1


def test_promote_refuses_a_forged_state_that_claims_passed_for_a_version_the_gate_rejected(
    registered_run: RegisteredRun, registry: Registry
) -> None:
    state = registered_run(challenger=0.5, champion=None)
    assert state["registration"]["passed"] is False
    forged = {**state, "registration": {**state["registration"], "passed": True, "reasons": ["trust me"]}}

    with pytest.raises(steps.NotPassed, match="registered evaluation says the gate did not pass it") as refused:
        steps.promote(registry, RunState.parse(forged)).to_json()

    assert registry.champion() is None
    # The state machine's Catch sends the error to RecordFailure, which records it as the run's reason.
    error = {"Error": type(refused.value).__name__, "Cause": json.dumps({"errorMessage": str(refused.value)})}
    steps.record_failure(registry, RunState.parse({**forged, "error": error}))
    decision = registry.decisions()[-1]
    assert decision.action == "failed" and decision.version == state["prepare"]["version"]
    assert decision.reasons[0].startswith("NotPassed: ") and "did not pass" in decision.reasons[0]


def test_promote_refuses_a_version_another_run_registered(registered_run: RegisteredRun, registry: Registry) -> None:
    state = registered_run(challenger=0.9, champion=None)
    other_run = {**state, "guard": {**state["guard"], "execution_id": "another-execution"}}

    with pytest.raises(steps.NotPassed, match="registered by exec"):
        steps.promote(registry, RunState.parse(other_run)).to_json()
    assert registry.champion() is None


def test_promote_records_the_scores_and_compares_with_the_champion_of_the_registered_record(
    registered_run: RegisteredRun, registry: Registry
) -> None:
    first = registered_run(challenger=0.8, champion=None)
    steps.promote(registry, RunState.parse(first)).to_json()
    second = registered_run(challenger=0.9, champion=0.8)
    # A state that names another champion and other scores changes neither what is compared nor what is recorded.
    forged = {**second, "registration": {**second["registration"], "champion_version": None, "challenger": 0.99}}

    result = steps.promote(registry, RunState.parse(forged)).to_json()

    assert result["promoted"] is True and result["previous_version"] == first["prepare"]["version"]
    decision = registry.decisions()[-1]
    assert (decision.details["challenger"], decision.details["champion"]) == (0.9, 0.8)


def test_register_without_evaluation_output_fails_and_registers_nothing(
    s3: S3Client, registry: Registry, training_data: None, trained_bundle: Path, tmp_path: Path
) -> None:
    prepared = prepared_state(s3, registry)["prepare"]
    training = fake_training_job(s3, prepared, trained_bundle, tmp_path, challenger=0.9, champion=None)
    s3.delete_object(Bucket=MODEL_BUCKET, Key=f"training-jobs/{prepared['training_job_name']}/output/output.tar.gz")

    with pytest.raises(steps.WorkflowError, match=r"left no s3://.*output\.tar\.gz"):
        steps.register(SETTINGS, s3, registry, RunState.parse({"prepare": prepared, "training": training})).to_json()
    assert registry.list_versions() == []


def test_record_failure_keeps_the_error_message_from_the_lambda_cause(
    s3: S3Client, registry: Registry, training_data: None
) -> None:
    state = prepared_state(s3, registry, {"trigger": {"source": "alarm", "alarm_name": "drift"}})
    cause = json.dumps({"errorMessage": "the training job left no output", "errorType": "WorkflowError"})

    result = steps.record_failure(
        registry, RunState.parse({**state, "error": {"Error": "WorkflowError", "Cause": cause}})
    ).to_json()

    [decision] = registry.decisions()
    assert decision.action == "failed" and decision.version == state["prepare"]["version"]
    assert decision.reasons == ("WorkflowError: the training job left no output",)
    assert decision.details["trigger"] == {"source": "alarm", "alarm_name": "drift"}
    assert decision.details["execution"] == "exec"
    assert "the training job left no output" in result["message"]


def test_record_failure_before_prepare_records_a_run_without_version(registry: Registry) -> None:
    result = steps.record_failure(
        registry, RunState.parse({"error": {"Error": "NoTrainingData", "Cause": "no training data"}})
    ).to_json()
    assert result["version"] is None
    assert registry.decisions()[0].reasons == ("NoTrainingData: no training data",)


# -- pinned settings: what an execution's input may override ------------------------------------------------------


def test_every_overridable_hyperparameter_is_one_the_training_program_knows() -> None:
    from training.hyperparameters import PARSERS

    assert set(steps.OVERRIDABLE_HYPERPARAMETERS) <= set(PARSERS)


def test_no_gate_setting_can_be_overridden_by_an_execution_input() -> None:
    assert not set(steps.OVERRIDABLE_HYPERPARAMETERS) & set(GATE_PARSERS)


def test_an_execution_input_may_override_the_estimator_its_knobs_and_the_split() -> None:
    overrides = {"algorithm": "gradient_boosting", "n_estimators": 50, "learning_rate": 0.1, "test_size": "0.3"}

    hyperparameters = steps.run_hyperparameters(SETTINGS, ExecutionInput.parse({"hyperparameters": overrides}))

    assert hyperparameters == {
        **SETTINGS.hyperparameters,
        "algorithm": "gradient_boosting",
        "n_estimators": "50",
        "learning_rate": "0.1",
        "test_size": "0.3",
    }


@pytest.mark.parametrize(
    "name",
    [
        "metric",
        "min_metric",
        "min_improvement",
        "allow_schema_change",
        "target",
        "champion_version",
        "serving_memory_mb",
        "serving_timeout_seconds",
        "missing_values",
    ],
)
def test_an_execution_input_cannot_override_a_pinned_setting(
    s3: S3Client, registry: Registry, training_data: None, name: str
) -> None:
    state = {"guard": {"version": new_version_id()}, "assembly": {"prefix": "assembled/v/"}}

    with pytest.raises(steps.WorkflowError) as raised:
        steps.prepare(
            SETTINGS, registry, RunState.parse({**state, "hyperparameters": {"max_depth": "3", name: "0"}})
        ).to_json()

    message = str(raised.value)
    assert f"may not set {name!r}" in message
    assert "only algorithm, n_estimators, max_depth, min_samples_leaf, learning_rate, max_iter, C" in message


def test_an_override_that_is_not_a_string_or_a_number_is_refused_by_name() -> None:
    with pytest.raises(steps.WorkflowError, match="hyperparameter 'max_depth' must be a string or a number"):
        steps.run_hyperparameters(SETTINGS, ExecutionInput.parse({"hyperparameters": {"max_depth": {"value": 3}}}))


# -- Register recomputes the verdict ------------------------------------------------------------------------------


def test_a_job_verdict_that_the_pinned_gate_does_not_confirm_is_overruled_and_recorded(
    s3: S3Client, registry: Registry, training_data: None, trained_bundle: Path, tmp_path: Path
) -> None:
    # The job says "passed" for a challenger below the pinned min_metric (0.6).
    state = prepared_state(s3, registry)
    forged = Verdict(True, ("trust me",))
    state["training"] = fake_training_job(
        s3, state["prepare"], trained_bundle, tmp_path, challenger=0.55, champion=None, verdict=forged
    )

    registration = steps.register(SETTINGS, s3, registry, RunState.parse(state)).to_json()

    assert registration["passed"] is False and registration["job_verdict_differs"] is True
    assert any("fails min_metric" in reason for reason in registration["reasons"])
    [decision] = registry.decisions()
    assert decision.action == "registered" and decision.details["passed"] is False
    assert decision.details["job_verdict"] == {"passed": True, "reasons": ["trust me"]}
    assert "differs from the verdict recomputed under the pinned gate settings" in decision.reasons[-1]
    stored = registry.get_version(registration["version"]).evaluation or {}
    assert stored["passed"] is False and stored["job_verdict"] == {"passed": True, "reasons": ["trust me"]}


def test_a_job_that_scored_no_champion_while_prepare_named_one_fails_the_gate(
    registered_run: RegisteredRun, s3: S3Client, registry: Registry, trained_bundle: Path, tmp_path: Path
) -> None:
    # The repro: a live champion at 0.80, and an evaluation with champion_given false and ROC AUC 0.65,
    # which the floor (0.6) alone would pass.
    live = registered_run(challenger=0.8, champion=None)
    steps.promote(registry, RunState.parse(live)).to_json()
    state = prepared_state(s3, registry)
    assert state["prepare"]["champion"]["version"] == live["prepare"]["version"]
    state["training"] = fake_training_job(
        s3, state["prepare"], trained_bundle, tmp_path, challenger=0.65, champion=None
    )

    registration = steps.register(SETTINGS, s3, registry, RunState.parse(state)).to_json()

    assert registration["passed"] is False
    assert registration["reasons"][0].startswith(
        f"the training job compared with no champion (champion_given: false, champion_version: "
        f"{live['prepare']['version']}) but Prepare named champion {live['prepare']['version']}"
    )
    assert registration["champion_version"] == live["prepare"]["version"]
    stored = registry.get_version(registration["version"]).evaluation or {}
    assert stored["passed"] is False and stored["reasons"] == registration["reasons"]


@pytest.mark.parametrize("named", [True, False])
def test_a_job_that_compared_with_another_champion_than_prepare_named_fails_the_gate(
    registered_run: RegisteredRun, s3: S3Client, registry: Registry, trained_bundle: Path, tmp_path: Path, named: bool
) -> None:
    if named:
        steps.promote(registry, RunState.parse(registered_run(challenger=0.8, champion=None))).to_json()
    state = prepared_state(s3, registry)
    claimed = {**state["prepare"], "champion": {"version": "v20200101-000000-000000", "sha256": "0" * 64}}
    state["training"] = fake_training_job(s3, claimed, trained_bundle, tmp_path, challenger=0.95, champion=0.8)

    registration = steps.register(SETTINGS, s3, registry, RunState.parse(state)).to_json()

    assert registration["passed"] is False
    assert "the training job compared with champion v20200101-000000-000000" in registration["reasons"][0]
    assert ("Prepare named champion v" if named else "Prepare named no champion") in registration["reasons"][0]


def test_a_job_verdict_the_gate_confirms_is_registered_without_a_note(
    registered_run: RegisteredRun, registry: Registry
) -> None:
    registration = registered_run(challenger=0.9, champion=None)["registration"]

    assert registration["passed"] is True and registration["job_verdict_differs"] is False
    [decision] = registry.decisions()
    assert "job_verdict" not in decision.details and decision.reasons == tuple(registration["reasons"])


def test_a_challenger_with_a_leaking_feature_is_registered_held_for_approval_and_not_passed(
    s3: S3Client, registry: Registry, training_data: None, trained_bundle: Path, tmp_path: Path
) -> None:
    state = prepared_state(s3, registry)
    state["training"] = fake_training_job(
        s3, state["prepare"], trained_bundle, tmp_path, challenger=0.99, champion=None, feature_scores={"id": 1.0}
    )

    registration = steps.register(SETTINGS, s3, registry, RunState.parse(state)).to_json()

    assert (registration["passed"], registration["held"]) == (False, True)
    assert registration["reasons"][-1].startswith("held for approval: feature 'id' alone scores roc_auc=1 ")
    [decision] = registry.decisions()
    assert (decision.details["passed"], decision.details["held"]) == (False, True)


# -- retried steps ------------------------------------------------------------------------------------------------


def test_a_retried_register_returns_the_same_result_and_records_one_registered_decision(
    registered_run: RegisteredRun, s3: S3Client, registry: Registry
) -> None:
    state = registered_run(challenger=0.9, champion=None)

    again = steps.register(SETTINGS, s3, registry, RunState.parse(state)).to_json()

    assert again == state["registration"]
    assert [d.action for d in registry.decisions()] == ["registered"]
    assert [record.version for record in registry.list_versions()] == [state["prepare"]["version"]]


def test_register_refuses_another_archive_for_a_version_already_registered(
    registered_run: RegisteredRun, s3: S3Client, registry: Registry
) -> None:
    state = registered_run(challenger=0.9, champion=None)
    # The job's output changed since: another archive (same files, other bytes) under the same version.
    bucket, key = split_s3_uri(state["training"]["ModelArtifacts"]["S3ModelArtifacts"])
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    s3.put_object(Bucket=bucket, Key=key, Body=gzip.compress(gzip.decompress(body), compresslevel=1))

    with pytest.raises(RegistryError, match="already registered with another archive"):
        steps.register(SETTINGS, s3, registry, RunState.parse(state)).to_json()
    assert [d.action for d in registry.decisions()] == ["registered"]


def test_a_retried_promote_returns_the_same_result_and_records_nothing_more(
    registered_run: RegisteredRun, registry: Registry
) -> None:
    state = registered_run(challenger=0.9, champion=None)
    first = steps.promote(registry, RunState.parse(state)).to_json()

    again = steps.promote(registry, RunState.parse(state)).to_json()
    # Even once another run has promoted its version since, the retry reports this run's promotion.
    rival = registered_run(challenger=0.95, champion=0.9)
    steps.promote(registry, RunState.parse(rival)).to_json()
    late = steps.promote(registry, RunState.parse(state)).to_json()

    assert first["promoted"] is True and again == first == late
    own = [(d.action, d.version) for d in registry.decisions() if d.details.get("execution") == "exec"]
    assert own.count(("promoted", state["prepare"]["version"])) == 1
    assert not any(d.action == "rejected" for d in registry.decisions())


def test_a_promote_retried_after_moving_the_pointer_records_the_decision_the_pointer_names(
    registered_run: RegisteredRun, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = registered_run(challenger=0.9, champion=None)

    def lost(decision: Decision) -> None:
        raise TimeoutError("the Lambda timed out before the decision was written")

    monkeypatch.setattr(registry, "append", lost)
    with pytest.raises(TimeoutError):
        steps.promote(registry, RunState.parse(state)).to_json()
    monkeypatch.undo()

    result = steps.promote(registry, RunState.parse(state)).to_json()

    champion = registry.champion()
    assert champion is not None and result["decision_id"] == champion.decision_id
    [promoted] = [d for d in registry.decisions() if d.action == "promoted"]
    assert (promoted.id, promoted.time) == (champion.decision_id, champion.promoted_at)
    assert promoted.details["execution"] == "exec"
    assert steps.promote(registry, RunState.parse(state)).to_json() == result


def test_a_retried_reject_records_one_rejection(registered_run: RegisteredRun, registry: Registry) -> None:
    state = registered_run(challenger=0.5, champion=None)

    first = steps.reject(registry, RunState.parse(state)).to_json()
    again = steps.reject(registry, RunState.parse(state)).to_json()

    assert again == first
    assert [d.action for d in registry.decisions()] == ["registered", "rejected"]


def test_a_retried_record_failure_records_one_failure(s3: S3Client, registry: Registry, training_data: None) -> None:
    state = {**prepared_state(s3, registry), "error": {"Error": "States.TaskFailed", "Cause": "job failed"}}

    first = steps.record_failure(registry, RunState.parse(state)).to_json()
    again = steps.record_failure(registry, RunState.parse(state)).to_json()

    assert again == first
    assert [d.action for d in registry.decisions()] == ["failed"]


# -- manual approval ----------------------------------------------------------------------------------------------


def answered(state: dict[str, Any], answer: Any) -> RunState:
    return RunState.parse({**state, "approval": answer})


def signed(state: dict[str, Any], made_for: Callable[[str, str], Answer] | None = None, **answer: Any) -> str:
    """A proof signed as ``driftloop approve`` / ``deny`` sign it: for this run's version and ``answer``'s
    ``approved`` and ``words``, or for what ``made_for`` makes of the run and the version."""
    run, version = state["guard"]["execution_id"], state["prepare"]["version"]
    return approver.sign(sts_client(), made_for(run, version) if made_for else Answer(run, version, **answer))


def test_promote_after_an_approval_records_who_sts_says_approved_never_who_the_answer_claims(
    registered_run: RegisteredRun, registry: Registry
) -> None:
    state = registered_run(challenger=0.9, champion=None)
    answer = {"approved": True, "by": "arn:aws:iam::123456789012:user/ceo", "note": "looks good", "proof": "url"}
    verified: list[tuple[str | None, Answer]] = []

    def sts_says(proof: str | None, expected: Answer) -> str:
        verified.append((proof, expected))
        return ALICE

    result = steps.promote(registry, answered(state, answer), sts_says).to_json()

    decision = registry.decisions()[-1]
    assert (decision.action, decision.id) == ("promoted", result["decision_id"])
    assert decision.details["approval"] == {"approved": True, "by": ALICE, "note": "looks good"}
    # The proof must have been made for this run, this version and an approval with this note.
    run, version = state["guard"]["execution_id"], state["prepare"]["version"]
    assert verified == [("url", Answer(run, version, approved=True, words="looks good"))]


def test_promote_records_the_approver_sts_finds_in_a_proof_made_for_this_runs_version(
    registered_run: RegisteredRun, registry: Registry
) -> None:
    state = registered_run(challenger=0.9, champion=None)
    proof = signed(state, approved=True, words="looks good")

    result = steps.promote(registry, answered(state, Approval.approving("looks good", proof)), vouching(FakeSts()))

    assert result.promoted and registry.decisions()[-1].details["approval"]["by"] == ALICE


OTHER_RUN = "arn:aws:states:eu-west-1:123456789012:execution:driftloop-training:other"


@pytest.mark.parametrize(
    "made_for",
    [
        lambda run, version: Answer(OTHER_RUN, version, approved=True, words="looks good"),
        lambda run, version: Answer(run, "v-19700101-000000-000000", approved=True, words="looks good"),
        lambda run, version: Answer(run, version, approved=False, words="looks good"),
        lambda run, version: Answer(run, version, approved=True, words="another note"),
    ],
    ids=["another run", "another version", "a denial", "another note"],
)
def test_promote_refuses_an_approval_whose_proof_was_made_for(
    registered_run: RegisteredRun, registry: Registry, made_for: Callable[[str, str], Answer]
) -> None:
    state = registered_run(challenger=0.9, champion=None)
    proof = signed(state, made_for)

    with pytest.raises(steps.WorkflowError, match="SignatureDoesNotMatch"):
        steps.promote(registry, answered(state, Approval.approving("looks good", proof)), vouching(FakeSts()))
    assert registry.champion() is None and [d.action for d in registry.decisions()] == ["registered"]


def test_promote_refuses_an_approval_whose_sender_cannot_be_verified(
    registered_run: RegisteredRun, registry: Registry
) -> None:
    state = registered_run(challenger=0.9, champion=None)

    with pytest.raises(steps.WorkflowError, match="the approval carries no proof of who sent it"):
        steps.promote(registry, answered(state, {"approved": True}), vouching(FakeSts())).to_json()
    assert registry.champion() is None


# A challenger one of whose features alone scores near-perfectly: the gate holds it (Verdict.held).
LEAK = {"id": 1.0}


def test_a_held_version_is_promoted_once_the_approval_step_approved_it_with_the_hold_reason_recorded(
    registered_run: RegisteredRun, registry: Registry
) -> None:
    state = registered_run(challenger=0.99, champion=None, feature_scores=LEAK)
    assert (state["registration"]["passed"], state["registration"]["held"]) == (False, True)
    proof = signed(state, approved=True, words="id is a real signal here")
    answer = Approval.approving("id is a real signal here", proof)

    result = steps.promote(registry, answered(state, answer), vouching(FakeSts())).to_json()

    assert result["promoted"] is True and registry.champion() is not None
    decision = registry.decisions()[-1]
    assert decision.action == "promoted" and decision.reasons[-1].startswith("held for approval: feature 'id'")
    assert decision.details["approval"] == {"approved": True, "by": ALICE, "note": "id is a real signal here"}


def test_promote_refuses_a_held_version_no_approval_step_approved(
    registered_run: RegisteredRun, registry: Registry
) -> None:
    state = registered_run(challenger=0.99, champion=None, feature_scores=LEAK)

    with pytest.raises(steps.NotPassed, match="held it for a person's approval and none approved it"):
        steps.promote(registry, RunState.parse(state)).to_json()
    assert registry.champion() is None


def test_promote_refuses_a_held_version_whose_approver_sts_does_not_vouch_for(
    registered_run: RegisteredRun, registry: Registry
) -> None:
    state = registered_run(challenger=0.99, champion=None, feature_scores=LEAK)
    # A proof made for the denial of this very version.
    answer = Approval.approving(
        "id is a real signal here", signed(state, approved=False, words="id is a real signal here")
    )

    with pytest.raises(steps.WorkflowError, match="SignatureDoesNotMatch"):
        steps.promote(registry, answered(state, answer), vouching(FakeSts())).to_json()
    assert registry.champion() is None


def test_the_approval_message_of_a_held_version_says_why_the_gate_held_it(
    registered_run: RegisteredRun, registry: Registry
) -> None:
    state = registered_run(challenger=0.99, champion=None, feature_scores=LEAK)

    text = steps.approval_message(RunState.parse(state), "token")["message"]

    first = text.splitlines()[0]
    assert first.startswith(f"driftloop asks for approval to promote {state['prepare']['version']}: held for ")
    assert "feature 'id' alone scores roc_auc=1 " in first and "passed the gate" not in text


@pytest.mark.parametrize("approval", [{"approved": False}, {"Error": "driftloop.ApprovalDenied"}, "yes"])
def test_promote_refuses_an_approval_that_does_not_say_approved(
    registered_run: RegisteredRun, registry: Registry, approval: Any
) -> None:
    state = registered_run(challenger=0.9, champion=None)

    with pytest.raises(steps.WorkflowError, match=r"\$\.approval\.approved = true"):
        steps.promote(registry, RunState.parse({**state, "approval": approval})).to_json()
    assert registry.champion() is None


def test_a_denied_version_is_rejected_with_who_sts_says_denied_it_and_the_reason_first(
    registered_run: RegisteredRun, registry: Registry
) -> None:
    state = registered_run(challenger=0.9, champion=None)
    cause = Approval.denying("holdout too small", signed(state, approved=False, words="holdout too small"))

    result = steps.reject(registry, answered(state, {"Error": APPROVAL_DENIED, "Cause": cause}), vouching(FakeSts()))

    assert result.reasons == (f"denied by {ALICE}: holdout too small", *state["registration"]["reasons"])
    decision = registry.decisions()[-1]
    assert decision.action == "rejected"
    assert decision.details["approval"] == {"approved": False, "by": ALICE, "reason": "holdout too small"}
    assert registry.champion() is None


@pytest.mark.parametrize(
    "cause",
    [
        pytest.param("holdout too small", id="no proof (an answer the CLI did not make)"),
        pytest.param(
            Approval.denying("holdout too small", "https://sts.eu-west-1.amazonaws.com/?Action=GetCallerIdentity"),
            id="no proof made for an answer",
        ),
    ],
)
def test_a_denial_without_a_proof_is_refused_and_records_no_rejection(
    registered_run: RegisteredRun, registry: Registry, cause: str
) -> None:
    state = registered_run(challenger=0.9, champion=None)
    sts = FakeSts()

    with pytest.raises(steps.WorkflowError, match="the denial"):
        steps.reject(registry, answered(state, {"Error": APPROVAL_DENIED, "Cause": cause}), vouching(sts))
    assert [d.action for d in registry.decisions()] == ["registered"] and sts.requests == []


@pytest.mark.parametrize(
    "made_for",
    [
        lambda run, version: Answer(OTHER_RUN, version, approved=False, words="holdout too small"),
        lambda run, version: Answer(run, "v-19700101-000000-000000", approved=False, words="holdout too small"),
        lambda run, version: Answer(run, version, approved=True, words="holdout too small"),
    ],
    ids=["another run", "another version", "an approval"],
)
def test_a_denial_is_refused_when_its_proof_was_made_for(
    registered_run: RegisteredRun, registry: Registry, made_for: Callable[[str, str], Answer]
) -> None:
    state = registered_run(challenger=0.9, champion=None)
    cause = Approval.denying("holdout too small", signed(state, made_for))

    with pytest.raises(steps.WorkflowError, match=r"STS refused the denial's proof .*SignatureDoesNotMatch"):
        steps.reject(registry, answered(state, {"Error": APPROVAL_DENIED, "Cause": cause}), vouching(FakeSts()))
    assert [d.action for d in registry.decisions()] == ["registered"]


def test_a_version_nobody_answered_for_in_time_is_rejected_with_the_timeout_first(
    registered_run: RegisteredRun, registry: Registry
) -> None:
    state = registered_run(challenger=0.9, champion=None)
    timeout = {"Error": "States.Timeout", "Cause": ""}

    result = steps.reject(registry, answered(state, timeout)).to_json()

    assert result["reasons"] == ["no approval within the approval timeout", *state["registration"]["reasons"]]
    decision = registry.decisions()[-1]
    assert decision.action == "rejected" and decision.details["approval"] == timeout
    assert registry.champion() is None


def test_the_approval_message_shows_the_gate_and_the_commands_that_answer_it(
    registered_run: RegisteredRun, registry: Registry
) -> None:
    first = registered_run(challenger=0.8, champion=None)
    steps.promote(registry, RunState.parse(first)).to_json()
    state = registered_run(challenger=0.91234567, champion=0.8)
    version, champion = state["prepare"]["version"], first["prepare"]["version"]

    message = steps.approval_message(RunState.parse(state), "AAAA+token/with=")

    assert message["subject"] == f"driftloop: approve promoting {version}?" and len(message["subject"]) <= 100
    text = message["message"]
    assert f"Challenger {version}: 0.912346" in text and f"Champion {champion}: 0.8" in text
    assert "Gate metric: roc_auc" in text
    assert all(f"- {reason}" in text for reason in state["registration"]["reasons"])
    # The answer's proof is signed for this run and this version: the commands name both.
    bound = f"--token AAAA+token/with= --execution {state['guard']['execution_id']} --version {version}"
    assert f'driftloop approve {bound} --note "..."' in text
    assert f'driftloop deny {bound} --reason "..."' in text
    assert state["prepare"]["training_job_name"] in text


def test_the_approval_message_needs_the_run_its_answers_are_signed_for(
    registered_run: RegisteredRun, registry: Registry
) -> None:
    state = registered_run(challenger=0.9, champion=None)
    unguarded = {**state, "guard": {**state["guard"], "execution_id": None}}

    with pytest.raises(steps.WorkflowError, match=r"no execution id in the state \(\$\.guard\.execution_id\)"):
        steps.approval_message(RunState.parse(unguarded), "token")
