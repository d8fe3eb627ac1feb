"""``arn:aws:states:::sagemaker:createTrainingJob.sync`` in LocalStack's Step Functions interpreter.

LocalStack 2026.3.0 lists ``sagemaker`` among its unsupported service integrations
(``state_task_service_factory._UNSUPPORTED_SERVICE_NAMES``): the request is forwarded, but ``.sync`` ends in
``RuntimeError("Unsupported .sync callback procedure ...")`` (a ``States.Runtime`` error that no ``Catch`` with
``States.ALL`` catches), and API errors also surface as ``States.Runtime``.

At LocalStack start (an ``on_infra_start`` hook) this module makes the factory return
:class:`StateTaskServiceSageMaker` for ``sagemaker`` resources. It extends LocalStack's own callback base class
(``StateTaskServiceCallback``, the one the batch and glue integrations use) and implements the ``.sync`` pattern as
AWS documents it for SageMaker:

- the task calls ``CreateTrainingJob`` with its ``Parameters``, then polls ``DescribeTrainingJob`` (LocalStack's
  poll interval, 0.5 s) until the job ends;
- **Completed**: the task's result is the DescribeTrainingJob response (timestamps as epoch milliseconds, as AWS's
  integration renders them), so ``ResultSelector`` paths such as ``$.ModelArtifacts.S3ModelArtifacts`` and
  ``$.FinalMetricDataList`` work;
- **Failed** or **Stopped**: the task fails with error ``States.TaskFailed`` and, as cause, the DescribeTrainingJob
  response as JSON (so ``FailureReason`` is in it) - what AWS reports for a job that does not complete;
- a SageMaker API error (e.g. ``ResourceInUse`` for a duplicate name, a ``ValidationException``) fails the task
  with ``SageMaker.<exception>``: ``SageMaker.ResourceInUseException``, ``SageMaker.ResourceLimitExceededException``,
  ``SageMaker.ResourceNotFoundException``, otherwise ``SageMaker.AmazonSageMakerException``, with AWS's cause
  format ``<message> (Service: AmazonSageMaker; Status Code: 400; Error Code: <code>; Request ID: <id>; Proxy:
  null)``;
- if the execution stops or the task times out while the job runs, the job is stopped (``StopTrainingJob``), as
  AWS does for the run-a-job pattern.

Other SageMaker actions behave as before (the request is forwarded; ``.sync`` is refused).

These are LocalStack internals, not an API: :func:`install` checks the exact ``localstack-core`` version and the
shape of everything it touches, and raises (which aborts LocalStack's start-up) on any other version, so an upgrade
cannot silently change behaviour. Bump ``pinning.PINNED_LOCALSTACK_VERSION`` only together with the lock file and after
the integration tests in ``tests/local/test_stepfunctions_sagemaker.py`` pass.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from datetime import date, datetime
from typing import Any, Final

from botocore.exceptions import ClientError
from localstack.aws.api.stepfunctions import HistoryEventType, TaskFailedEventDetails
from localstack.runtime import hooks
from localstack.services.stepfunctions.asl.component.common.error_name.custom_error_name import CustomErrorName
from localstack.services.stepfunctions.asl.component.common.error_name.failure_event import (
    FailureEvent,
    FailureEventException,
)
from localstack.services.stepfunctions.asl.component.common.error_name.states_error_name import StatesErrorName
from localstack.services.stepfunctions.asl.component.common.error_name.states_error_name_type import (
    StatesErrorNameType,
)
from localstack.services.stepfunctions.asl.component.state.state_execution.state_task import state_task_factory
from localstack.services.stepfunctions.asl.component.state.state_execution.state_task.credentials import (
    StateCredentials,
)
from localstack.services.stepfunctions.asl.component.state.state_execution.state_task.service import (
    state_task_service_factory,
)
from localstack.services.stepfunctions.asl.component.state.state_execution.state_task.service.resource import (
    ResourceCondition,
    ResourceRuntimePart,
)
from localstack.services.stepfunctions.asl.component.state.state_execution.state_task.service.state_task_service_callback import (  # noqa: E501
    StateTaskServiceCallback,
)
from localstack.services.stepfunctions.asl.eval.environment import Environment
from localstack.services.stepfunctions.asl.eval.event.event_detail import EventDetails
from localstack.services.stepfunctions.asl.utils.boto_client import boto_client_for
from localstack.services.stepfunctions.asl.utils.encoding import to_json_str

from driftloop_localstack.pinning import refuse_unless_clean, version_problems

LOG = logging.getLogger(__name__)


_SERVICE: Final[str] = "sagemaker"
_TERMINAL: Final[frozenset[str]] = frozenset({"Completed", "Failed", "Stopped"})
# SageMaker error codes whose Java exception class Step Functions names the error after; the rest are
# reported as the SDK's generic AmazonSageMakerException.
_ERROR_NAMES: Final[dict[str, str]] = {
    "ResourceInUse": "ResourceInUseException",
    "ResourceLimitExceeded": "ResourceLimitExceededException",
    "ResourceNotFound": "ResourceNotFoundException",
}


def _epoch_millis(value: Any) -> Any:
    """DescribeTrainingJob as Step Functions hands it to the state machine: timestamps in epoch milliseconds."""
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: _epoch_millis(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_epoch_millis(item) for item in value]
    return value


class _TrainingJobPoller:
    """The ``.sync`` resolver: None while the job runs, its description once Completed, a failure otherwise."""

    def __init__(self, task: StateTaskServiceSageMaker, env: Environment, client: Any, job_name: str) -> None:
        self._task = task
        self._env = env
        self._client = client
        self.job_name = job_name
        self.ended = False

    def __call__(self) -> dict[str, Any] | None:
        response = self._client.describe_training_job(TrainingJobName=self.job_name)
        response.pop("ResponseMetadata", None)
        status = response.get("TrainingJobStatus")
        if status not in _TERMINAL:
            return None
        self.ended = True
        described: dict[str, Any] = _epoch_millis(response)
        self._task.normalise_describe_response(described)
        if status == "Completed":
            return described
        raise FailureEventException(
            FailureEvent(
                env=self._env,
                error_name=StatesErrorName(typ=StatesErrorNameType.StatesTaskFailed),
                event_type=HistoryEventType.TaskFailed,
                event_details=EventDetails(
                    taskFailedEventDetails=TaskFailedEventDetails(
                        resource=self._task.sfn_resource(),
                        resourceType=self._task.sfn_resource_type(),
                        error=StatesErrorNameType.StatesTaskFailed.to_name(),
                        cause=to_json_str(described),
                    )
                ),
            )
        )

    def stop(self) -> None:
        """Best effort, when the execution stopped or the task timed out while the job ran."""
        if self.ended:
            return
        try:
            self._client.stop_training_job(TrainingJobName=self.job_name)
        except Exception as exc:
            LOG.info("could not stop training job %s after its task ended: %s", self.job_name, exc)


class StateTaskServiceSageMaker(StateTaskServiceCallback):
    """The ``sagemaker`` service integration: request-response for every action, ``.sync`` for createTrainingJob."""

    def __init__(self) -> None:
        super().__init__(supported_integration_patterns={ResourceCondition.WaitForTaskToken, ResourceCondition.Sync})

    def _is_create_training_job(self) -> bool:
        return bool(self._get_boto_service_action() == "create_training_job")

    def _validate_service_integration_is_supported(self) -> None:
        if not self._is_create_training_job():
            LOG.warning(
                "Step Functions: only sagemaker:createTrainingJob is emulated locally; forwarding %s as is",
                self.resource.resource_arn,
            )

    # Public names for the poller (LocalStack's are underscored).
    def sfn_resource(self) -> str:
        return str(self._get_sfn_resource())

    def sfn_resource_type(self) -> str:
        return str(self._get_sfn_resource_type())

    def normalise_describe_response(self, response: dict[str, Any]) -> None:
        self._normalise_response(response, service_action_name="describe_training_job")

    def _eval_service_task(
        self,
        env: Environment,
        resource_runtime_part: ResourceRuntimePart,
        normalised_parameters: dict[str, Any],
        state_credentials: StateCredentials,
    ) -> None:
        client = boto_client_for(
            service=_SERVICE, region=resource_runtime_part.region, state_credentials=state_credentials
        )
        response = getattr(client, self._get_boto_service_action())(**normalised_parameters)
        response.pop("ResponseMetadata", None)
        env.stack.append(_epoch_millis(response))

    def _build_sync_resolver(
        self,
        env: Environment,
        resource_runtime_part: ResourceRuntimePart,
        normalised_parameters: dict[str, Any],
        state_credentials: StateCredentials,
    ) -> Callable[[], Any | None]:
        if not self._is_create_training_job():
            return super()._build_sync_resolver(env, resource_runtime_part, normalised_parameters, state_credentials)  # type: ignore[no-any-return]
        env.stack.pop()  # CreateTrainingJob's own response ({"TrainingJobArn": ...})
        client = boto_client_for(
            service=_SERVICE, region=resource_runtime_part.region, state_credentials=state_credentials
        )
        return _TrainingJobPoller(self, env, client, str(normalised_parameters["TrainingJobName"]))

    def _eval_sync(
        self,
        env: Environment,
        sync_resolver: Callable[[], Any | None],
        timeout_seconds: int | None,
        callback_endpoint: Any,
        heartbeat_endpoint: Any,
    ) -> Any:
        try:
            return super()._eval_sync(
                env=env,
                sync_resolver=sync_resolver,
                timeout_seconds=timeout_seconds,
                callback_endpoint=callback_endpoint,
                heartbeat_endpoint=heartbeat_endpoint,
            )
        finally:
            if isinstance(sync_resolver, _TrainingJobPoller) and not env.is_running():
                sync_resolver.stop()

    def _from_error(self, env: Environment, ex: Exception) -> FailureEvent:
        if isinstance(ex, ClientError):
            error = ex.response.get("Error", {})
            metadata = ex.response.get("ResponseMetadata", {})
            code = str(error.get("Code", "Unknown"))
            name = f"SageMaker.{_ERROR_NAMES.get(code, 'AmazonSageMakerException')}"
            cause = (
                f"{error.get('Message', '')} (Service: AmazonSageMaker; Status Code: "
                f"{metadata.get('HTTPStatusCode', 400)}; Error Code: {code}; Request ID: "
                f"{metadata.get('RequestId', '')}; Proxy: null)"
            )
            return FailureEvent(
                env=env,
                error_name=CustomErrorName(name),
                event_type=HistoryEventType.TaskFailed,
                event_details=EventDetails(
                    taskFailedEventDetails=TaskFailedEventDetails(
                        error=name,
                        cause=cause,
                        resource=self._get_sfn_resource(),
                        resourceType=self._get_sfn_resource_type(),
                    )
                ),
            )
        return super()._from_error(env=env, ex=ex)


def _check_internals() -> None:
    """Everything :func:`install` relies on, as found in the pinned LocalStack; raises on any difference."""

    problems = version_problems()
    if _SERVICE not in getattr(state_task_service_factory, "_UNSUPPORTED_SERVICE_NAMES", ()):
        problems.append("state_task_service_factory no longer lists sagemaker as unsupported")
    if getattr(state_task_factory, "state_task_service_for", None) is None:
        problems.append("state_task_factory no longer imports state_task_service_for")
    expected = {
        "_build_sync_resolver": ["self", "env", "resource_runtime_part", "normalised_parameters", "state_credentials"],
        "_eval_sync": ["self", "env", "sync_resolver", "timeout_seconds", "callback_endpoint", "heartbeat_endpoint"],
        "_eval_service_task": ["self", "env", "resource_runtime_part", "normalised_parameters", "state_credentials"],
        "_from_error": ["self", "env", "ex"],
    }
    for method, parameters in expected.items():
        found = getattr(StateTaskServiceCallback, method, None)
        if found is None or list(inspect.signature(found).parameters) != parameters:
            problems.append(f"StateTaskServiceCallback.{method} changed")
    refuse_unless_clean("driftloop_localstack.stepfunctions_sagemaker", problems)


def install() -> None:
    """Route ``sagemaker`` Task resources to :class:`StateTaskServiceSageMaker` (idempotent)."""
    _check_internals()
    original = state_task_factory.state_task_service_for
    if getattr(original, "driftloop_sagemaker", False):
        return

    def state_task_service_for(service_name: str) -> Any:
        if service_name == _SERVICE:
            return StateTaskServiceSageMaker()
        return original(service_name=service_name)

    state_task_service_for.driftloop_sagemaker = True  # type: ignore[attr-defined]
    # state_task_factory imported the function by name: that binding is the one the parser calls.
    state_task_factory.state_task_service_for = state_task_service_for
    state_task_service_factory.state_task_service_for = state_task_service_for
    LOG.info("Step Functions: sagemaker:createTrainingJob(.sync) integration installed")


@hooks.on_infra_start()
def install_stepfunctions_sagemaker() -> None:
    install()
