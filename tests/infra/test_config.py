"""The typed config read from cdk.json: defaults, stage overrides, and errors that name the key."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from pydantic import ValidationError

from functions.inference.id_keys import rotation_days
from infra.config import LOG_RETENTION_DAYS, ApprovalConfig, ConfigError, DriftloopConfig, load_config
from infra.constructs.log_group import RETENTION
from tests.infra.conftest import CDK_JSON


def context(stage: str | None = None, **base_overrides: Any) -> dict[str, Any]:
    ctx: dict[str, Any] = copy.deepcopy(json.loads(CDK_JSON.read_text())["context"])
    ctx.pop("stage")
    if stage is not None:
        ctx["stage"] = stage
    for path, value in base_overrides.items():
        *parents, leaf = path.split("__")
        target = ctx["driftloop"]
        for parent in parents:
            target = target[parent]
        target[leaf] = value
    return ctx


def load(ctx: dict[str, Any]) -> DriftloopConfig:
    return load_config(ctx.get)


def test_cdk_json_dev_stage_loads_the_documented_defaults() -> None:
    config = load(context("dev"))
    assert config.stage == "dev"
    assert config.resource_prefix == "driftloop-dev"
    assert config.state_machine_name == "driftloop-dev-training"
    assert config.removal == "retain"
    assert config.training.image_uri is None
    assert dict(config.training.hyperparameters) == {"target": "churned", "algorithm": "hist_gradient_boosting"}
    assert config.data.registry_prefix == "registry/"
    assert config.serving.auth_mode == "iam"
    assert config.serving.reserved_concurrency == 50
    assert (config.serving.feedback_throttle_rate_limit, config.serving.feedback_throttle_burst_limit) == (10, 20)
    assert config.retraining.max_feedback_share == 0.3
    assert config.retraining.new_value_min_callers == 3
    assert config.retraining.approval == ApprovalConfig(enabled=False, timeout_hours=24)


def test_stage_defaults_to_dev_when_not_given() -> None:
    assert load(context()).stage == "dev"


def test_local_stage_overrides_are_deep_merged_onto_the_base() -> None:
    config = load(context("local"))
    assert config.removal == "destroy"
    assert config.training.image_uri is not None
    # Keys the override does not mention keep their base values.
    assert config.training.instance_type == "ml.m5.large"
    assert config.serving.memory_mb == 1024


def test_unknown_stage_is_rejected_naming_the_stages_key() -> None:
    with pytest.raises(ConfigError, match=r"unknown stage 'prod'.*'driftloop:stages'.*dev, local"):
        load(context("prod"))


def test_missing_context_explains_how_to_run_the_app() -> None:
    with pytest.raises(ConfigError, match=r"'driftloop' is missing.*npx cdk synth"):
        load_config(lambda key: None)


def test_unknown_key_is_rejected_with_its_full_path() -> None:
    with pytest.raises(ConfigError, match=r"unknown key driftloop\.serving\.memory\b"):
        load(context(serving__memory=512))


def test_missing_key_is_reported_with_its_full_path() -> None:
    ctx = context()
    del ctx["driftloop"]["data"]["artifact_prefix"]
    with pytest.raises(ConfigError, match=r"driftloop\.data\.artifact_prefix is required"):
        load(ctx)


def test_hyperparameters_must_be_strings() -> None:
    with pytest.raises(ConfigError, match=r"driftloop\.training\.hyperparameters\.n_estimators must be a string"):
        load(context(training__hyperparameters={"n_estimators": 100}))


def test_auth_mode_must_be_iam_or_api_key() -> None:
    with pytest.raises(ConfigError, match=r"driftloop\.serving\.auth_mode must be one of iam, api_key"):
        load(context(serving__auth_mode="cognito"))


def test_auto_delete_requires_the_destroy_removal_policy() -> None:
    with pytest.raises(ConfigError, match=r"auto_delete_objects requires driftloop\.removal = 'destroy'"):
        load(context(auto_delete_objects=True))


def test_workflow_timeout_must_exceed_the_training_job_runtime() -> None:
    with pytest.raises(ConfigError, match=r"workflow_timeout_seconds must exceed .*max_runtime_seconds"):
        load(context(training__workflow_timeout_seconds=3600))


def test_prefixes_must_not_nest() -> None:
    with pytest.raises(ConfigError, match=r"driftloop\.data\.artifact_prefix must not lie under .*registry_prefix"):
        load(context(data__artifact_prefix="registry/jobs/"))


def test_prefixes_must_end_with_a_slash() -> None:
    with pytest.raises(ConfigError, match=r"driftloop\.data\.registry_prefix must be an S3 key prefix"):
        load(context(data__registry_prefix="registry"))


def test_log_retention_must_be_a_value_cloudwatch_accepts() -> None:
    with pytest.raises(ConfigError, match=r"driftloop\.log_retention_days must be one of 1, 3, 5"):
        load(context(log_retention_days=10))


def test_image_uri_must_be_an_ecr_image() -> None:
    with pytest.raises(ConfigError, match=r"driftloop\.training\.image_uri must be an ECR image URI"):
        load(context(training__image_uri="python:3.12-slim"))


def test_api_timeout_cannot_exceed_the_api_gateway_limit() -> None:
    with pytest.raises(ConfigError, match=r"driftloop\.serving\.timeout_seconds must be an integer from 1 to 29"):
        load(context(serving__timeout_seconds=60))


def test_a_feedback_age_whose_key_rotation_secrets_manager_cannot_schedule_is_rejected() -> None:
    with pytest.raises(
        ConfigError, match=r"driftloop\.capture\.feedback_max_age_days must be an integer from 1 to 998"
    ):
        load(context(capture__feedback_max_age_days=999))
    assert rotation_days(load(context(capture__feedback_max_age_days=998)).capture.feedback_max_age_days) == 1000


def test_booleans_are_not_accepted_as_numbers() -> None:
    with pytest.raises(ConfigError, match=r"driftloop\.training\.instance_count must be an integer"):
        load(context(training__instance_count=True))


def test_long_name_prefix_is_rejected_because_job_names_are_limited() -> None:
    with pytest.raises(ConfigError, match=r"driftloop\.name_prefix and the stage together must stay within"):
        load(context(name_prefix="a-very-long-project-name-prefix"))


def test_nullable_keys_may_be_omitted() -> None:
    # jsii drops null members of context objects, so "absent" must read as null.
    ctx = context()
    del ctx["driftloop"]["training"]["image_uri"]
    del ctx["driftloop"]["serving"]["reserved_concurrency"]
    del ctx["driftloop"]["athena"]["glue_database"]
    config = load(ctx)
    assert config.training.image_uri is None
    assert config.serving.reserved_concurrency is None
    assert config.athena.glue_database is None


def test_the_glue_database_and_athena_workgroup_are_named_after_the_deployment_unless_configured() -> None:
    dev, local = load(context("dev")), load(context("local"))
    assert (dev.glue_database_name, dev.athena_workgroup_name) == ("driftloop_dev", "driftloop-dev")
    assert (local.glue_database_name, local.athena_workgroup_name) == ("driftloop_local", "driftloop-local")
    assert load(context(athena__glue_database="ml_captures")).glue_database_name == "ml_captures"
    assert dev.data.athena_results_prefix == "athena/"


def test_the_model_package_group_is_named_after_the_deployment_unless_configured() -> None:
    assert load(context("dev")).model_package_group_name == "driftloop-dev"
    assert load(context(training__model_package_group="churn-models")).model_package_group_name == "churn-models"


@pytest.mark.parametrize("name", ["Churn", "churn_models", "-churn", "churn-", "", "a" * 64])
def test_a_model_package_group_name_whose_packages_arns_iam_cannot_match_is_rejected(name: str) -> None:
    with pytest.raises(ConfigError, match=r"driftloop\.training\.model_package_group must be lowercase letters"):
        load(context(training__model_package_group=name))


@pytest.mark.parametrize("name", ["Captures", "my-db", "1db", "", "a" * 256])
def test_a_glue_database_name_athena_cannot_read_unquoted_is_rejected(name: str) -> None:
    with pytest.raises(ConfigError, match=r"driftloop\.athena\.glue_database must be lowercase letters, digits"):
        load(context(athena__glue_database=name))


def test_athena_results_must_not_lie_under_another_prefix() -> None:
    with pytest.raises(
        ConfigError, match=r"driftloop\.data\.athena_results_prefix must not lie under .*capture_prefix"
    ):
        load(context(data__athena_results_prefix="captures/athena/"))


def test_config_is_immutable() -> None:
    config = load(context())
    with pytest.raises(ValidationError, match="frozen"):
        config.stage = "prod"  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.training.hyperparameters["target"] = "other"  # type: ignore[index]


def test_every_accepted_log_retention_maps_to_a_log_group_retention() -> None:
    assert tuple(RETENTION) == LOG_RETENTION_DAYS


@pytest.mark.parametrize("kind", ["drift", "quality"])
def test_alarm_datapoints_must_not_exceed_evaluation_periods(kind: str) -> None:
    ctx = context()
    ctx["driftloop"]["monitoring"].update({f"{kind}_datapoints_to_alarm": 4, f"{kind}_evaluation_periods": 3})
    with pytest.raises(
        ConfigError,
        match=rf"driftloop\.monitoring\.{kind}_datapoints_to_alarm must not exceed .*{kind}_evaluation_periods",
    ):
        load(ctx)


def test_monitor_window_must_cover_the_schedule() -> None:
    with pytest.raises(ConfigError, match=r"driftloop\.monitoring\.window_minutes must be at least .*schedule_minutes"):
        load(context(monitoring__window_minutes=30))


@pytest.mark.parametrize("expression", ["every 7 days", "rate 7 days", "7d", "cron()"])
def test_retraining_schedule_must_be_an_eventbridge_expression(expression: str) -> None:
    with pytest.raises(ConfigError, match=r"driftloop\.retraining\.schedule_expression must be rate\(\.\.\.\)"):
        load(context(retraining__schedule_expression=expression))


def test_alarm_evaluation_span_must_fit_cloudwatch_limits() -> None:
    # A 30-minute period may look back one day at most: 49 periods is 24.5 hours.
    ctx = context()
    ctx["driftloop"]["monitoring"].update(
        {"schedule_minutes": 30, "window_minutes": 30, "drift_evaluation_periods": 49}
    )
    with pytest.raises(ConfigError, match=r"drift_evaluation_periods times .*schedule_minutes must stay within 1440"):
        load(ctx)
    # Hourly runs may look back a week: 100 periods is about four days.
    ctx["driftloop"]["monitoring"].update(
        {"schedule_minutes": 60, "window_minutes": 60, "drift_evaluation_periods": 100}
    )
    assert load(ctx).monitoring.drift_evaluation_periods == 100


@pytest.mark.parametrize("kind", ["rate", "burst"])
def test_the_feedback_throttle_must_not_exceed_the_stage_throttle(kind: str) -> None:
    with pytest.raises(
        ConfigError,
        match=rf"driftloop\.serving\.feedback_throttle_{kind}_limit must not exceed .*serving\.throttle_{kind}_limit",
    ):
        ctx = context()
        ctx["driftloop"]["serving"][f"feedback_throttle_{kind}_limit"] = 101
        load(ctx)


@pytest.mark.parametrize("share", [0, -0.1, 1.5, "0.3", True])
def test_the_feedback_share_must_lie_above_zero_and_at_most_one(share: object) -> None:
    with pytest.raises(ConfigError, match=r"driftloop\.retraining\.max_feedback_share must be"):
        load(context(retraining__max_feedback_share=share))
    assert load(context(retraining__max_feedback_share=1)).retraining.max_feedback_share == 1.0


@pytest.mark.parametrize("callers", [0, -1, 1001, 2.5, "3", True])
def test_the_callers_a_new_feature_value_needs_are_a_whole_number_from_one(callers: object) -> None:
    with pytest.raises(ConfigError, match=r"driftloop\.retraining\.new_value_min_callers must be"):
        load(context(retraining__new_value_min_callers=callers))
    assert load(context(retraining__new_value_min_callers=1)).retraining.new_value_min_callers == 1


def test_approval_settings_are_checked_with_their_full_key() -> None:
    with pytest.raises(ConfigError, match=r"unknown key driftloop\.retraining\.approval\.timeout"):
        load(context(retraining__approval={"enabled": True, "timeout_hours": 2, "timeout": 2}))
    with pytest.raises(ConfigError, match=r"driftloop\.retraining\.approval\.enabled must be true or false"):
        load(context(retraining__approval={"enabled": "yes", "timeout_hours": 2}))
    with pytest.raises(ConfigError, match=r"driftloop\.retraining\.approval\.timeout_hours must be an integer"):
        load(context(retraining__approval={"enabled": True, "timeout_hours": 0}))


def test_an_enabled_approval_must_fit_in_the_workflow_timeout_with_the_training_job() -> None:
    # 3600 s of training plus a day of waiting does not fit in 7200 s.
    with pytest.raises(
        ConfigError,
        match=r"driftloop\.training\.workflow_timeout_seconds must exceed .*max_runtime_seconds "
        r"plus driftloop\.retraining\.approval\.timeout_hours",
    ):
        load(context(retraining__approval={"enabled": True, "timeout_hours": 24}))
    config = load(
        context(retraining__approval={"enabled": True, "timeout_hours": 24}, training__workflow_timeout_seconds=93600)
    )
    assert config.retraining.approval.enabled
    # Off, the timeout does not count.
    assert not load(context(retraining__approval={"enabled": False, "timeout_hours": 24})).retraining.approval.enabled


def test_with_approval_off_a_held_version_waits_only_as_long_as_the_workflow_timeout_leaves_after_training() -> None:
    off = load(context(retraining__approval={"enabled": False, "timeout_hours": 24}))
    assert off.approval_timeout_seconds == 7200 - 3600
    short = load(
        context(retraining__approval={"enabled": False, "timeout_hours": 1}, training__workflow_timeout_seconds=9000)
    )
    assert short.approval_timeout_seconds == 3600
    on = load(
        context(retraining__approval={"enabled": True, "timeout_hours": 24}, training__workflow_timeout_seconds=93600)
    )
    assert on.approval_timeout_seconds == 24 * 3600


def test_the_workflow_hyperparameters_carry_what_the_serving_lambda_can_load() -> None:
    config = load(context(serving__memory_mb=2048, serving__timeout_seconds=15))
    assert config.workflow_hyperparameters == {
        "target": "churned",
        "algorithm": "hist_gradient_boosting",
        "serving_memory_mb": "2048",
        "serving_timeout_seconds": "15",
    }


@pytest.mark.parametrize("name", ["serving_memory_mb", "serving_timeout_seconds"])
def test_the_serving_limits_cannot_be_configured_as_hyperparameters(name: str) -> None:
    with pytest.raises(
        ConfigError, match=rf"driftloop\.training\.hyperparameters\.{name} must not be set: it is derived"
    ):
        load(context(training__hyperparameters={"target": "churned", name: "4096"}))


def test_every_problem_is_reported_at_once_each_with_its_full_key() -> None:
    ctx = context(serving__memory_mb=64, capture__enabled="yes", monitoring__window_minutes=30, training="ml.m5")
    ctx["driftloop"]["data"]["registry"] = "registry/"
    del ctx["driftloop"]["retraining"]["on_alarm"]
    with pytest.raises(ConfigError) as raised:
        load(ctx)
    assert raised.value.problems == (
        "driftloop.training must be an object, got str",
        "unknown key driftloop.data.registry (known: access_log_expiry_days, artifact_expiry_days, artifact_prefix, "
        "assembled_prefix, athena_results_prefix, capture_expiry_days, capture_prefix, feedback_prefix, "
        "holdout_prefix, incomplete_upload_expiry_days, "
        "noncurrent_version_expiry_days, registry_prefix, report_prefix, training_data_prefix)",
        "driftloop.serving.memory_mb must be an integer from 128 to 10240, got 64",
        "driftloop.capture.enabled must be true or false, got 'yes'",
        "driftloop.monitoring.window_minutes must be at least driftloop.monitoring.schedule_minutes: otherwise "
        "captured predictions between two runs are never looked at",
        "driftloop.retraining.on_alarm is required",
    )
    assert str(raised.value).startswith("6 problems in the CDK context:\n  driftloop.training must be an object")


def test_a_stage_override_error_names_each_key_where_it_was_written() -> None:
    ctx = context("local")
    local = ctx["driftloop:stages"]["local"]
    local["serving"]["memory_mb"] = 64
    local["serving"]["memory"] = 512
    local["data"] = {"artifact_prefix": "registry/jobs/"}
    local["monitoring"]["drift_datapoints_to_alarm"] = 2
    with pytest.raises(ConfigError) as raised:
        load(ctx)
    assert raised.value.problems[0] == (
        "driftloop:stages.local.data.artifact_prefix must not lie under driftloop.data.registry_prefix"
    )
    assert raised.value.problems[1] == (
        "driftloop:stages.local.serving.memory_mb must be an integer from 128 to 10240, got 64"
    )
    assert raised.value.problems[2].startswith("unknown key driftloop:stages.local.serving.memory (known: ")
    assert raised.value.problems[3] == (
        "driftloop:stages.local.monitoring.drift_datapoints_to_alarm must not exceed "
        "driftloop:stages.local.monitoring.drift_evaluation_periods"
    )
    assert len(raised.value.problems) == 4


def test_rules_between_keys_of_one_section_are_all_reported() -> None:
    ctx = context()
    ctx["driftloop"]["monitoring"].update(
        {"drift_datapoints_to_alarm": 4, "quality_datapoints_to_alarm": 4, "window_minutes": 30}
    )
    with pytest.raises(ConfigError) as raised:
        load(ctx)
    assert [problem.split(" must ")[0] for problem in raised.value.problems] == [
        "driftloop.monitoring.drift_datapoints_to_alarm",
        "driftloop.monitoring.quality_datapoints_to_alarm",
        "driftloop.monitoring.window_minutes",
    ]


@pytest.mark.parametrize("share", [0, 1, 1.5])
def test_a_holdout_share_that_would_leave_nothing_to_judge_or_to_train_on_is_refused(share: float) -> None:
    with pytest.raises(ConfigError, match=r"driftloop\.training\.holdout_share must be a number between 0 and 1"):
        load(context(training__holdout_share=share))


def client(name: str, rate: float, burst: int, **more: object) -> dict[str, object]:
    """A client whose /feedback limits are a fifth of its own."""
    return {
        "name": name,
        "rate_limit": rate,
        "burst_limit": burst,
        "feedback_rate_limit": rate / 5,
        "feedback_burst_limit": max(1, burst // 5),
        **more,
    }


def test_the_default_deployment_has_one_client_with_todays_stage_limits_and_quota() -> None:
    [default] = load(context()).serving.clients
    assert (default.name, default.rate_limit, default.burst_limit, default.quota_per_day) == (
        "default",
        50,
        100,
        100000,
    )
    assert (default.feedback_rate_limit, default.feedback_burst_limit) == (10, 20)
    assert load(context()).serving.allowed_principals == ()


def test_clients_are_read_from_a_list_with_an_optional_quota() -> None:
    clients = [client("churn-app", 30, 60, quota_per_day=1000), client("reports", 10, 20)]
    config = load(context(serving__clients=clients))
    assert [(c.name, c.rate_limit, c.quota_per_day) for c in config.serving.clients] == [
        ("churn-app", 30, 1000),
        ("reports", 10, None),
    ]


def test_the_clients_rates_together_must_fit_in_the_stage_throttle_so_none_takes_anothers_share() -> None:
    with pytest.raises(ConfigError) as raised:
        load(context(serving__clients=[client("churn-app", 40, 60), client("reports", 20, 50)]))
    assert raised.value.problems == (
        "driftloop.serving.clients rate_limit adds up to 60 over the clients, more than "
        "driftloop.serving.throttle_rate_limit: a client at its limit would take the others' share of the stage",
        "driftloop.serving.clients burst_limit adds up to 110 over the clients, more than "
        "driftloop.serving.throttle_burst_limit: a client at its limit would take the others' share of the stage",
        "driftloop.serving.clients feedback_rate_limit adds up to 12 over the clients, more than "
        "driftloop.serving.feedback_throttle_rate_limit: a client at its limit would take the others' share of the "
        "stage",
        "driftloop.serving.clients feedback_burst_limit adds up to 22 over the clients, more than "
        "driftloop.serving.feedback_throttle_burst_limit: a client at its limit would take the others' share of the "
        "stage",
    )


def test_the_clients_rates_must_not_need_more_than_the_reserved_concurrency_at_the_alarmed_latency() -> None:
    ctx = context(serving__reserved_concurrency=10, monitoring__api_p99_latency_ms=2000)
    ctx["driftloop"]["serving"]["clients"] = [client("churn-app", 4, 10), client("reports", 2, 10)]
    with pytest.raises(ConfigError) as raised:
        load(ctx)
    assert raised.value.problems == (
        "driftloop.serving.clients rate_limit adds up to 6 requests/s over the clients: at "
        "driftloop.monitoring.api_p99_latency_ms that needs 12 concurrent invocations, more than "
        "driftloop.serving.reserved_concurrency (lower the rates or raise it)",
    )
    ctx["driftloop"]["serving"]["clients"] = [client("churn-app", 3, 10), client("reports", 2, 10)]
    assert load(ctx).serving.reserved_concurrency == 10
    # Unreserved, the function draws on the account's pool: nothing to check against.
    del ctx["driftloop"]["serving"]["reserved_concurrency"]
    ctx["driftloop"]["serving"]["clients"] = [client("churn-app", 40, 10)]
    assert load(ctx).serving.reserved_concurrency is None


def test_a_clients_feedback_limits_must_not_exceed_its_own() -> None:
    with pytest.raises(ConfigError) as raised:
        load(context(serving__clients=[{**client("reports", 10, 20), "feedback_rate_limit": 11}]))
    assert raised.value.problems == (
        "driftloop.serving.clients.0.feedback_rate_limit must not exceed driftloop.serving.clients.0.rate_limit",
    )


def test_client_names_are_unique_and_each_error_names_the_client_by_its_index_where_it_was_written() -> None:
    ctx = context("local")
    ctx["driftloop:stages"]["local"]["serving"]["clients"] = [
        client("reports", 10, 20),
        client("reports", 10, 20),
        {**client("Bad_Name", 1, 1), "quota": 5},
    ]
    with pytest.raises(ConfigError) as raised:
        load(ctx)
    assert raised.value.problems[0] == (
        "driftloop:stages.local.serving.clients.2.name must be lowercase letters, digits and '-', got 'Bad_Name'"
    )
    assert raised.value.problems[1].startswith(
        "unknown key driftloop:stages.local.serving.clients.2.quota (known: burst_limit, feedback_burst_limit, "
        "feedback_rate_limit, name, quota_per_day, rate_limit)"
    )
    ctx["driftloop:stages"]["local"]["serving"]["clients"].pop()
    with pytest.raises(ConfigError) as raised:
        load(ctx)
    assert raised.value.problems == (
        "driftloop:stages.local.serving.clients.1.name must be unique: "
        "driftloop:stages.local.serving.clients.0.name is also 'reports'",
    )


@pytest.mark.parametrize(
    ("clients", "problem"),
    [
        ([], "driftloop.serving.clients must list at least one client: every request carries a client's API key"),
        ({"name": "default"}, "driftloop.serving.clients must be a list, got dict"),
    ],
)
def test_there_is_at_least_one_client_in_a_list(clients: object, problem: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load(context(serving__clients=clients))
    assert raised.value.problems == (problem,)


def test_allowed_principals_are_iam_role_or_user_arns() -> None:
    roles = ["arn:aws:iam::123456789012:role/team/labeller", "arn:aws:iam::123456789012:user/ops"]
    assert load(context(serving__allowed_principals=roles)).serving.allowed_principals == tuple(roles)
    with pytest.raises(ConfigError) as raised:
        load(context(serving__allowed_principals=[roles[0], "arn:aws:sts::123456789012:assumed-role/labeller/s"]))
    assert raised.value.problems == (
        "driftloop.serving.allowed_principals.1 must be an IAM role or user ARN, got "
        "'arn:aws:sts::123456789012:assumed-role/labeller/s'",
    )
