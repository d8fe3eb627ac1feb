"""``GET /_localstack/driftloop``: what the driftloop extension contributes to this LocalStack instance.

``localcloud/cloud.py`` reads it after start-up to refuse an instance where the extension is missing (LocalStack
silently falls back to its ``docker`` Lambda executor for an unknown ``LAMBDA_RUNTIME_EXECUTOR``),
``localcloud/deploy.py`` to refuse a deployment with resource types CloudFormation skipped, and the tests read it
as evidence. Registered by an ``on_infra_start`` hook (entry point group ``localstack.hooks.on_infra_start``).
"""

from __future__ import annotations

from typing import Any

from localstack import config
from localstack.http import Resource
from localstack.runtime import hooks

from . import __version__

PATH = "/_localstack/driftloop"


class ExtensionInfo:
    def on_get(self, request: Any) -> dict[str, Any]:
        from localstack.services.cloudformation.resource_provider import plugin_manager as cloudformation_providers
        from localstack.services.lambda_.invocation.runtime_executor import EXECUTOR_PLUGIN_MANAGER

        from .lambda_executor import EXECUTOR_NAME, lambda_python
        from .s3_storage import PROVIDER_NAME, storage_dir

        executor = config.LAMBDA_RUNTIME_EXECUTOR or "docker"
        return {
            "version": __version__,
            "lambda": {
                "executor": executor if EXECUTOR_PLUGIN_MANAGER.exists(executor) else "docker",
                "configured_executor": executor,
                "ours": EXECUTOR_NAME,
                "python": str(lambda_python()),
                "python_exists": lambda_python().exists(),
            },
            "s3": {
                "provider": config.SERVICE_PROVIDER_CONFIG.get_provider("s3"),
                "ours": PROVIDER_NAME,
                "storage_dir": str(storage_dir()),
            },
            # The types CloudFormation creates (LocalStack's providers and the extension's); it skips the others.
            "cloudformation": {"resource_types": sorted(cloudformation_providers.list_names())},
        }


@hooks.on_infra_start()
def register_driftloop_info() -> None:
    from localstack.services.internal import get_internal_apis

    get_internal_apis().add(Resource(PATH, ExtensionInfo()))
