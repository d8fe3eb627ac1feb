"""Lambda entry point of the scheduled monitor: read the run time from the event, run, log one summary line."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any

import boto3

from functions.monitor.adapters import parse_time
from functions.monitor.run import run_monitor
from functions.monitor.settings import MonitorSettings

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_s3 import S3Client

# matplotlib writes its font cache under MPLCONFIGDIR; the Lambda file system is writable only under /tmp.
os.environ.setdefault("MPLCONFIGDIR", "/tmp/matplotlib")  # noqa: S108


@cache
def _settings() -> MonitorSettings:
    return MonitorSettings.from_env()


@cache
def _s3() -> S3Client:
    return boto3.client("s3")


@cache
def _cloudwatch() -> CloudWatchClient:
    return boto3.client("cloudwatch")


def run_time(event: Any) -> datetime:
    """The scheduled time of an EventBridge event (so a retried run reads the same window), else now."""
    moment = parse_time(event.get("time")) if isinstance(event, dict) else None
    return moment or datetime.now(UTC)


def handler(event: Any, context: Any) -> dict[str, Any]:
    summary = run_monitor(_settings(), run_time(event), _s3(), _cloudwatch())
    print(json.dumps({"message": "monitor run", **summary}, default=str), flush=True)
    return summary
