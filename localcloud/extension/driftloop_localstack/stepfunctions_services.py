"""What the Step Functions integrations the local cloud adds (``stepfunctions_sagemaker``, ``stepfunctions_athena``)
share: routing a service's Task resources to driftloop's class, the checks of LocalStack's internals they rely on,
and the shapes of AWS's answers (timestamps, API errors, a job that did not succeed).

LocalStack 2026.3.0 lists both ``sagemaker`` and ``athena`` among its unsupported service integrations
(``state_task_service_factory._UNSUPPORTED_SERVICE_NAMES``): the request is forwarded, ``.sync`` ends in
``RuntimeError("Unsupported .sync callback procedure ...")`` (a ``States.Runtime`` error that no ``Catch`` with
``States.ALL`` catches), and API errors also surface as ``States.Runtime``. :func:`route` makes the factory return
driftloop's class for a service instead; each class extends LocalStack's own callback base class
(``StateTaskServiceCallback``, the one its batch and glue integrations use).

These are LocalStack internals, not an API: :func:`check_internals` checks the exact ``localstack-core`` version and
the shape of everything the integrations touch, and raises (which aborts LocalStack's start-up) on any other
version, so an upgrade cannot silently change behaviour.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from datetime import date, datetime
from typing import Any, ClassVar

from botocore.exceptions import ClientError
from localstack.aws.api.stepfunctions import HistoryEventType, TaskFailedEventDetails
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

# service name -> the class its Task resources get (filled by route()).
_ROUTES: dict[str, Callable[[], StateTaskServiceCallback]] = {}


def epoch_millis(value: Any) -> Any:
    """An API response as Step Functions hands it to the state machine: timestamps in epoch milliseconds."""
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: epoch_millis(item) for key, item in value.items()}
    if isinstance(value, list):
        return [epoch_millis(item) for item in value]
    return value


def task_failed(task: StateTaskServiceCallback, env: Environment, cause: Any) -> FailureEventException:
    """``States.TaskFailed`` with ``cause`` as JSON: what AWS reports for a job that does not succeed."""
    return FailureEventException(
        FailureEvent(
            env=env,
            error_name=StatesErrorName(typ=StatesErrorNameType.StatesTaskFailed),
            event_type=HistoryEventType.TaskFailed,
            event_details=EventDetails(
                taskFailedEventDetails=TaskFailedEventDetails(
                    resource=task._get_sfn_resource(),
                    resourceType=task._get_sfn_resource_type(),
                    error=StatesErrorNameType.StatesTaskFailed.to_name(),
                    cause=to_json_str(cause),
                )
            ),
        )
    )


def api_failure(
    task: StateTaskServiceCallback,
    env: Environment,
    ex: ClientError,
    prefix: str,
    sdk_service: str,
    exception_class: Callable[[str], str],
) -> FailureEvent:
    """An API error as Step Functions names it, ``<prefix>.<Java exception class of the error code>``, with the
    Java SDK's cause format."""
    error = ex.response.get("Error", {})
    metadata = ex.response.get("ResponseMetadata", {})
    code = str(error.get("Code", "Unknown"))
    name = f"{prefix}.{exception_class(code)}"
    cause = (
        f"{error.get('Message', '')} (Service: {sdk_service}; Status Code: {metadata.get('HTTPStatusCode', 400)}; "
        f"Error Code: {code}; Request ID: {metadata.get('RequestId', '')}; Proxy: null)"
    )
    return FailureEvent(
        env=env,
        error_name=CustomErrorName(name),
        event_type=HistoryEventType.TaskFailed,
        event_details=EventDetails(
            taskFailedEventDetails=TaskFailedEventDetails(
                error=name,
                cause=cause,
                resource=task._get_sfn_resource(),
                resourceType=task._get_sfn_resource_type(),
            )
        ),
    )


