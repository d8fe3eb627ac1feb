"""``arn:aws:states:::sagemaker:createTrainingJob.sync`` in LocalStack's Step Functions interpreter.

LocalStack 2026.3.0 lists ``sagemaker`` among its unsupported service integrations (see
:mod:`driftloop_localstack.stepfunctions_services`). At LocalStack start (an ``on_infra_start`` hook) this module
routes ``sagemaker`` resources to :class:`StateTaskServiceSageMaker`, which implements the ``.sync`` pattern as
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

:func:`install` refuses any other ``localstack-core`` version. Bump ``pinning.PINNED_LOCALSTACK_VERSION`` only
together with the lock file and after the integration tests in ``tests/local/test_stepfunctions_sagemaker.py`` pass.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final

from botocore.exceptions import ClientError
from localstack.runtime import hooks
from localstack.services.stepfunctions.asl.component.common.error_name.failure_event import FailureEvent
from localstack.services.stepfunctions.asl.component.state.state_execution.state_task.credentials import (
    StateCredentials,
)
from localstack.services.stepfunctions.asl.component.state.state_execution.state_task.service.resource import (
    ResourceCondition,
    ResourceRuntimePart,
)
from localstack.services.stepfunctions.asl.component.state.state_execution.state_task.service.state_task_service_callback import (  # noqa: E501
    StateTaskServiceCallback,
)
from localstack.services.stepfunctions.asl.eval.environment import Environment
from localstack.services.stepfunctions.asl.utils.boto_client import boto_client_for

from driftloop_localstack.stepfunctions_services import api_failure, check_internals, epoch_millis, route, task_failed

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
_GENERIC_ERROR: Final[str] = "AmazonSageMakerException"


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
        described: dict[str, Any] = epoch_millis(response)
        self._task.normalise_describe_response(described)
        if status == "Completed":
            return described
        raise task_failed(self._task, self._env, described)

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
        env.stack.append(epoch_millis(response))

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
            return api_failure(
                self, env, ex, "SageMaker", "AmazonSageMaker", lambda code: _ERROR_NAMES.get(code, _GENERIC_ERROR)
            )
        return super()._from_error(env=env, ex=ex)


def install() -> None:
    """Route ``sagemaker`` Task resources to :class:`StateTaskServiceSageMaker` (idempotent)."""
    check_internals("driftloop_localstack.stepfunctions_sagemaker", _SERVICE)
    route(_SERVICE, StateTaskServiceSageMaker)
    LOG.info("Step Functions: sagemaker:createTrainingJob(.sync) integration installed")


@hooks.on_infra_start()
def install_stepfunctions_sagemaker() -> None:
    install()
