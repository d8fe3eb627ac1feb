"""The managed local AWS for real: LocalStack (no Docker) with driftloop's extension, through the ``local_cloud``
fixture. Each extension test fails on stock LocalStack: S3 bytes land under /tmp/localstack-s3-storage there, and
Lambda creation downloads a runtime from GitHub and pulls a Docker image (the function ends up ``Failed``)."""

from __future__ import annotations

import base64
import io
import json
import os
import time
import uuid
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from localcloud import cloud
from tests.plugins.local_cloud import boto3_client

pytestmark = pytest.mark.integration

Client = Callable[..., Any]
ROLE = "arn:aws:iam::000000000000:role/driftloop-test-lambda"
STOCK_S3_STORAGE = Path("/tmp/localstack-s3-storage")  # LocalStack's hard-coded path, checked absent

HANDLER = """
import json, os, sys, time

import boto3

print("cold start", os.getpid())


def handler(event, context):
    action = event.get("action")
    print("handling", context.aws_request_id, json.dumps(event))
    if action == "fail":
        raise ValueError("asked to fail")
    if action == "sleep":
        time.sleep(event["seconds"])
    if action == "exit":
        sys.stdout.flush()
        os._exit(3)
    s3 = boto3.client("s3")
    s3.put_object(Bucket=event["bucket"], Key="from-lambda.txt", Body=context.function_name.encode())
    read = s3.get_object(Bucket=event["bucket"], Key=event["key"])["Body"].read().decode()
    return {
        "event": event,
        "greeting": os.environ["GREETING"],
        "read": read,
        "endpoint": os.environ.get("AWS_ENDPOINT_URL"),
        "python": sys.executable,
        "version": list(sys.version_info[:2]),
        "parent_pid": os.getppid(),
        "function": context.function_name,
        "memory": context.memory_limit_in_mb,
        "remaining_ms": context.get_remaining_time_in_millis(),
    }
"""


def zipped(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def managed(local_cloud: cloud.Cloud) -> cloud.Cloud:
    if not local_cloud.managed:
        pytest.skip("tests driftloop's extension: needs the managed local AWS, not DRIFTLOOP_LOCAL_ENDPOINT")
    return local_cloud


def create_function(local_client: Client, code: dict[str, str], handler: str = "app.handler", timeout: int = 3) -> str:
    name = f"it-{uuid.uuid4().hex[:8]}"
    lambda_ = local_client("lambda")
    lambda_.create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=ROLE,
        Handler=handler,
        Code={"ZipFile": zipped(code)},
        Timeout=timeout,
        MemorySize=256,
        Environment={"Variables": {"GREETING": "hello from the function's configuration"}},
    )
    lambda_.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 100})
    return name


def invoke(local_client: Client, name: str, event: dict[str, Any]) -> tuple[dict[str, Any], Any, str]:
    answer = local_client("lambda").invoke(FunctionName=name, Payload=json.dumps(event).encode(), LogType="Tail")
    logs = base64.b64decode(answer.get("LogResult") or b"").decode()
    return json.loads(answer["Payload"].read()), answer.get("FunctionError"), logs


@pytest.fixture(scope="module")
def bucket(local_cloud: cloud.Cloud) -> str:
    s3 = boto3_client(local_cloud, "s3")
    name = f"driftloop-it-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="input.txt", Body=b"written by the test")
    return name


@pytest.fixture(scope="module")
def function(local_cloud: cloud.Cloud, bucket: str) -> str:
    running = managed(local_cloud)
    return create_function(lambda service: boto3_client(running, service), {"app.py": HANDLER})


# -- the instance -------------------------------------------------------------------------------------------------


def test_health_and_extension(local_cloud: cloud.Cloud) -> None:
    health = cloud.fetch_json(f"{local_cloud.endpoint}/_localstack/health")
    assert health is not None
    assert health["version"] == "2026.3.0"
    for service in ("s3", "lambda", "logs", "stepfunctions", "sqs", "sns", "cloudformation"):
        assert health["services"][service] in ("available", "running"), service
    running = managed(local_cloud)
    info = cloud.check_extension(running)
    assert info["lambda"]["executor"] == "driftloop-process"
    assert running.dir is not None
    assert info["s3"] == {"provider": "driftloop", "ours": "driftloop", "storage_dir": str(running.dir / "s3")}
    assert running.pid is not None
    assert cloud.process_alive(running.pid)
    assert cloud.status(running.name).state == "running"


def test_s3_bytes_land_under_the_instance_directory(local_cloud: cloud.Cloud, local_client: Client) -> None:
    running = managed(local_cloud)
    assert running.dir is not None
    assert running.pid is not None
    s3 = local_client("s3")
    name = f"driftloop-bytes-{uuid.uuid4().hex[:8]}"
    body = os.urandom(1024 * 1024)  # over LocalStack's 512 KiB in-memory threshold: spooled to a file
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="blob", Body=body)
    assert s3.get_object(Bucket=name, Key="blob")["Body"].read() == body

    storage = running.dir / "s3"
    assert (storage / name).is_dir()
    assert not (STOCK_S3_STORAGE / name).exists()
    # The object's file is an unlinked temporary file held open by LocalStack: find it through /proc and compare.
    holders = []
    for descriptor in Path(f"/proc/{running.pid}/fd").iterdir():
        try:
            target = str(descriptor.readlink())
        except OSError:
            continue
        if target.startswith(f"{storage / name}/"):
            holders.append(descriptor)
        assert not target.startswith(str(STOCK_S3_STORAGE)), target
    assert any(descriptor.read_bytes() == body for descriptor in holders)


