"""Lambda entry point of the scheduled monitor: read the run time from the event, run, log one summary line.

A run that raises publishes its failure (``UncoveredWindows`` = 1) and logs it before the function fails as
before, so Lambda's ``Errors`` metric and the asynchronous retries are unchanged. What cannot be published here
(a timeout, running out of memory, an environment that does not parse) is seen by its absence: the alarm treats a
missing ``UncoveredWindows`` as a window not covered.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any

import boto3
from aws_lambda_powertools import Logger

from functions.common.athena import Athena, lambda_deadline
from functions.common.text_values import parse_time
from functions.monitor.adapters import publish_metrics
from functions.monitor.metrics import Outcome, outcome_set
from functions.monitor.run import run_monitor
from functions.monitor.settings import MonitorSettings

if TYPE_CHECKING:
    from mypy_boto3_athena import AthenaClient
    from mypy_boto3_s3 import S3Client

# matplotlib writes its font cache under MPLCONFIGDIR; the Lambda file system is writable only under /tmp.
os.environ.setdefault("MPLCONFIGDIR", "/tmp/matplotlib")  # noqa: S108

# Athena queries get the function's remaining time less this: enough to publish the failed run's metric and log.
REPORT_MARGIN_SECONDS = 15

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


@cache
def _athena_client() -> AthenaClient:
    return boto3.client("athena")


def athena(settings: MonitorSettings, context: Any) -> Athena:
    """Athena for this invocation: its queries must finish before the function would time out."""
    deadline = lambda_deadline(context, REPORT_MARGIN_SECONDS)
    return Athena(_athena_client(), settings.athena_workgroup, settings.glue_database, deadline)


@logger.inject_lambda_context
def handler(event: Any, context: Any) -> dict[str, Any]:
    settings, now = _settings(), run_time(event)
    # The dashboard's "Monitor runs" table queries these lines by their message and the summary's keys.
    try:
        summary = run_monitor(settings, now, _s3(), athena(settings, context))
    except Exception:
        publish_metrics([outcome_set(Outcome.FAILED, settings.service)], now)
        logger.exception("monitor run", extra={"status": "failed", "outcome": Outcome.FAILED, "time": now.isoformat()})
        raise
    logger.info("monitor run", extra=summary)
    return summary
