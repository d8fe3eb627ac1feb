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
from localstack.services.stepfunctions.asl.eval.environment import Environment

from driftloop_localstack.stepfunctions_services import (
    JobPoller,
    SyncJobTask,
    api_failure,
    check_internals,
    route,
)

LOG = logging.getLogger(__name__)

_SERVICE: Final[str] = "athena"
_ACTIONS: Final[frozenset[str]] = frozenset(
    {"start_query_execution", "stop_query_execution", "get_query_execution", "get_query_results"}
)
_SYNC: Final[tuple[str, str]] = (ResourceCondition.Sync, "start_query_execution")  # the one .sync action
_RUNNING: Final[frozenset[str]] = frozenset({"QUEUED", "RUNNING"})


class _QueryPoller(JobPoller):
    kind = "Athena query"

    def describe(self) -> dict[str, Any]:
        return dict(self._client.get_query_execution(QueryExecutionId=self.job))

    def succeeded(self, described: dict[str, Any]) -> bool | None:
        state = described["QueryExecution"]["Status"]["State"]
        return None if state in _RUNNING else state == "SUCCEEDED"

    def normalise(self, described: dict[str, Any]) -> None:
        self._task.normalise_response(described, "get_query_execution")

    def stop_job(self) -> None:
        self._client.stop_query_execution(QueryExecutionId=self.job)


class StateTaskServiceAthena(SyncJobTask):
    """The ``athena`` service integration: four request-response actions, ``.sync`` for startQueryExecution."""

    service = _SERVICE

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
