"""What the integration tests share: bounded waits, the deployed API over HTTP, and the deployed app's AWS side.

Every wait polls with a timeout and fails the test with what it was waiting for (and what it saw last); there is
no bare sleep anywhere. :class:`Deployed` is the deployed app as a user sees it through the AWS APIs: the
stacks, the state machine, the registry in the model bucket, the Lambda functions, CloudWatch, and the REST API
through LocalStack's API Gateway (:class:`Api`).
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from cli.client import API_KEY_HEADER, DEFAULT_CLIENT, api_key_value
from functions.common.registry import ChampionPointer, Decision, Registry
from functions.workflow.model_packages import package_arn
from localcloud.cloud import Cloud
from localcloud.deploy import Deployment
from tests.plugins.local_cloud import boto3_client, unique
from tests.stored_records import object_records

if TYPE_CHECKING:
    import pandas as pd

# One training execution takes about 12 s here (the training program runs for real); a loaded machine is slower.
EXECUTION_TIMEOUT = 240.0
# Firehose on LocalStack writes each batch at once; the API call that sends it has returned by then.
DELIVERY_TIMEOUT = 30.0
# The inference Lambda re-reads the champion pointer every serving.refresh_seconds (5 s in the local stage).
REFRESH_TIMEOUT = 60.0
# CloudWatch evaluates an alarm every period (60 s in the local stage): ALARM within one or two evaluations.
ALARM_TIMEOUT = 180.0
PAUSE = 0.5


class WaitTimeout(AssertionError):
    """A bounded wait ran out: fails the test with what was awaited and what was last seen."""


def wait_for[T](
    what: str,
    probe: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = PAUSE,
    seen: Callable[[], object] | None = None,
) -> T:
    """Call ``probe`` until it returns something other than None (or ``timeout`` seconds pass)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() >= deadline:
            last = f"; last seen: {seen()!r}" if seen is not None else ""
            raise WaitTimeout(f"timed out after {timeout:.0f} s waiting for {what}{last}")
        time.sleep(interval)


def stays_absent(what: str, probe: Callable[[], object | None], *, duration: float, interval: float = PAUSE) -> None:
    """Fail if ``probe`` returns something other than None within ``duration`` seconds."""
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        found = probe()
        if found is not None:
            raise AssertionError(f"{what}: {found!r}")
        time.sleep(interval)


# -- the REST API -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"Answer({self.status}, {self.body[:400]!r})"


