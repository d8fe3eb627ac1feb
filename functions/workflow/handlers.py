"""Lambda entry points of the training state machine: parse the event, call the step, log and return its JSON.

Powertools' Logger writes structured JSON; its service and level come from the environment contract
(``POWERTOOLS_SERVICE_NAME``, ``POWERTOOLS_LOG_LEVEL``), which it reads itself. The workflow publishes no metric:
its record is the registry's decisions.
"""

from __future__ import annotations

import os
from functools import cache
from typing import TYPE_CHECKING, Any

import boto3
from aws_lambda_powertools import Logger

from functions.common.athena import Athena, lambda_deadline
from functions.common.registry import Registry
from functions.workflow import approver, steps
from functions.workflow.model_packages import ModelPackages
from functions.workflow.settings import ApprovalSettings, WorkflowSettings
from functions.workflow.state import ApprovalEvent, RunState, StepEvent

if TYPE_CHECKING:
    from mypy_boto3_athena import AthenaClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_sns import SNSClient

logger = Logger()

# Athena queries get the function's remaining time less this: enough to stop the query and fail the step with
# Athena's reason rather than Lambda's timeout.
QUERY_MARGIN_SECONDS = 5


@cache
def _settings() -> WorkflowSettings:
    return WorkflowSettings.from_env()


@cache
def _approval_settings() -> ApprovalSettings:
    return ApprovalSettings.from_env()


@cache
def _s3() -> S3Client:
    return boto3.client("s3")


@cache
def _athena_client() -> AthenaClient:
    return boto3.client("athena")


def _athena(context: Any) -> Athena:
    """Athena for this invocation: its queries must finish before the function would time out."""
    settings = _settings()
    deadline = lambda_deadline(context, QUERY_MARGIN_SECONDS)
    return Athena(_athena_client(), settings.athena_workgroup, settings.glue_database, deadline)


@cache
def _sns() -> SNSClient:
    return boto3.client("sns")


@cache
def _packages() -> ModelPackages:
    sagemaker: SageMakerClient = boto3.client("sagemaker")
    return ModelPackages(sagemaker)


def _registry() -> Registry:
    settings = _settings()
    return Registry(_s3(), settings.model_bucket, settings.registry_prefix)


def _log(step: str, result: dict[str, Any]) -> dict[str, Any]:
    logger.info("step finished", step=step, result=result)
    return result


def guard(event: dict[str, Any], context: Any) -> dict[str, Any]:
    result = steps.guard(_settings(), _s3(), _registry(), StepEvent.parse(event))
    return _log("guard", result.to_json())


def assemble(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return _log("assemble", steps.plan_assembly_step(_settings(), _s3(), _athena(context), RunState.parse(event)))


def finish_assembly(event: dict[str, Any], context: Any) -> dict[str, Any]:
    result = steps.finish_assembly_step(_settings(), _s3(), _athena(context), RunState.parse(event))
    return _log("finish_assembly", result)


def hold_out(event: dict[str, Any], context: Any) -> dict[str, Any]:
    # Imported here: only the HoldOut function's bundle carries pyarrow.
    from functions.workflow.holdout import hold_out_step

    return _log("hold_out", hold_out_step(_settings(), _s3(), RunState.parse(event)).to_json())


def evaluate(event: dict[str, Any], context: Any) -> dict[str, Any]:
    # Imported here: only the Evaluate function's bundle carries onnxruntime.
    from functions.workflow.evaluation import evaluate as evaluate_step

    return _log("evaluate", evaluate_step(_settings(), _s3(), _registry(), RunState.parse(event)).to_json())


def prepare(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return _log("prepare", steps.prepare(_settings(), _registry(), RunState.parse(event)).to_json())


def register(event: dict[str, Any], context: Any) -> dict[str, Any]:
    result = steps.register(_settings(), _s3(), _registry(), RunState.parse(event), _packages())
    return _log("register", result.to_json())


def promote(event: dict[str, Any], context: Any) -> dict[str, Any]:
    result = steps.promote(_registry(), RunState.parse(event), _approver, _packages())
    return _log("promote", result.to_json())


def _approver(proof: str | None, answer: approver.Answer) -> str:
    """Who signed the proof of an approval or a denial, asked of this function's own STS endpoint (the runtime's
    region)."""
    return approver.verify(proof, answer, approver.sts_endpoint(os.environ, os.environ.get("AWS_REGION")))


def request_approval(event: dict[str, Any], context: Any) -> None:
    """A ``.waitForTaskToken`` invoke: publish, return nothing. The state machine waits for the operator's
    ``driftloop approve`` / ``deny``, which completes the task."""
    request = ApprovalEvent.parse(event)
    message_id = steps.request_approval(_approval_settings().topic_arn, _sns(), request)
    _log("request_approval", {"message_id": message_id})


def reject(event: dict[str, Any], context: Any) -> dict[str, Any]:
    result = steps.reject(_registry(), RunState.parse(event), _approver, _packages())
    return _log("reject", result.to_json())


def record_failure(event: dict[str, Any], context: Any) -> dict[str, Any]:
    failed = StepEvent.parse(event)
    return _log("record_failure", steps.record_failure(_registry(), failed.state, failed.execution_id).to_json())


def release(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return _log("release", steps.release(_settings(), _s3(), StepEvent.parse(event)).to_json())
