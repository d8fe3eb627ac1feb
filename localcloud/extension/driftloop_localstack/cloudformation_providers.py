"""What driftloop's CloudFormation resource providers share: their model type, their outcomes and the plux plugin
LocalStack loads for each resource type (entry-point group ``localstack.cloudformation.resource_providers``, a
plugin per type whose ``name`` is the type)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from localstack.services.cloudformation.resource_provider import (
    CloudFormationResourceProviderPlugin,
    OperationStatus,
    ProgressEvent,
    ResourceProvider,
)

Properties = dict[str, Any]


def done(model: Properties) -> ProgressEvent[Properties]:
    return ProgressEvent(status=OperationStatus.SUCCESS, resource_model=model)


def failed(message: str) -> ProgressEvent[Properties]:
    return ProgressEvent(status=OperationStatus.FAILED, resource_model={}, message=message)


def provider_plugin(resource_type: str, provider: Callable[[], ResourceProvider[Properties]]) -> type:
    """The plux plugin LocalStack loads for ``resource_type`` (its ``factory`` makes the provider)."""

    class Plugin(CloudFormationResourceProviderPlugin):
        name = resource_type

        def __init__(self) -> None:
            self.factory: Callable[[], ResourceProvider[Properties]] | None = None

        def load(self) -> None:
            self.factory = provider

    Plugin.__name__ = Plugin.__qualname__ = resource_type.replace("AWS::", "").replace("::", "") + "ProviderPlugin"
    return Plugin
