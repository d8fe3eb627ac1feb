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
from localstack.services.stepfunctions.asl.eval.environment import Environment

from driftloop_localstack.stepfunctions_services import (
    JobPoller,
    SyncJobTask,
    api_failure,
    check_internals,
    route,
)

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


class _TrainingJobPoller(JobPoller):
    kind = "training job"

    def describe(self) -> dict[str, Any]:
        return dict(self._client.describe_training_job(TrainingJobName=self.job))

    def succeeded(self, described: dict[str, Any]) -> bool | None:
        status = described.get("TrainingJobStatus")
        return None if status not in _TERMINAL else status == "Completed"

    def normalise(self, described: dict[str, Any]) -> None:
        self._task.normalise_describe_response(described)

    def stop_job(self) -> None:
        self._client.stop_training_job(TrainingJobName=self.job)


class StateTaskServiceSageMaker(SyncJobTask):
    """The ``sagemaker`` service integration: request-response for every action, ``.sync`` for createTrainingJob."""

    service = _SERVICE

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
        client = self._client(resource_runtime_part, state_credentials)
        return _TrainingJobPoller(self, env, client, str(normalised_parameters["TrainingJobName"]))

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
