from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from functions.common.env import EnvError
from functions.common.registry import Registry
from functions.workflow import handlers, steps
from functions.workflow.settings import WorkflowSettings
from functions.workflow.state import APPROVAL_DENIED
from tests.inference.events import LambdaContext
from tests.plugins.aws import DATA_BUCKET, MODEL_BUCKET

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

ENV = {
    "POWERTOOLS_SERVICE_NAME": "driftloop-dev-workflow",
    "DRIFTLOOP_MODEL_BUCKET": MODEL_BUCKET,
    "DRIFTLOOP_REGISTRY_PREFIX": "registry/",
    "DRIFTLOOP_DATA_BUCKET": DATA_BUCKET,
    "DRIFTLOOP_TRAINING_DATA_PREFIX": "training-data/",
    "DRIFTLOOP_ARTIFACT_PREFIX": "training-jobs/",
    "DRIFTLOOP_JOB_PREFIX": "driftloop-dev",
    "DRIFTLOOP_HYPERPARAMETERS": '{"target": "churned"}',
    "DRIFTLOOP_ASSEMBLED_PREFIX": "assembled/",
    "DRIFTLOOP_CAPTURE_PREFIX": "captures/",
    "DRIFTLOOP_HOLDOUT_PREFIX": "holdouts/",
    "DRIFTLOOP_HOLDOUT_SHARE": "0.2",
    "GLUE_DATABASE": "driftloop_dev",
    "ATHENA_WORKGROUP": "driftloop-dev",
    "DRIFTLOOP_INCLUDE_FEEDBACK": "false",
    "DRIFTLOOP_FEEDBACK_MAX_AGE_DAYS": "30",
    "DRIFTLOOP_MAX_FEEDBACK_SHARE": "0.3",
    "DRIFTLOOP_NEW_VALUE_MIN_CALLERS": "3",
    "DRIFTLOOP_COOLDOWN_MINUTES": "60",
    "DRIFTLOOP_LOCK_TIMEOUT_SECONDS": "7200",
    "DRIFTLOOP_MODEL_PACKAGE_GROUP": "driftloop-dev",
}
EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:driftloop-dev-training:run-1"


@pytest.fixture
def lambda_env(monkeypatch: pytest.MonkeyPatch, s3: S3Client) -> Iterator[None]:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    clear_clients()
    yield
    clear_clients()


def clear_clients() -> None:
    for cached in (
        handlers._settings,
        handlers._approval_settings,
        handlers._s3,
        handlers._sns,
        handlers._athena_client,
        handlers._packages,
    ):
        cached.cache_clear()


def test_a_run_through_the_handlers_takes_the_lock_assembles_holds_out_prepares_and_releases(
    lambda_env: None, s3: S3Client
) -> None:
    s3.put_object(Bucket=DATA_BUCKET, Key="training-data/data.csv", Body=b"x,churned\n1,0\n")
    state: dict[str, Any] = {"trigger": {"source": "alarm", "alarm_name": "drift"}}

    state["guard"] = handlers.guard(
        {"execution_id": EXECUTION, "started_at": "2026-01-05T10:00:00Z", "state": state}, None
    )
    state["assembly_plan"] = handlers.assemble(state, LambdaContext())
    assert "unload" not in state["assembly_plan"]  # no feedback: the state machine goes on to HoldOut
    state["holdout"] = handlers.hold_out(state, LambdaContext())
    state["assembly"] = handlers.finish_assembly(state, LambdaContext())
    state["prepare"] = handlers.prepare(state, None)
    state["rejection"] = {"version": state["guard"]["version"]}
    released = handlers.release({"execution_id": EXECUTION, "state": state}, None)

    assert state["guard"]["acquired"] is True
    assert state["assembly"]["prefix"] == f"assembled/{state['guard']['version']}/"
    assert state["holdout"]["folder"] == f"holdouts/{state['guard']['version']}/rows/"
    assert state["holdout"]["counts"]["base"]["kept"] + state["holdout"]["counts"]["base"]["held"] == 1
    assert state["prepare"]["training_job_name"] == f"driftloop-dev-{state['guard']['version']}"
    assert state["prepare"]["hyperparameters"] == {"target": "churned"}
    assert state["prepare"]["trigger"] == {"source": "alarm", "alarm_name": "drift"}
    assert released == {"released": True, "outcome": "rejected", "message": f"released by {EXECUTION} (rejected)"}
    # The cooldown (60 minutes from the environment) now holds the next trigger back.
    skipped = handlers.guard({"execution_id": EXECUTION + "-2", "state": {"trigger": {"source": "schedule"}}}, None)
    assert skipped["acquired"] is False and skipped["reason"].startswith("cooldown")


