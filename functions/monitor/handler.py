"""Lambda entry point of the scheduled monitor: read the run time from the event, run, log one summary line."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any

import boto3
from aws_lambda_powertools import Logger

from functions.monitor.adapters import parse_time
from functions.monitor.run import run_monitor
from functions.monitor.settings import MonitorSettings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# matplotlib writes its font cache under MPLCONFIGDIR; the Lambda file system is writable only under /tmp.
os.environ.setdefault("MPLCONFIGDIR", "/tmp/matplotlib")  # noqa: S108

# Service and level from the environment MonitorSettings declares (POWERTOOLS_SERVICE_NAME, POWERTOOLS_LOG_LEVEL).
logger = Logger()


@cache
def _settings() -> MonitorSettings:
    return MonitorSettings.from_env()


@cache
def _s3() -> S3Client:
    return boto3.client("s3")


def run_time(event: Any) -> datetime:
    """The scheduled time of an EventBridge event (so a retried run reads the same window), else now."""
    moment = parse_time(event.get("time")) if isinstance(event, dict) else None
    return moment or datetime.now(UTC)


@logger.inject_lambda_context
def handler(event: Any, context: Any) -> dict[str, Any]:
    summary = run_monitor(_settings(), run_time(event), _s3())
    # The dashboard's "Monitor runs" table queries these lines by their message and the summary's keys.
    logger.info("monitor run", extra=summary)
    return summary