# -- Lambda ---------------------------------------------------------------------------------------------------------


def test_python_lambda_runs_as_a_local_process(
    local_cloud: cloud.Cloud, local_client: Client, function: str, bucket: str
) -> None:
    running = managed(local_cloud)
    event = {"bucket": bucket, "key": "input.txt", "nested": {"n": [1, 2]}}
    result, error, logs = invoke(local_client, function, event)
    assert error is None, result
    assert result["event"] == event
    assert result["greeting"] == "hello from the function's configuration"
    # boto3 inside the function reached the same LocalStack through AWS_ENDPOINT_URL.
    assert result["endpoint"] == running.endpoint
    assert result["read"] == "written by the test"
    written = local_client("s3").get_object(Bucket=bucket, Key="from-lambda.txt")["Body"].read()
    assert written == function.encode()
    # The executor is ours: the Lambda runtime venv's Python 3.12, a child of the LocalStack process (no container).
    assert result["python"] == str(cloud.Layout().lambda_python)
    assert result["version"] == [3, 12]
    assert result["parent_pid"] == running.pid
    assert (result["function"], result["memory"]) == (function, "256")
    assert 0 < result["remaining_ms"] <= 3000
    assert "handling" in logs
    assert "REPORT RequestId" in logs


def test_handler_errors_propagate(local_client: Client, function: str) -> None:
    result, error, logs = invoke(local_client, function, {"action": "fail"})
    assert error == "Unhandled"
    assert result["errorType"] == "ValueError"
    assert result["errorMessage"] == "asked to fail"
    assert result["stackTrace"]
    assert "[ERROR] ValueError: asked to fail" in logs


def test_timeout_then_a_fresh_environment(local_client: Client, function: str, bucket: str) -> None:
    started = time.monotonic()
    result, error, logs = invoke(local_client, function, {"action": "sleep", "seconds": 60})
    assert time.monotonic() - started < 15
    assert error == "Unhandled"
    assert result["errorType"] == "Sandbox.Timedout"
    assert result["errorMessage"].endswith("Error: Task timed out after 3.00 seconds")
    assert "Status: timeout" in logs
    result, error, _ = invoke(local_client, function, {"bucket": bucket, "key": "input.txt"})
    assert error is None, result


def test_runtime_exit_is_an_error(local_client: Client, function: str, bucket: str) -> None:
    result, error, _ = invoke(local_client, function, {"action": "exit"})
    assert error == "Unhandled"
    assert result["errorType"] == "Runtime.ExitError"
    result, error, _ = invoke(local_client, function, {"bucket": bucket, "key": "input.txt"})
    assert error is None, result


def test_import_error_is_reported_like_lambda(local_cloud: cloud.Cloud, local_client: Client) -> None:
    managed(local_cloud)
    name = create_function(local_client, {"app.py": "import not_installed_anywhere\n"})
    result, error, _ = invoke(local_client, name, {})
    assert error == "Unhandled"
    assert result["errorType"] == "Runtime.ImportModuleError"
    assert "not_installed_anywhere" in result["errorMessage"]


def test_logs_reach_cloudwatch(local_client: Client, function: str, bucket: str) -> None:
    invoke(local_client, function, {"bucket": bucket, "key": "input.txt", "marker": "find-me"})
    logs = local_client("logs")
    group = f"/aws/lambda/{function}"
    messages: list[str] = []
    for _ in range(50):
        streams = logs.describe_log_streams(logGroupName=group)["logStreams"] if _group_exists(logs, group) else []
        messages = [
            event["message"]
            for stream in streams
            for event in logs.get_log_events(logGroupName=group, logStreamName=stream["logStreamName"])["events"]
        ]
        if any("find-me" in message for message in messages):
            break
        time.sleep(0.2)
    text = "".join(messages)
    assert "find-me" in text
    assert "START RequestId:" in text
    assert "REPORT RequestId:" in text


def test_no_fallback_to_docker_and_no_download(local_cloud: cloud.Cloud, function: str) -> None:
    running = managed(local_cloud)
    log = (running.log_file.read_text() if running.log_file else "").lower()
    signs = (
        "invalid specified plugin name",  # an unknown LAMBDA_RUNTIME_EXECUTOR, silently replaced by "docker"
        "lambda-runtime-init",  # the binary the docker executor downloads (github.com/localstack/lambda-runtime-init)
        "aws-lambda-rie",
        "public.ecr.aws",  # the runtime image it pulls
        "pulling",
        "docker not available",
    )
    for sign in signs:
        assert sign not in log, sign


def _group_exists(logs: Any, group: str) -> bool:
    found = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
    return any(item["logGroupName"] == group for item in found)
