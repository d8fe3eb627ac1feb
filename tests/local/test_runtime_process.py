"""One Lambda execution environment as a local process (driftloop_localstack.runtime_process), with AWS's real
Runtime Interface Client in the Python 3.12 runtime venv, without LocalStack. Skipped when that venv is absent
(``make local-setup`` builds it)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from driftloop_localstack.runtime_process import (
    EnvironmentStopped,
    FunctionSpec,
    InitError,
    RuntimeProcess,
    report_line,
    runtime_environment,
)

from localcloud.cloud import Layout

LAMBDA_PYTHON = Layout().lambda_python

HANDLER = """
import json, os, sys, time

print("init output")
COLD = {"pid": os.getpid()}


def handler(event, context):
    action = event.get("action")
    print("handling", context.aws_request_id)
    if action == "fail":
        raise ValueError("asked to fail")
    if action == "sleep":
        time.sleep(event["seconds"])
    if action == "exit":
        sys.stdout.flush()
        os._exit(3)
    if action == "shout":
        print("x" * event["bytes"])
    return {
        "event": event,
        "pid": COLD["pid"],
        "function": context.function_name,
        "memory": context.memory_limit_in_mb,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "arn": context.invoked_function_arn,
        "env": {name: os.environ.get(name) for name in ("GREETING", "HOME", "TMPDIR", "LAMBDA_TASK_ROOT",
                                                         "AWS_EXECUTION_ENV", "GATEWAY_LISTEN", "_HANDLER")},
        "python": sys.executable,
        "version": list(sys.version_info[:2]),
        "cwd": os.getcwd(),
    }
