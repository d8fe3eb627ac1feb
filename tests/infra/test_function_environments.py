"""Every Lambda function of the app gets exactly the environment its contract renders, and reads it back.

The contracts (``functions/*/settings.py``) are the one place a variable is named: the stacks render them and the
handlers read them. This walks every function of every stack, in each configuration the stack tests build.
"""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Template

from functions.batch.settings import BatchSettings
from functions.common.env import EnvContract
from functions.inference.settings import InferenceSettings, KeyRotationSettings
from functions.monitor.settings import MonitorSettings
from functions.workflow.settings import ApprovalSettings, WorkflowSettings
from infra.constructs.id_keys import ROTATION_HANDLER
from infra.stacks.wiring import DriftloopStacks
from tests.infra.conftest import function_environment

WORKFLOW_HANDLERS = "functions.workflow.handlers."
# The handlers whose contract is not the one of their package.
CONTRACTS: dict[str, type[EnvContract]] = {
    "functions.inference.app.handler": InferenceSettings,
    ROTATION_HANDLER: KeyRotationSettings,
    "functions.monitor.handler.handler": MonitorSettings,
    WORKFLOW_HANDLERS + "request_approval": ApprovalSettings,
    **{f"functions.batch.handlers.{name}_handler": BatchSettings for name in ("resolve", "score", "summarise")},
}


def contract_of(handler: str) -> type[EnvContract] | None:
    if handler in CONTRACTS:
        return CONTRACTS[handler]
    return WorkflowSettings if handler.startswith(WORKFLOW_HANDLERS) else None


def driftloop_handlers(stacks: DriftloopStacks) -> list[tuple[Template, str]]:
    """Each function of driftloop's own code (CDK's custom resources run handlers of their own)."""
    found = []
    for stack in (stacks.data, stacks.training, stacks.serving, stacks.monitoring):
        template = Template.from_stack(stack)
        for function in template.find_resources("AWS::Lambda::Function").values():
            handler = function["Properties"]["Handler"]
            if handler.startswith("functions."):
                found.append((template, handler))
    return found


@pytest.mark.slow
@pytest.mark.parametrize("configuration", ["dev", "api_key", "approval", "local"])
def test_every_function_reads_its_environment_back_through_its_contract(
    configuration: str, request: pytest.FixtureRequest
) -> None:
    stacks: DriftloopStacks = request.getfixturevalue(configuration)
    handlers = driftloop_handlers(stacks)
    # The inference and monitor functions and the workflow's steps, the approval step among them.
    assert len(handlers) >= 10
    for template, handler in handlers:
        contract = contract_of(handler)
        assert contract is not None, f"{handler} has no environment contract"
        environment = function_environment(template, handler)
        settings = contract.from_env(environment)
        assert set(settings.to_env()) == set(environment), handler
        # The Service of its logs and metrics names the stage: stages never mix.
        assert settings.service.startswith(stacks.config.resource_prefix + "-"), handler
