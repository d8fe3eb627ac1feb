"""A LocalStack Lambda runtime executor that runs Python zip functions as local processes, without Docker.

Selected with ``LAMBDA_RUNTIME_EXECUTOR=driftloop-process`` (``localcloud/cloud.py`` sets it). LocalStack's
Lambda service keeps doing everything else (API, versions, concurrency, event source mappings, CloudWatch logs and
metrics); this class only replaces the container: each execution environment is one
:class:`~.runtime_process.RuntimeProcess` (awslambdaric in the Python 3.12 runtime venv, talking to its own
Runtime API server). What the function writes in the Embedded Metric Format also becomes CloudWatch metrics
(:mod:`.emf`), which LocalStack's CloudWatch Logs does not do.

Versus the ``docker`` executor: nothing is downloaded (no runtime-init binary from GitHub, no image pull; that
happens only in the docker executor's ``prepare_version``), handlers run unsandboxed on the host, and only Python
runtimes with a zip package (and Python layers) are supported: other functions are created, and their invocations
fail with a clear ``Runtime.Unsupported`` error.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from localstack import config
from localstack.aws.api.lambda_ import PackageType
from localstack.services.lambda_.invocation.executor_endpoint import StatusErrorException
from localstack.services.lambda_.invocation.lambda_models import FunctionVersion, InvocationResult
from localstack.services.lambda_.invocation.plugins import RuntimeExecutorPlugin
from localstack.services.lambda_.invocation.runtime_executor import RuntimeExecutor

from . import emf
from .runtime_api import error_document
from .runtime_process import EnvironmentStopped, FunctionSpec, InitError, RuntimeProcess

LOG = logging.getLogger(__name__)

EXECUTOR_NAME = "driftloop-process"
# The runtime interpreter (awslambdaric + boto3): set by localcloud/cloud.py; the default finds the repository's
# venv from this package's (editable) location: <repo>/localcloud/extension/driftloop_localstack/.
PYTHON_VARIABLE = "DRIFTLOOP_LAMBDA_PYTHON"
LOCAL_HOST = "127.0.0.1"


def lambda_python() -> Path:
    configured = os.environ.get(PYTHON_VARIABLE)
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[3] / ".cache" / "lambda-runtime-venv" / "bin" / "python"


def work_root() -> Path:
    """Per-instance scratch space under LocalStack's TMPDIR: each environment's HOME and /tmp."""
    return Path(tempfile.gettempdir()) / "driftloop-lambda"


def unsupported_reason(function_version: FunctionVersion) -> str | None:
    settings = function_version.config
    if settings.package_type != PackageType.Zip or settings.code is None:
        return "container image functions are not supported"
    runtime = str(settings.runtime or "")
    if not runtime.startswith("python3"):
        return f"runtime {runtime or 'provided'} is not supported (Python runtimes only)"
    return None


def layer_paths(function_version: FunctionVersion) -> list[Path]:
    """Where Lambda puts Python layers on sys.path (they are unpacked under /opt there), in layer order."""
    paths: list[Path] = []
    for layer in function_version.config.layers or []:
        if layer.code is not None:
            root = Path(layer.code.get_unzipped_code_location())
            paths += [root / "python", root / "python" / "lib" / "python3.12" / "site-packages"]
    return paths


class ProcessRuntimeExecutor(RuntimeExecutor):
    """One execution environment = one local runtime process."""

    def __init__(self, id: str, function_version: FunctionVersion) -> None:
        super().__init__(id=id, function_version=function_version)
        self._process: RuntimeProcess | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def start(self, env_vars: dict[str, str]) -> None:
        function_version = self.function_version
        reason = unsupported_reason(function_version)
        if reason is not None:
            message = f"driftloop's local Lambda executor runs Python zip functions: {reason}"
            raise StatusErrorException(message, payload=error_document("Runtime.Unsupported", message))
        settings = function_version.config
        runtime = str(settings.runtime)
        if runtime != "python3.12":
            LOG.info(
                "%s: runtime %s runs on the local Python 3.12 interpreter", function_version.qualified_arn, runtime
            )
        spec = FunctionSpec(
            function_name=function_version.id.function_name,
            handler=settings.handler,
            code_dir=Path(settings.code.get_unzipped_code_location()),
            python=lambda_python(),
            timeout_seconds=float(settings.timeout),
            memory_mb=int(settings.memory_size),
            work_dir=work_root() / "environments" / self.id,
            environment={name: str(value) for name, value in env_vars.items()},
            runtime=runtime,
            version=function_version.id.qualifier,
            extra_paths=layer_paths(function_version),
        )
        self._process = RuntimeProcess(spec)
        try:
            self._process.start()
        except InitError as exc:
            if exc.logs:
                LOG.info("Init logs of %s:\n%s", function_version.qualified_arn, exc.logs.rstrip())
                self._publish_metrics(exc.logs)
            raise StatusErrorException("Environment startup failed", payload=exc.payload) from exc
        LOG.debug(
            "Started %s (environment %s) as process %s", function_version.qualified_arn, self.id, self._process.pid
        )

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()

    def invoke(self, payload: dict[str, Any]) -> InvocationResult:
        if self._process is None:
            raise EnvironmentStopped(f"execution environment {self.id} was never started")
        result = self._process.invoke(
            request_id=payload["invoke-id"],
            payload=str(payload.get("payload") or "").encode(),
            function_arn=payload["invoked-function-arn"],
            trace_id=payload.get("trace-id"),
            client_context=_client_context(payload),
        )
        self._publish_metrics(result.logs)
        return InvocationResult(
            request_id=result.request_id, payload=result.payload, is_error=result.is_error, logs=result.logs
        )

    def _publish_metrics(self, logs: str) -> None:
        """The function's EMF log lines become CloudWatch metrics, as CloudWatch Logs makes them on AWS."""
        version = self.function_version
        emf.publish(logs, account_id=version.id.account, region=version.id.region, source=version.qualified_arn)

    def get_logs(self) -> str:
        return self._process.logs() if self._process is not None else ""

    # -- addresses: everything is on this host -------------------------------------------------------------------

    def get_address(self) -> str:
        return LOCAL_HOST

    def get_endpoint_from_executor(self) -> str:
        """How the function reaches LocalStack: becomes ``AWS_ENDPOINT_URL=http://127.0.0.1:<gateway port>``."""
        return LOCAL_HOST

    def get_runtime_endpoint(self) -> str:
        # LOCALSTACK_RUNTIME_ENDPOINT is for LocalStack's own runtime init (docker); the process uses its Runtime API.
        return f"http://{LOCAL_HOST}:{config.GATEWAY_LISTEN[0].port}/_localstack_lambda/{self.id}"

    # -- versions ------------------------------------------------------------------------------------------------

    @classmethod
    def prepare_version(cls, function_version: FunctionVersion) -> None:
        """Unzip the code once per version (LocalStack caches it under its TMPDIR); download nothing."""
        reason = unsupported_reason(function_version)
        if reason is not None:
            LOG.warning("%s: %s; its invocations will fail", function_version.qualified_arn, reason)
            return
        function_version.config.code.prepare_for_execution()
        for layer in function_version.config.layers or []:
            if layer.code is not None:
                layer.code.prepare_for_execution()

    @classmethod
    def cleanup_version(cls, function_version: FunctionVersion) -> None:
        """Nothing of ours to clean: LocalStack deletes the unzipped code with the version."""

    @classmethod
    def validate_environment(cls) -> bool:
        python = lambda_python()
        if not python.exists():
            LOG.warning(
                "The Lambda runtime interpreter %s does not exist (set %s or run `make local-setup`): "
                "invocations will fail",
                python,
                PYTHON_VARIABLE,
            )
            return False
        return True


def _client_context(payload: dict[str, Any]) -> str | None:
    context = payload.get("client-context")
    if context is None or isinstance(context, str):
        return context
    return json.dumps(context)


class ProcessRuntimeExecutorPlugin(RuntimeExecutorPlugin):
    """The plux plugin (entry point group ``localstack.lambda.runtime_executor``)."""

    name = EXECUTOR_NAME

    def load(self, *args: Any, **kwargs: Any) -> type[RuntimeExecutor]:
        return ProcessRuntimeExecutor