def check_internals(hook: str, service: str) -> None:
    """Everything the integrations rely on, as found in the pinned LocalStack; raises on any difference."""
    problems = version_problems()
    if service not in getattr(state_task_service_factory, "_UNSUPPORTED_SERVICE_NAMES", ()):
        problems.append(f"state_task_service_factory no longer lists {service} as unsupported")
    if getattr(state_task_factory, "state_task_service_for", None) is None:
        problems.append("state_task_factory no longer imports state_task_service_for")
    expected = {
        "_build_sync_resolver": ["self", "env", "resource_runtime_part", "normalised_parameters", "state_credentials"],
        "_eval_sync": ["self", "env", "sync_resolver", "timeout_seconds", "callback_endpoint", "heartbeat_endpoint"],
        "_eval_service_task": ["self", "env", "resource_runtime_part", "normalised_parameters", "state_credentials"],
        "_from_error": ["self", "env", "ex"],
        "_get_sfn_resource": ["self"],
        "_get_sfn_resource_type": ["self"],
    }
    for method, parameters in expected.items():
        found = getattr(StateTaskServiceCallback, method, None)
        if found is None or list(inspect.signature(found).parameters) != parameters:
            problems.append(f"StateTaskServiceCallback.{method} changed")
    refuse_unless_clean(hook, problems)


def route(service: str, factory: Callable[[], StateTaskServiceCallback]) -> None:
    """Make ``service``'s Task resources use ``factory``'s class (idempotent; call after :func:`check_internals`)."""
    _ROUTES[service] = factory
    original = state_task_factory.state_task_service_for
    if getattr(original, "driftloop_routes", False):
        return

    def state_task_service_for(service_name: str) -> Any:
        if service_name in _ROUTES:
            return _ROUTES[service_name]()
        return original(service_name=service_name)

    state_task_service_for.driftloop_routes = True  # type: ignore[attr-defined]
    # state_task_factory imported the function by name: that binding is the one the parser calls.
    state_task_factory.state_task_service_for = state_task_service_for
    state_task_service_factory.state_task_service_for = state_task_service_for


class JobPoller:
    """A ``.sync`` resolver over one job (a training job, a query): None while it runs, its description once it
    succeeded, the task's failure otherwise; :meth:`stop` stops the job when its task ends first (the execution was
    stopped or the task timed out), as AWS does."""

    kind: ClassVar[str]  # what the job is, for the log

    def __init__(self, task: StateTaskServiceCallback, env: Environment, client: Any, job: str) -> None:
        self._task = task
        self._env = env
        self._client = client
        self.job = job
        self.ended = False

    def describe(self) -> dict[str, Any]:
        raise NotImplementedError

    def succeeded(self, described: dict[str, Any]) -> bool | None:
        """True or False once the job ended, None while it runs."""
        raise NotImplementedError

    def normalise(self, described: dict[str, Any]) -> None:
        """The description as the task's output shapes it (Step Functions' field names)."""
        raise NotImplementedError

    def stop_job(self) -> None:
        raise NotImplementedError

    def __call__(self) -> dict[str, Any] | None:
        response = self.describe()
        response.pop("ResponseMetadata", None)
        outcome = self.succeeded(response)
        if outcome is None:
            return None
        self.ended = True
        described: dict[str, Any] = epoch_millis(response)
        self.normalise(described)
        if outcome:
            return described
        raise task_failed(self._task, self._env, described)

    def stop(self) -> None:
        """Best effort, when the task ended while the job ran."""
        if self.ended:
            return
        try:
            self.stop_job()
        except Exception as exc:
            LOG.info("could not stop %s %s after its task ended: %s", self.kind, self.job, exc)


class SyncJobTask(StateTaskServiceCallback):
    """A service integration of ``service`` whose request-response actions call its API as is, and whose ``.sync``
    resolver is a :class:`JobPoller`: the job is stopped when its task ends before it does."""

    service: ClassVar[str]

    def _client(self, resource_runtime_part: ResourceRuntimePart, state_credentials: StateCredentials) -> Any:
        return boto_client_for(
            service=self.service, region=resource_runtime_part.region, state_credentials=state_credentials
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
            if isinstance(sync_resolver, JobPoller) and not env.is_running():
                sync_resolver.stop()