@dataclass(frozen=True)
class Api:
    """The deployed API at its path-style LocalStack URL (``.../_aws/execute-api/<id>/<stage>``), called with a
    client's API key (every route requires one) unless ``key`` is None."""

    url: str
    key: str | None

    def call(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        *,
        content_type: str | None = "application/json",
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        sent = {} if self.key is None else {API_KEY_HEADER: self.key}
        sent.update(headers or {})
        if content_type is not None and body is not None:
            sent["Content-Type"] = content_type
        request = urllib.request.Request(self.url + path, data=body, method=method, headers=sent)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:  # the local API
                return Answer(response.status, dict(response.headers), response.read())
        except urllib.error.HTTPError as error:
            return Answer(error.code, dict(error.headers), error.read())

    def post(self, path: str, document: Any) -> Answer:
        return self.call("POST", path, json.dumps(document).encode())

    def get(self, path: str) -> Answer:
        return self.call("GET", path)

    def predict(self, instances: list[dict[str, Any]]) -> dict[str, Any]:
        answer = self.post("/predict", {"instances": instances})
        assert answer.status == 200, answer
        return dict(answer.json)

    def served_version(self) -> str | None:
        answer = self.get("/health")
        return str(answer.json["model_version"]) if answer.status == 200 else None


# -- the deployed app -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Execution:
    arn: str
    status: str
    input: dict[str, Any]
    output: dict[str, Any]
    error: str | None
    cause: str | None
    # The states it entered, in order.
    states: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.arn.rsplit(":", 1)[-1]


@dataclass
class Deployed:
    """The deployed loop, through the AWS APIs of the local cloud."""

    cloud: Cloud
    deployment: Deployment

    def __post_init__(self) -> None:
        self.s3 = self.client("s3")
        self.sfn = self.client("stepfunctions")
        self.lambda_ = self.client("lambda")
        self.cloudwatch = self.client("cloudwatch")
        self.cloudformation = self.client("cloudformation")
        self.registry = Registry(self.s3, self.deployment.model_bucket)
        key = api_key_value(self.client("apigateway"), self.deployment.outputs, DEFAULT_CLIENT)
        self.api = Api(self.deployment.api_url, key)

    def client(self, service: str) -> Any:
        return boto3_client(self.cloud, service)

    # -- stacks and functions ------------------------------------------------------------------------------------

    @property
    def prefix(self) -> str:
        """``driftloop-local``: the state machine is ``<prefix>-training``."""
        return self.deployment.state_machine_arn.rsplit(":", 1)[-1].removesuffix("-training")

    def stack_resources(self, stack: str) -> list[dict[str, Any]]:
        return list(self.cloudformation.describe_stack_resources(StackName=stack)["StackResources"])

    def function_named(self, stack: str, logical_prefix: str) -> str:
        """The physical name of the stack's Lambda function whose logical id starts with ``logical_prefix``."""
        found = [
            resource["PhysicalResourceId"]
            for resource in self.stack_resources(stack)
            if resource["ResourceType"] == "AWS::Lambda::Function"
            and resource["LogicalResourceId"].startswith(logical_prefix)
        ]
        assert len(found) == 1, f"{stack}: expected one function {logical_prefix}*, found {found}"
        return str(found[0])

    def environment(self, function: str) -> dict[str, str]:
        configuration = self.lambda_.get_function_configuration(FunctionName=function)
        return dict(configuration.get("Environment", {}).get("Variables", {}))

    @contextlib.contextmanager
    def changed_environment(self, function: str, **changes: str) -> Iterator[None]:
        """Run with some of the function's environment variables changed, then restore them."""
        original = self.environment(function)
        self._set_environment(function, {**original, **changes})
        try:
            yield
        finally:
            self._set_environment(function, original)

    def _set_environment(self, function: str, variables: dict[str, str]) -> None:
        self.lambda_.update_function_configuration(FunctionName=function, Environment={"Variables": variables})
        self.lambda_.get_waiter("function_updated_v2").wait(
            FunctionName=function, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
        )

    def invoke(self, function: str, event: Any) -> tuple[Any, str | None]:
        """Invoke synchronously; returns the payload and the FunctionError (None on success)."""
        response = self.lambda_.invoke(FunctionName=function, Payload=json.dumps(event).encode())
        return json.loads(response["Payload"].read() or b"null"), response.get("FunctionError")

    # -- the state machine ---------------------------------------------------------------------------------------

    def start(self, name: str, document: Mapping[str, Any] | None = None) -> str:
        started = self.sfn.start_execution(
            stateMachineArn=self.deployment.state_machine_arn, name=name, input=json.dumps(dict(document or {}))
        )
        return str(started["executionArn"])

    def finished(self, arn: str, timeout: float = EXECUTION_TIMEOUT) -> Execution:
        def probe() -> dict[str, Any] | None:
            described = self.sfn.describe_execution(executionArn=arn)
            return None if described["status"] == "RUNNING" else dict(described)

        described = wait_for(f"execution {arn.rsplit(':', 1)[-1]} to end", probe, timeout=timeout)
        return Execution(
            arn=arn,
            status=described["status"],
            input=json.loads(described.get("input") or "{}"),
            output=json.loads(described.get("output") or "{}"),
            error=described.get("error"),
            cause=described.get("cause"),
            states=self.states_entered(arn),
        )

    def run(self, prefix: str, document: Mapping[str, Any] | None = None) -> Execution:
        """Start an execution and wait until it ends."""
        return self.finished(self.start(unique(prefix), document))

    def states_entered(self, arn: str) -> list[str]:
        paginator = self.sfn.get_paginator("get_execution_history")
        return [
            event["stateEnteredEventDetails"]["name"]
            for page in paginator.paginate(executionArn=arn)
            for event in page["events"]
            if "stateEnteredEventDetails" in event
        ]

    def executions(self, status: str | None = None) -> list[dict[str, Any]]:
        arguments: dict[str, Any] = {"stateMachineArn": self.deployment.state_machine_arn}
        if status is not None:
            arguments["statusFilter"] = status
        paginator = self.sfn.get_paginator("list_executions")
        found = [dict(item) for page in paginator.paginate(**arguments) for item in page["executions"]]
        return sorted(found, key=lambda item: item["startDate"])

    def execution_input(self, arn: str) -> dict[str, Any]:
        return dict(json.loads(self.sfn.describe_execution(executionArn=arn).get("input") or "{}"))

    def wait_until_idle(self, timeout: float = EXECUTION_TIMEOUT) -> None:
        """No execution is running (one an alarm or an earlier test started has ended)."""
        wait_for(
            "every running execution to end",
            lambda: True if not self.executions("RUNNING") else None,
            timeout=timeout,
            interval=1.0,
            seen=lambda: [item["name"] for item in self.executions("RUNNING")],
        )

    # -- the registry ------------------------------------------------------------------------------------------

    def champion(self) -> ChampionPointer | None:
        return self.registry.champion()

    def decisions_of(self, execution_arn: str) -> list[Decision]:
        """The decisions a run recorded (Guard, RecordFailure and Register/Promote/Reject name the execution or
        its version)."""
        decisions = self.registry.decisions()
        versions = {d.version for d in decisions if d.details.get("execution") == execution_arn and d.version}
        return [d for d in decisions if d.details.get("execution") == execution_arn or d.version in versions]

    def model_package(self, version: str) -> dict[str, Any]:
        """The SageMaker model package mirroring ``version``, by the ARN its registered decision recorded."""
        arn = package_arn(self.registry, version)
        assert arn is not None, f"{version} has no model package recorded in its registered decision"
        return dict(self.client("sagemaker").describe_model_package(ModelPackageName=arn))

    def run_lock(self) -> dict[str, Any]:
        key = self.registry.layout.lock_key
        return dict(json.loads(self.s3.get_object(Bucket=self.deployment.model_bucket, Key=key)["Body"].read()))

    # -- the data bucket -------------------------------------------------------------------------------------------

    def keys(self, prefix: str, bucket: str | None = None) -> list[str]:
        paginator = self.s3.get_paginator("list_objects_v2")
        return [
            item["Key"]
            for page in paginator.paginate(Bucket=bucket or self.deployment.data_bucket, Prefix=prefix)
            for item in page.get("Contents", [])
        ]

    def records(self, prefix: str) -> list[dict[str, Any]]:
        """Every JSON-lines record (plain or gzip-compressed) under ``prefix`` in the data bucket."""
        found: list[dict[str, Any]] = []
        for key in self.keys(prefix):
            body = self.s3.get_object(Bucket=self.deployment.data_bucket, Key=key)["Body"].read()
            found += object_records(body)
        return found

    def put_csv(self, key: str, text: str) -> None:
        self.s3.put_object(Bucket=self.deployment.data_bucket, Key=key, Body=text.encode(), ContentType="text/csv")

    def delete(self, key: str) -> None:
        self.s3.delete_object(Bucket=self.deployment.data_bucket, Key=key)

    # -- alarms --------------------------------------------------------------------------------------------------

    def alarm(self, name: str) -> dict[str, Any]:
        alarms = self.cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"]
        assert alarms, f"no alarm {name}"
        return dict(alarms[0])

    def executions_started_after(self, moment: datetime) -> list[dict[str, Any]]:
        return [item for item in self.executions() if item["startDate"].astimezone(UTC) >= moment]


def as_instances(frame: pd.DataFrame, target: str = "churned") -> list[dict[str, Any]]:
    """Rows as a client sends them: every feature but the target, a missing value as null."""
    features = frame.drop(columns=[target], errors="ignore")
    return list(json.loads(features.to_json(orient="records")))
