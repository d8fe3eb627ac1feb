"""The serving stack: the inference Lambda, its least-privilege role, and the REST API in both auth modes."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk.assertions import Capture, Match, Template

from infra.constructs.inference_api import ROUTES
from tests.infra.conftest import build, cdk_context

MODEL_BUCKET = {"Fn::ImportValue": "driftloop-dev-ModelBucketName"}
REGISTRY_OBJECTS = {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":s3:::", MODEL_BUCKET, "/registry/*"]]}
BUCKET_ARN = {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":s3:::", MODEL_BUCKET]]}


def methods(template: Template) -> dict[tuple[str, str], dict[str, Any]]:
    """(path, HTTP method) -> the method's properties."""
    paths = {
        logical_id: resource["Properties"]["PathPart"]
        for logical_id, resource in template.find_resources("AWS::ApiGateway::Resource").items()
    }
    return {
        (paths[resource["Properties"]["ResourceId"]["Ref"]], resource["Properties"]["HttpMethod"]): resource[
            "Properties"
        ]
        for resource in template.find_resources("AWS::ApiGateway::Method").values()
    }


def inference_policy(template: Template) -> list[dict[str, Any]]:
    [policy] = template.find_resources("AWS::IAM::Policy").values()
    return list(policy["Properties"]["PolicyDocument"]["Statement"])


def test_inference_function_settings(serving_template: Template) -> None:
    serving_template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Handler": "functions.inference.app.handler",
            "Runtime": "python3.12",
            "Architectures": ["x86_64"],
            "MemorySize": 1024,
            "Timeout": 10,
            "TracingConfig": {"Mode": "Active"},
            "Environment": {
                "Variables": {
                    "DRIFTLOOP_MODEL_BUCKET": MODEL_BUCKET,
                    "DRIFTLOOP_REGISTRY_PREFIX": "registry/",
                    "DRIFTLOOP_REFRESH_SECONDS": "60",
                    "DRIFTLOOP_MAX_INSTANCES": "1000",
                    "DRIFTLOOP_MAX_BODY_BYTES": "1048576",
                    "LOG_LEVEL": "INFO",
                }
            },
            "ReservedConcurrentExecutions": Match.absent(),
        },
    )


def test_inference_function_logs_to_its_own_log_group_with_retention(serving_template: Template) -> None:
    log_group = Capture()
    serving_template.has_resource_properties(
        "AWS::Lambda::Function", {"LoggingConfig": {"LogGroup": {"Ref": log_group}}}
    )
    resource = serving_template.find_resources("AWS::Logs::LogGroup")[log_group.as_string()]
    assert resource["Properties"]["RetentionInDays"] == 30


def test_inference_role_reads_only_the_registry_prefix(serving_template: Template) -> None:
    statements = inference_policy(serving_template)
    object_statements = [s for s in statements if "s3:GetObject" in json.dumps(s["Action"])]
    assert object_statements == [{"Action": "s3:GetObject", "Effect": "Allow", "Resource": REGISTRY_OBJECTS}]
    s3_actions = {
        action
        for s in statements
        for action in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
        if action.startswith("s3:")
    }
    assert s3_actions == {"s3:GetObject", "s3:ListBucket"}
    assert {"Action": "s3:ListBucket", "Effect": "Allow", "Resource": BUCKET_ARN} in statements


def test_inference_role_has_no_managed_policies(serving_template: Template) -> None:
    serving_template.has_resource_properties(
        "AWS::IAM::Role",
        {
            "AssumeRolePolicyDocument": {
                "Statement": [Match.object_like({"Principal": {"Service": "lambda.amazonaws.com"}})]
            },
            "ManagedPolicyArns": Match.absent(),
        },
    )


def test_api_serves_every_route_through_the_lambda_proxy(serving_template: Template) -> None:
    found = methods(serving_template)
    assert set(found) == set(ROUTES)
    for properties in found.values():
        assert properties["Integration"]["Type"] == "AWS_PROXY"
        assert properties["Integration"]["IntegrationHttpMethod"] == "POST"


def test_iam_mode_authorizes_every_method_with_iam(serving_template: Template) -> None:
    for properties in methods(serving_template).values():
        assert properties["AuthorizationType"] == "AWS_IAM"
        assert "ApiKeyRequired" not in properties
    serving_template.resource_count_is("AWS::ApiGateway::ApiKey", 0)
    serving_template.resource_count_is("AWS::ApiGateway::UsagePlan", 0)