"""

# These run the Lambda runtime venv that `make local-setup` builds: with the integration tests, which `make
# integration` runs after building it (a missing venv is then a failure, not a skip).
needs_runtime = pytest.mark.integration


def make_spec(tmp_path: Path, handler: str = "app.handler", timeout: float = 3.0, code: str = HANDLER) -> FunctionSpec:
    code_dir = tmp_path / "code"
    code_dir.mkdir(exist_ok=True)
    (code_dir / "app.py").write_text(code)
    return FunctionSpec(
        function_name="fn",
        handler=handler,
        code_dir=code_dir,
        python=LAMBDA_PYTHON,
        timeout_seconds=timeout,
        memory_mb=256,
        work_dir=tmp_path / "work",
        environment={"GREETING": "hello", "GATEWAY_LISTEN": "must-not-leak-but-is-the-functions-own"},
    )


@pytest.fixture
def process(tmp_path: Path) -> Iterator[RuntimeProcess]:
    runtime = RuntimeProcess(make_spec(tmp_path))
    yield runtime
    runtime.stop()


def call(process: RuntimeProcess, request_id: str, event: dict[str, Any]) -> tuple[Any, bool, str]:
    result = process.invoke(request_id, json.dumps(event).encode(), "arn:aws:lambda:us-east-1:000000000000:function:fn")
    assert result.request_id == request_id
    return json.loads(result.payload), result.is_error, result.logs


# -- pure helpers ------------------------------------------------------------------------------------------------


def test_runtime_environment_reserves_lambda_variables(tmp_path: Path) -> None:
    spec = make_spec(tmp_path)
    env = runtime_environment(spec, "127.0.0.1:9001")
    assert env["AWS_LAMBDA_RUNTIME_API"] == "127.0.0.1:9001"
    assert env["PYTHONPATH"].split(":")[0] == str(spec.code_dir)
    assert env["LAMBDA_TASK_ROOT"] == str(spec.code_dir)
    assert env["_HANDLER"] == "app.handler"
    assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.12"
    assert env["HOME"] == env["TMPDIR"] == str(spec.work_dir)
    assert env["GREETING"] == "hello"
    assert env["PATH"].startswith(str(LAMBDA_PYTHON.parent))
    # Nothing from the calling process (LocalStack's own configuration, its venv) is inherited.
    assert "VIRTUAL_ENV" not in env
    assert "PYTEST_CURRENT_TEST" not in env


def test_function_variables_cannot_override_reserved_ones(tmp_path: Path) -> None:
    spec = make_spec(tmp_path)
    spec = FunctionSpec(**{**spec.__dict__, "environment": {"AWS_LAMBDA_RUNTIME_API": "evil", "_HANDLER": "x.y"}})
    env = runtime_environment(spec, "127.0.0.1:1")
    assert env["AWS_LAMBDA_RUNTIME_API"] == "127.0.0.1:1"
    assert env["_HANDLER"] == "app.handler"


def test_report_line_is_lambdas_format() -> None:
    line = report_line("r1", 12.345, 128, 40, init_ms=100.5, status="timeout")
    assert line == (
        "REPORT RequestId: r1\tDuration: 12.35 ms\tBilled Duration: 113 ms\tMemory Size: 128 MB\t"
        "Max Memory Used: 40 MB\tInit Duration: 100.50 ms\tStatus: timeout\t\n"
    )


# -- the real runtime --------------------------------------------------------------------------------------------


@needs_runtime
def test_invoke_runs_the_handler_under_awslambdaric(process: RuntimeProcess, tmp_path: Path) -> None:
    process.start()
    result, is_error, logs = call(process, "r1", {"n": 1})
    assert not is_error
    assert result["event"] == {"n": 1}
    assert result["function"] == "fn"
    assert result["memory"] == "256"
    assert 0 < result["remaining_ms"] <= 3000
    assert result["python"] == str(LAMBDA_PYTHON)
    assert result["version"] == [3, 12]
    assert result["cwd"] == str(tmp_path / "code")
    assert result["env"]["GREETING"] == "hello"
    assert result["env"]["HOME"] == str(tmp_path / "work")
    # Lambda-shaped log block: init output, START, the handler's output, END, REPORT with the init duration.
    lines = logs.splitlines()
    assert lines[0].startswith("INIT_START Runtime Version: python3.12")
    assert lines[1] == "init output"
    assert lines[2] == "START RequestId: r1 Version: $LATEST"
    assert lines[3] == "handling r1"
    assert lines[4] == "END RequestId: r1"
    assert lines[5].startswith("REPORT RequestId: r1\tDuration: ")
    assert "Init Duration: " in lines[5]
    # Warm: same process, no init in the second report.
    second, _, logs = call(process, "r2", {"n": 2})
    assert second["pid"] == result["pid"]
    assert logs.splitlines()[0] == "START RequestId: r2 Version: $LATEST"
    assert "Init Duration" not in logs


@needs_runtime
def test_handler_exception_is_a_lambda_error(process: RuntimeProcess) -> None:
    process.start()
    error, is_error, logs = call(process, "r1", {"action": "fail"})
    assert is_error
    assert error["errorType"] == "ValueError"
    assert error["errorMessage"] == "asked to fail"
    assert error["stackTrace"]
    assert "[ERROR] ValueError: asked to fail" in logs
    # The environment survives a handled error.
    assert not call(process, "r2", {})[1]


@needs_runtime
def test_timeout_kills_the_runtime_and_the_next_call_starts_a_new_one(tmp_path: Path) -> None:
    process = RuntimeProcess(make_spec(tmp_path, timeout=1.0))
    try:
        process.start()
        first_pid = process.pid
        started = time.monotonic()
        error, is_error, logs = call(process, "r1", {"action": "sleep", "seconds": 30})
        elapsed = time.monotonic() - started
        assert is_error
        assert error == {
            "errorType": "Sandbox.Timedout",
            "errorMessage": "RequestId: r1 Error: Task timed out after 1.00 seconds",
        }
        assert 1.0 <= elapsed < 3.0
        assert "Task timed out after 1.00 seconds" in logs
        assert "Status: timeout" in logs
        _, is_error, logs = call(process, "r2", {"n": 2})
        assert not is_error
        assert process.pid != first_pid
        assert "Init Duration" in logs
    finally:
        process.stop()


@needs_runtime
def test_runtime_exit_is_reported_and_recovered(process: RuntimeProcess) -> None:
    process.start()
    error, is_error, logs = call(process, "r1", {"action": "exit"})
    assert is_error
    assert error["errorType"] == "Runtime.ExitError"
    assert error["errorMessage"] == "RequestId: r1 Error: Runtime exited with error: exit status 3"
    assert "handling r1" in logs
    assert not call(process, "r2", {})[1]


@needs_runtime
def test_import_error_fails_the_init_like_lambda(tmp_path: Path) -> None:
    process = RuntimeProcess(make_spec(tmp_path, code="import not_installed_anywhere\n"))
    try:
        with pytest.raises(InitError) as caught:
            process.start()
        document = json.loads(caught.value.payload)
        assert document["errorType"] == "Runtime.ImportModuleError"
        assert "not_installed_anywhere" in document["errorMessage"]
        assert "not_installed_anywhere" in caught.value.logs
    finally:
        process.stop()


@needs_runtime
def test_missing_handler_function(tmp_path: Path) -> None:
    process = RuntimeProcess(make_spec(tmp_path, handler="app.nope"))
    try:
        with pytest.raises(InitError) as caught:
            process.start()
        assert json.loads(caught.value.payload)["errorType"] == "Runtime.HandlerNotFound"
    finally:
        process.stop()


@needs_runtime
def test_large_output_is_collected_while_the_handler_runs(process: RuntimeProcess) -> None:
    process.start()
    # More than a pipe buffer: the handler would block forever if nobody read during the invocation.
    _, is_error, logs = call(process, "r1", {"action": "shout", "bytes": 300_000})
    assert not is_error
    assert "x" * 300_000 in logs


@needs_runtime
def test_stop_interrupts_an_invocation(process: RuntimeProcess) -> None:
    process.start()
    threading.Timer(0.5, process.stop).start()
    with pytest.raises(EnvironmentStopped):
        call(process, "r1", {"action": "sleep", "seconds": 30})
    assert process.pid is not None
    with pytest.raises(EnvironmentStopped):
        call(process, "r2", {})


@needs_runtime
def test_logs_keep_the_whole_environment(process: RuntimeProcess) -> None:
    process.start()
    call(process, "r1", {})
    call(process, "r2", {})
    everything = process.logs()
    assert "init output" in everything
    assert "handling r1" in everything
    assert "handling r2" in everything