def test_record_failure_handler_writes_a_failed_decision_under_the_execution(lambda_env: None) -> None:
    # Guard itself failed: the state holds no Guard result, only the error.
    event = {"execution_id": EXECUTION, "state": {"error": {"Error": "WorkflowError", "Cause": "pinned"}}}

    result = handlers.record_failure(event, None)

    assert result["message"].endswith("WorkflowError: pinned")
    [decision] = Registry(boto3.client("s3"), MODEL_BUCKET).decisions()
    assert (decision.action, decision.details["execution"]) == ("failed", EXECUTION)


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("DRIFTLOOP_MODEL_BUCKET", "", "DRIFTLOOP_MODEL_BUCKET is required"),
        ("DRIFTLOOP_HYPERPARAMETERS", "{not json", "DRIFTLOOP_HYPERPARAMETERS='{not json': must be a JSON object"),
        ("DRIFTLOOP_HYPERPARAMETERS", "[1]", "must be a JSON object"),
        ("DRIFTLOOP_INCLUDE_FEEDBACK", "maybe", "DRIFTLOOP_INCLUDE_FEEDBACK='maybe': must be true or false"),
        ("DRIFTLOOP_COOLDOWN_MINUTES", "-1", "DRIFTLOOP_COOLDOWN_MINUTES='-1': must be an integer >= 0"),
        ("DRIFTLOOP_LOCK_TIMEOUT_SECONDS", "2h", "must be an integer"),
        ("DRIFTLOOP_MAX_FEEDBACK_SHARE", "0", "DRIFTLOOP_MAX_FEEDBACK_SHARE must be a fraction in (0, 1], got 0.0"),
        ("DRIFTLOOP_MAX_FEEDBACK_SHARE", "1.5", "DRIFTLOOP_MAX_FEEDBACK_SHARE='1.5': must be a number between 0 and 1"),
        ("DRIFTLOOP_MAX_FEEDBACK_SHARE", "nan", "DRIFTLOOP_MAX_FEEDBACK_SHARE='nan': must be a number between 0 and 1"),
        ("DRIFTLOOP_MAX_FEEDBACK_SHARE", "a third", "DRIFTLOOP_MAX_FEEDBACK_SHARE='a third': must be a number"),
    ],
)
def test_settings_name_the_variable_that_is_wrong(name: str, value: str, problem: str) -> None:
    with pytest.raises(EnvError, match=re.escape(problem)):
        WorkflowSettings.from_env({**ENV, name: value})


def test_the_feedback_share_is_required_and_may_be_the_whole_training_set() -> None:
    # The stack always renders it: a default here could never apply.
    absent = {name: value for name, value in ENV.items() if name != "DRIFTLOOP_MAX_FEEDBACK_SHARE"}
    with pytest.raises(EnvError, match="DRIFTLOOP_MAX_FEEDBACK_SHARE is required"):
        WorkflowSettings.from_env(absent)
    assert WorkflowSettings.from_env(ENV).max_feedback_share == 0.3
    assert WorkflowSettings.from_env({**ENV, "DRIFTLOOP_MAX_FEEDBACK_SHARE": "1"}).max_feedback_share == 1.0


APPROVAL_STATE = {
    "guard": {"execution_id": EXECUTION, "version": "v20260105-100000-abcdef"},
    "prepare": {"training_job_name": "driftloop-dev-v20260105-100000-abcdef"},
    "registration": {
        "version": "v20260105-100000-abcdef",
        "passed": True,
        "reasons": ["no champion to compare with"],
        "metric": "roc_auc",
        "challenger": 0.91,
        "champion": None,
        "champion_version": None,
    },
}


def test_request_approval_publishes_the_request_with_its_token_to_the_approvals_topic(
    lambda_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    sns, sqs = boto3.client("sns"), boto3.client("sqs")
    topic = sns.create_topic(Name="approvals")["TopicArn"]
    queue = sqs.create_queue(QueueName="approvers")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    monkeypatch.setenv("DRIFTLOOP_APPROVAL_TOPIC_ARN", topic)

    handlers.request_approval({"token": "task-token-1", "state": APPROVAL_STATE}, None)

    [received] = sqs.receive_message(QueueUrl=queue)["Messages"]
    notification = json.loads(received["Body"])
    assert notification["Subject"] == "driftloop: approve promoting v20260105-100000-abcdef?"
    assert "driftloop approve --token task-token-1" in notification["Message"]


def test_request_approval_without_a_topic_names_the_variable(lambda_env: None) -> None:
    with pytest.raises(EnvError, match="DRIFTLOOP_APPROVAL_TOPIC_ARN is required"):
        handlers.request_approval({"token": "t", "state": APPROVAL_STATE}, None)


def test_request_approval_without_a_token_says_which(lambda_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTLOOP_APPROVAL_TOPIC_ARN", "arn:aws:sns:us-east-1:123456789012:approvals")

    with pytest.raises(steps.WorkflowError, match=r"task token \(\$\$\.Task\.Token\)"):
        handlers.request_approval({"state": APPROVAL_STATE}, None)


def test_reject_refuses_a_denial_without_a_proof_and_records_nothing(
    lambda_env: None, s3: S3Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    denial = {"Error": APPROVAL_DENIED, "Cause": "not this week"}

    with pytest.raises(steps.WorkflowError, match=r"the denial carries no proof of who sent it"):
        handlers.reject({**APPROVAL_STATE, "approval": denial}, None)
    assert s3.list_objects_v2(Bucket=MODEL_BUCKET).get("KeyCount") == 0


def test_a_step_logs_its_result_as_one_structured_json_line(lambda_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    written = io.StringIO()
    monkeypatch.setattr(handlers.logger.registered_handler, "stream", written)
    event = {"execution_id": EXECUTION, "state": {"error": {"Error": "WorkflowError", "Cause": "pinned"}}}

    result = handlers.record_failure(event, None)

    [line] = [json.loads(line) for line in written.getvalue().splitlines()]
    assert (line["level"], line["message"], line["step"]) == ("INFO", "step finished", "record_failure")
    assert line["result"] == result and "service" in line


# What the Evaluate, HoldOut and monitor bundles have and the workflow bundle does not (infra/bundling.py WORKFLOW).
NOT_IN_THE_WORKFLOW_BUNDLE = ("numpy", "pandas", "pyarrow", "onnxruntime", "sklearn", "scipy", "matplotlib", "orjson")


def test_the_workflow_steps_import_without_packages_their_bundle_does_not_ship() -> None:
    # The registry imports the model card only when it registers: import it too.
    code = f"""
import sys
class Absent:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {NOT_IN_THE_WORKFLOW_BUNDLE!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} in the workflow bundle")
sys.meta_path.insert(0, Absent())
import functions.workflow.handlers, functions.common.model_card
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