def test_api_key_mode_requires_a_key_on_every_method(api_key_serving_template: Template) -> None:
    for properties in methods(api_key_serving_template).values():
        assert properties["ApiKeyRequired"] is True
        assert properties["AuthorizationType"] == "NONE"


def test_api_key_mode_meters_the_key_with_a_usage_plan(api_key_serving_template: Template) -> None:
    api_key_serving_template.resource_count_is("AWS::ApiGateway::ApiKey", 1)
    api_key_serving_template.has_resource_properties(
        "AWS::ApiGateway::UsagePlan",
        {
            "Throttle": {"RateLimit": 50, "BurstLimit": 100},
            "Quota": {"Limit": 100000, "Period": "DAY"},
            "ApiStages": [Match.object_like({"Stage": {"Ref": Match.string_like_regexp("DeploymentStage")}})],
        },
    )
    api_key_serving_template.has_resource_properties(
        "AWS::ApiGateway::UsagePlanKey", {"KeyType": "API_KEY", "KeyId": {"Ref": Match.string_like_regexp("ApiKey")}}
    )
    api_key_serving_template.has_output("ApiKeyId", {})


def test_stage_throttles_traces_and_records_metrics(serving_template: Template) -> None:
    serving_template.has_resource_properties(
        "AWS::ApiGateway::Stage",
        {
            "StageName": "v1",
            "TracingEnabled": True,
            "MethodSettings": [
                {
                    "HttpMethod": "*",
                    "ResourcePath": "/*",
                    "ThrottlingRateLimit": 50,
                    "ThrottlingBurstLimit": 100,
                    "MetricsEnabled": True,
                    "LoggingLevel": "ERROR",
                    "DataTraceEnabled": False,
                }
            ],
        },
    )


def test_stage_writes_json_access_logs_to_a_retained_log_group(serving_template: Template) -> None:
    [stage] = serving_template.find_resources("AWS::ApiGateway::Stage").values()
    settings = stage["Properties"]["AccessLogSetting"]
    fields = json.loads(settings["Format"])
    assert fields["requestId"] == "$context.requestId"
    assert {"status", "ip", "caller", "httpMethod", "resourcePath", "integrationLatency", "errorMessage"} <= set(fields)
    log_group = settings["DestinationArn"]["Fn::Join"][1][-1]["Ref"]
    resource = serving_template.find_resources("AWS::Logs::LogGroup")[log_group]
    assert resource["Properties"]["RetentionInDays"] == 30
    assert resource["DeletionPolicy"] == "Retain"


def test_api_gateway_cloudwatch_role_is_set_for_the_account_and_retained(serving_template: Template) -> None:
    [account] = serving_template.find_resources("AWS::ApiGateway::Account").values()
    assert account["DeletionPolicy"] == "Retain"
    role = account["Properties"]["CloudWatchRoleArn"]["Fn::GetAtt"][0]
    assert serving_template.find_resources("AWS::IAM::Role")[role]["DeletionPolicy"] == "Retain"
    # Stages with logging must not be created before the account has the role.
    [stage] = serving_template.find_resources("AWS::ApiGateway::Stage").values()
    assert stage["DependsOn"] == [next(iter(serving_template.find_resources("AWS::ApiGateway::Account")))]


def test_lambda_permissions_are_scoped_to_each_route_of_the_stage(serving_template: Template) -> None:
    permissions = serving_template.find_resources("AWS::Lambda::Permission").values()
    suffixes = {p["Properties"]["SourceArn"]["Fn::Join"][1][-1] for p in permissions}
    assert suffixes == {f"/{method}/{path}" for path, method in ROUTES}


def test_outputs_name_the_api_url_and_the_function(serving_template: Template) -> None:
    outputs = serving_template.find_outputs("*")
    assert set(outputs) == {"ApiUrl", "FunctionName"}
    assert outputs["ApiUrl"]["Value"]["Fn::Join"][1][0] == "https://"


def test_reserved_concurrency_is_set_when_configured() -> None:
    template = Template.from_stack(build(cdk_context(overrides={"serving": {"reserved_concurrency": 5}})).serving)
    template.has_resource_properties("AWS::Lambda::Function", {"ReservedConcurrentExecutions": 5})
