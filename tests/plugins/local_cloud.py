"""Fixtures for tests against a real local AWS (LocalStack without Docker, ``localcloud/cloud.py``).

- ``local_cloud`` (session): ONE managed LocalStack instance for the whole test session, started on first use on a
  free port with its own directory (``.cache/localstack/pytest-<pid>``), stopped and removed at the end (set
  ``DRIFTLOOP_KEEP_LOCAL_CLOUD=1`` to keep its directory and log). It is a :class:`localcloud.cloud.Cloud`:
  ``endpoint``, ``port``, ``pid``, ``dir``, ``log_file``, ``client_env()``. Skipped, not failed, when the LocalStack
  venv is absent (``make local-setup`` builds it); with ``DRIFTLOOP_LOCAL_ENDPOINT`` set it is that external
  endpoint instead (``managed`` is False: nothing is started, and tests of driftloop's extension skip).
- ``local_client``: ``local_client("s3")`` is a boto3 client for the local cloud (path-style S3, dummy credentials);
  ``boto3_client(cloud, "s3")`` is the same outside a function-scoped test.
- ``local_aws_env``: points the process's AWS environment variables at the local cloud for one test, for code that
  builds its own clients.

Mark tests that use them ``@pytest.mark.integration``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from localcloud import cloud

KEEP_VARIABLE = "DRIFTLOOP_KEEP_LOCAL_CLOUD"
START_TIMEOUT_SECONDS = 120.0
PREFIX = "pytest-"


@pytest.fixture(scope="session")
def local_cloud() -> Iterator[cloud.Cloud]:
    if cloud.external_endpoint() is not None:
        try:
            yield cloud.start()
        except cloud.LocalCloudError as exc:
            pytest.fail(str(exc))
        return
    try:
        cloud.check_setup()
    except cloud.SetupMissing as exc:
        pytest.skip(f"no local AWS: {exc}")
    _clean_up_after_dead_sessions()
    name = f"{PREFIX}{os.getpid()}"
    try:
        running = cloud.start(name, port=0, timeout=START_TIMEOUT_SECONDS)
    except cloud.LocalCloudError as exc:
        cloud.stop(name)
        pytest.fail(f"the local AWS did not start: {exc}")
    try:
        yield running
    finally:
        cloud.stop(name)
        if not os.environ.get(KEEP_VARIABLE):
            cloud.remove(name)


def unique(prefix: str) -> str:
    """A resource or execution name no other test (or earlier session on the same instance) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def boto3_client(running: cloud.Cloud, service: str, **overrides: Any) -> Any:
    """A boto3 client for a local cloud: its endpoint, dummy credentials, path-style S3, few retries."""
    import boto3
    from botocore.config import Config

    env = running.client_env()
    settings: dict[str, Any] = {
        "endpoint_url": running.endpoint,
        "region_name": env["AWS_DEFAULT_REGION"],
        "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
        "config": Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}, read_timeout=120),
    }
    settings.update(overrides)
    make: Any = boto3.client
    return make(service, **settings)


@pytest.fixture
def local_client(local_cloud: cloud.Cloud) -> Callable[..., Any]:
    def make(service: str, **overrides: Any) -> Any:
        return boto3_client(local_cloud, service, **overrides)

    return make


@pytest.fixture
def local_aws_env(local_cloud: cloud.Cloud, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    env = local_cloud.client_env()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def _clean_up_after_dead_sessions() -> None:
    """A test session that was killed leaves its instance running: stop those whose pytest process is gone."""
    for name in cloud.instance_names():
        suffix = name.removeprefix(PREFIX)
        if name.startswith(PREFIX) and suffix.isdigit() and not Path(f"/proc/{suffix}").exists():
            cloud.stop(name)
            if not os.environ.get(KEEP_VARIABLE):
                cloud.remove(name)
