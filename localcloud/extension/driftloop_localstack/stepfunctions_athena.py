"""``arn:aws:states:::athena:*`` tasks in LocalStack's Step Functions interpreter, as AWS's optimized integration.

LocalStack 2026.3.0 lists ``athena`` among its unsupported service integrations (see
:mod:`driftloop_localstack.stepfunctions_services`). At LocalStack start (an ``on_infra_start`` hook) this module
routes ``athena`` resources to :class:`StateTaskServiceAthena`, which behaves as AWS documents the Athena
integration:

- request-response for ``startQueryExecution``, ``stopQueryExecution``, ``getQueryExecution`` and
  ``getQueryResults`` (timestamps in epoch milliseconds, as Step Functions renders them); any other Athena action
  fails the state machine's definition, as on AWS;
- ``startQueryExecution.sync`` (the only ``.sync`` action): polls GetQueryExecution (LocalStack's poll interval,
  0.5 s) until the query ends. **SUCCEEDED**: the task's result is the GetQueryExecution response
  (``{"QueryExecution": {...}}``), so paths such as ``$.QueryExecution.Statistics.DataScannedInBytes`` work;
  **FAILED** or **CANCELLED**: the task fails with ``States.TaskFailed`` and that response as JSON for cause (so
  ``Status.StateChangeReason`` and ``Status.AthenaError`` are in it);
- an Athena API error fails the task with ``Athena.<exception>`` (``Athena.InvalidRequestException``, ...), with
  the Java SDK's cause format, as for the other integrations;
- if the execution stops or the task times out while the query runs, the query is stopped (StopQueryExecution);
- ``.waitForTaskToken`` is not supported, as on AWS.

:func:`install` refuses any other ``localstack-core`` version; the integration tests are in
``tests/local/test_athena_local_cloud.py``.
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

_SERVICE: Final[str] = "athena"
_ACTIONS: Final[frozenset[str]] = frozenset(
    {"start_query_execution", "stop_query_execution", "get_query_execution", "get_query_results"}
)
_SYNC: Final[tuple[str, str]] = (ResourceCondition.Sync, "start_query_execution")  # the one .sync action
_RUNNING: Final[frozenset[str]] = frozenset({"QUEUED", "RUNNING"})


class _QueryPoller:
    """The ``.sync`` resolver: None while the query runs, its execution once SUCCEEDED, a failure otherwise."""

    def __init__(self, task: StateTaskServiceAthena, env: Environment, client: Any, query_id: str) -> None:
        self._task = task
        self._env = env
        self._client = client
        self.query_id = query_id
        self.ended = False

    def __call__(self) -> dict[str, Any] | None:
        response = self._client.get_query_execution(QueryExecutionId=self.query_id)
        response.pop("ResponseMetadata", None)
        if response["QueryExecution"]["Status"]["State"] in _RUNNING:
            return None
        self.ended = True
        described: dict[str, Any] = epoch_millis(response)
        self._task.normalise_response(described, "get_query_execution")
        if described["QueryExecution"]["Status"]["State"] == "SUCCEEDED":
            return described
        raise task_failed(self._task, self._env, described)

    def stop(self) -> None:
        """Best effort, when the execution stopped or the task timed out while the query ran."""
        if self.ended:
            return
        try:
            self._client.stop_query_execution(QueryExecutionId=self.query_id)
        except Exception as exc:
            LOG.info("could not stop Athena query %s after its task ended: %s", self.query_id, exc)


class StateTaskServiceAthena(StateTaskServiceCallback):
    """The ``athena`` service integration: four request-response actions, ``.sync`` for startQueryExecution."""

    def __init__(self) -> None:
        super().__init__(supported_integration_patterns={ResourceCondition.Sync})

    def _validate_service_integration_is_supported(self) -> None:
        action, condition = self._get_boto_service_action(), self.resource.condition
        if action not in _ACTIONS or (condition is not None and (condition, action) != _SYNC):
            raise ValueError(
                f"The resource provided {self.resource.resource_arn} not recognized. The value is not a valid "
                "resource ARN, or the resource is not available in this region."
            )

    def normalise_response(self, response: dict[str, Any], action: str) -> None:
        self._normalise_response(response, service_action_name=action)

    def _client(self, resource_runtime_part: ResourceRuntimePart, state_credentials: StateCredentials) -> Any:
        return boto_client_for(
            service=_SERVICE, region=resource_runtime_part.region, state_credentials=state_credentials
        )

    def _eval_service_task(
        self,
        env: Environment,
        resource_runtime_part: ResourceRuntimePart,
        normalised_parameters: dict[str, Any],
        state_credentials: StateCredentials,
    ) -> None:
        client = self._client(resource_runtime_part, state_credentials)
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
        started = env.stack.pop()  # StartQueryExecution's own response ({"QueryExecutionId": ...})
        client = self._client(resource_runtime_part, state_credentials)
        return _QueryPoller(self, env, client, str(started["QueryExecutionId"]))

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
            if isinstance(sync_resolver, _QueryPoller) and not env.is_running():
                sync_resolver.stop()

    def _from_error(self, env: Environment, ex: Exception) -> FailureEvent:
        if isinstance(ex, ClientError):
            # Athena's error codes are its Java exceptions' class names (InvalidRequestException, ...).
            return api_failure(self, env, ex, "Athena", "AmazonAthena", str)
        return super()._from_error(env=env, ex=ex)


def install() -> None:
    """Route ``athena`` Task resources to :class:`StateTaskServiceAthena` (idempotent)."""
    check_internals("driftloop_localstack.stepfunctions_athena", _SERVICE)
    route(_SERVICE, StateTaskServiceAthena)
    LOG.info("Step Functions: athena integration (startQueryExecution.sync and request-response) installed")


@hooks.on_infra_start()
def install_stepfunctions_athena() -> None:
    install()
