"""Lambda entry points of the training state machine: parse, call the step, return JSON."""

from __future__ import annotations

import json
import logging
import os
from functools import cache
from typing import TYPE_CHECKING, Any

import boto3

from functions.common.registry import Registry
from functions.workflow import steps
from functions.workflow.settings import APPROVAL_TOPIC_VARIABLE, WorkflowSettings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sns import SNSClient

logger = logging.getLogger("driftloop.workflow")
logger.setLevel(os.environ.get("LOG_LEVEL", "INFO"))


@cache
def _settings() -> WorkflowSettings:
    return WorkflowSettings.from_env()


@cache
def _s3() -> S3Client:
    return boto3.client("s3")


@cache
def _sns() -> SNSClient:
    return boto3.client("sns")


def _registry() -> Registry:
    settings = _settings()
    return Registry(_s3(), settings.model_bucket, settings.registry_prefix)


def _log(step: str, result: dict[str, Any]) -> dict[str, Any]:
    logger.info(json.dumps({"step": step, "result": result}, default=str))
    return result


def guard(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Input: ``{"execution_id": $$.Execution.Id, "started_at": $$.Execution.StartTime, "state": $}``."""
    return _log("guard", steps.guard(_settings(), _s3(), _registry(), event))


def assemble(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return _log("assemble", steps.assemble_data(_settings(), _s3(), event))


def prepare(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return _log("prepare", steps.prepare(_settings(), _registry(), event))


def register(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return _log("register", steps.register(_settings(), _s3(), _registry(), event))


def promote(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return _log("promote", steps.promote(_registry(), event))


def request_approval(event: dict[str, Any], context: Any) -> None:
    """Input: ``{"token": $$.Task.Token, "state": $}`` (a ``.waitForTaskToken`` invoke): publish, return nothing.

    The state machine waits for the operator's ``driftloop approve`` / ``deny``, which completes the task.
    """
    topic_arn = os.environ.get(APPROVAL_TOPIC_VARIABLE, "")
    message_id = steps.request_approval(topic_arn, _sns(), event)
    _log("request_approval", {"message_id": message_id})


def reject(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return _log("reject", steps.reject(_registry(), event))


def record_failure(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Input: ``{"execution_id": $$.Execution.Id, "state": $}``."""
    result = steps.record_failure(_registry(), event.get("state") or {}, event.get("execution_id"))
    return _log("record_failure", result)


def release(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Input: ``{"execution_id": $$.Execution.Id, "state": $}``."""
    return _log("release", steps.release(_settings(), _s3(), event))
