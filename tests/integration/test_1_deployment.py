"""The deployment: what cdklocal created is what the CDK app synthesized."""

from __future__ import annotations

import json
from typing import Any

import pytest

from localcloud import cloud
from localcloud.deploy import ACCOUNT, outputs_file
from tests.integration.support import Deployed

pytestmark = pytest.mark.integration

PSEUDO_PARAMETERS = {
    "AWS::Partition": "aws",
    "AWS::Region": cloud.DEFAULT_REGION,
    "AWS::AccountId": ACCOUNT,
    "AWS::URLSuffix": "amazonaws.com",
}


def synthesized(local_cloud: cloud.Cloud) -> dict[str, dict[str, Any]]:
    """The templates of the cloud assembly the deployment synthesized, by stack name."""
    assembly = outputs_file(local_cloud).with_name("cdk.out")
    manifest = json.loads((assembly / "manifest.json").read_text())
    return {
        artifact.get("properties", {}).get("stackName", name): json.loads(
            (assembly / artifact["properties"]["templateFile"]).read_text()
        )
        for name, artifact in manifest["artifacts"].items()
        if artifact["type"] == "aws:cloudformation:stack"
    }


@pytest.fixture(scope="module")
def templates(local_cloud: cloud.Cloud, deployed: Deployed) -> dict[str, dict[str, Any]]:
    found = synthesized(local_cloud)
    stacks = [f"{deployed.prefix}-{part}" for part in ("data", "training", "serving", "monitoring")]
    assert sorted(found) == sorted(stacks)
    return found


def test_every_stack_of_the_local_stage_is_create_complete(
    deployed: Deployed, templates: dict[str, dict[str, Any]]
) -> None:
    for stack in templates:
        described = deployed.cloudformation.describe_stacks(StackName=stack)["Stacks"][0]
        assert described["StackStatus"] == "CREATE_COMPLETE", (stack, described.get("StackStatusReason"))
        failed = [r for r in deployed.stack_resources(stack) if r["ResourceStatus"] != "CREATE_COMPLETE"]
        assert not failed, (stack, failed)


def test_every_output_the_templates_declare_is_deployed_with_a_value(
    deployed: Deployed, templates: dict[str, dict[str, Any]]
) -> None:
    for stack, template in templates.items():
        described = deployed.cloudformation.describe_stacks(StackName=stack)["Stacks"][0]
        outputs = {item["OutputKey"]: item.get("OutputValue") for item in described.get("Outputs", [])}
        assert sorted(outputs) == sorted(template.get("Outputs", {})), stack
        assert all(outputs.values()), (stack, outputs)
    deployment = deployed.deployment
    assert deployment.api_url.startswith(f"{deployed.cloud.endpoint}/_aws/execute-api/")
    assert deployment.api_url.endswith("/v1")
    assert deployment.state_machine_arn.endswith(f":stateMachine:{deployed.prefix}-training")
    for bucket in (deployment.data_bucket, deployment.model_bucket):
        deployed.s3.head_bucket(Bucket=bucket)


def test_the_deployed_state_machine_runs_the_synthesized_definition(
    deployed: Deployed, templates: dict[str, dict[str, Any]]
) -> None:
    stack = f"{deployed.prefix}-training"
    resources = {r["LogicalResourceId"]: r for r in deployed.stack_resources(stack)}
    machines = [
        (logical, resource)
        for logical, resource in templates[stack]["Resources"].items()
        if resource["Type"] == "AWS::StepFunctions::StateMachine"
    ]
    assert len(machines) == 1, machines
    logical, resource = machines[0]
    expected = json.loads(resolve(resource["Properties"]["DefinitionString"], resources, deployed))
    arn = resources[logical]["PhysicalResourceId"]
    assert arn == deployed.deployment.state_machine_arn
    actual = json.loads(deployed.sfn.describe_state_machine(stateMachineArn=arn)["definition"])

    def outline(definition: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
        return {name: (state["Type"], state.get("Resource")) for name, state in definition["States"].items()}

    # The names, types and resources first (a readable difference), then everything.
    assert outline(actual) == outline(expected)
    assert actual == expected


def test_every_lambda_function_is_active_on_python_3_12(
    deployed: Deployed, templates: dict[str, dict[str, Any]]
) -> None:
    functions = [
        resource["PhysicalResourceId"]
        for stack in templates
        for resource in deployed.stack_resources(stack)
        if resource["ResourceType"] == "AWS::Lambda::Function"
    ]
    # Eight workflow steps, the inference API and the monitor.
    assert len(functions) >= 10, functions
    for name in functions:
        configuration = deployed.lambda_.get_function_configuration(FunctionName=name)
        assert (configuration["Runtime"], configuration["State"]) == ("python3.12", "Active"), name
    assert deployed.deployment.inference_function in functions
    assert deployed.deployment.monitor_function in functions


def resolve(value: Any, resources: dict[str, dict[str, Any]], deployed: Deployed) -> str:
    """A template string value (``Fn::Join`` of text, ``Ref`` and ``Fn::GetAtt ... Arn``) with the deployed
    resources' actual names and ARNs."""
    if isinstance(value, str):
        return value
    if "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return str(separator).join(resolve(part, resources, deployed) for part in parts)
    if "Ref" in value:
        name = value["Ref"]
        return PSEUDO_PARAMETERS.get(name) or str(resources[name]["PhysicalResourceId"])
    if "Fn::GetAtt" in value:
        logical, attribute = value["Fn::GetAtt"]
        assert attribute == "Arn", value
        resource = resources[logical]
        physical = resource["PhysicalResourceId"]
        kind = resource["ResourceType"]
        if kind == "AWS::Lambda::Function":
            return str(deployed.lambda_.get_function_configuration(FunctionName=physical)["FunctionArn"])
        if kind == "AWS::IAM::Role":
            return str(deployed.client("iam").get_role(RoleName=physical)["Role"]["Arn"])
        if kind == "AWS::SNS::Topic":
            return str(physical)
        raise AssertionError(f"no rule to resolve the ARN of {kind} {logical}")
    raise AssertionError(f"no rule to resolve {value!r}")
