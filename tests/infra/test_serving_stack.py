"""The serving stack: the inference Lambda, its least-privilege role, the REST API in both auth modes, and the
Firehose streams for captured predictions and feedback."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk.assertions import Capture, Match, Template

from functions.common import layout
from functions.common.records import CAPTURE_FILTER_PATTERN
from functions.inference.id_keys import rotation_days
from functions.inference.settings import InferenceSettings
from infra.config import load_config
from infra.constructs.id_keys import ROTATION_HANDLER
from infra.constructs.inference_api import FEEDBACK_ROUTE, ROUTES
from infra.stacks.wiring import DriftloopStacks
from tests.infra.conftest import build, cdk_context, function_environment

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


def role_policy(template: Template, role_id_prefix: str) -> list[dict[str, Any]]:
    """The statements of the one policy attached to the role whose logical id starts with ``role_id_prefix``."""
    [policy] = [
        policy
        for policy in template.find_resources("AWS::IAM::Policy").values()
        if policy["Properties"]["Roles"][0]["Ref"].startswith(role_id_prefix)
    ]
    return list(policy["Properties"]["PolicyDocument"]["Statement"])


def inference_policy(template: Template) -> list[dict[str, Any]]:
    return role_policy(template, "InferenceFunctionRole")


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
                    "DRIFTLOOP_CAPTURE": "log",
                    "DRIFTLOOP_CAPTURE_SAMPLE_RATE": "1.0",
                    "DRIFTLOOP_FEEDBACK_STREAM": "driftloop-dev-feedback",
                    "DRIFTLOOP_FEEDBACK_MAX_AGE_DAYS": "30",
                    "POWERTOOLS_SERVICE_NAME": "driftloop-dev-inference",
                    "POWERTOOLS_LOG_LEVEL": "INFO",
                }
            },
            "ReservedConcurrentExecutions": 50,
        },
    )


def test_the_inference_environment_reads_back_through_its_contract_and_holds_exactly_its_variables(
    serving_template: Template,
) -> None:
    variables = function_environment(serving_template, "functions.inference.app.handler")

    settings = InferenceSettings.from_env(variables)

    assert set(settings.to_env()) == set(variables)
    assert (settings.service, settings.log_level) == ("driftloop-dev-inference", "INFO")
    assert json.loads(settings.model_bucket or "") == MODEL_BUCKET
    assert settings.capture == "log"


def test_the_inference_defaults_for_local_runs_agree_with_cdk_json() -> None:
    config = load_config(cdk_context().get)
    defaults = InferenceSettings()

    assert defaults.log_level == config.log_level
    assert defaults.registry_prefix == config.data.registry_prefix
    assert (defaults.refresh_seconds, defaults.max_instances, defaults.max_body_bytes) == (
        config.serving.refresh_seconds,
        config.serving.max_instances,
        config.serving.max_body_bytes,
    )
    assert (defaults.sample_rate, defaults.feedback_max_age_days) == (
        config.capture.sample_rate,
        config.capture.feedback_max_age_days,
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


def test_feedback_requires_iam_in_both_modes_so_an_api_key_cannot_post_labels(
    serving_template: Template, api_key_serving_template: Template
) -> None:
    for template in (serving_template, api_key_serving_template):
        feedback = methods(template)[FEEDBACK_ROUTE]
        assert feedback["AuthorizationType"] == "AWS_IAM"


def test_iam_mode_authorizes_every_method_with_iam(serving_template: Template) -> None:
    for properties in methods(serving_template).values():
        assert properties["AuthorizationType"] == "AWS_IAM"


def test_api_key_mode_authorizes_every_method_but_feedback_by_the_key_alone(
    api_key_serving_template: Template,
) -> None:
    for route, properties in methods(api_key_serving_template).items():
        if route != FEEDBACK_ROUTE:
            assert properties["AuthorizationType"] == "NONE", route


def test_every_method_requires_an_api_key_in_both_modes_so_each_request_counts_against_a_client(
    serving_template: Template, api_key_serving_template: Template
) -> None:
    for template in (serving_template, api_key_serving_template):
        for route, properties in methods(template).items():
            assert properties["ApiKeyRequired"] is True, route


def invoke_policies(template: Template) -> dict[str, set[str]]:
    """Managed policy (by its logical id's prefix) -> the '<METHOD>/<path>' it may invoke, nothing else."""
    found: dict[str, set[str]] = {}
    for logical_id, resource in template.find_resources("AWS::IAM::ManagedPolicy").items():
        [statement] = resource["Properties"]["PolicyDocument"]["Statement"]
        assert (statement["Effect"], statement["Action"]) == ("Allow", "execute-api:Invoke")
        arns = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        routes = set()
        for arn in arns:
            parts = arn["Fn::Join"][1]
            # ...:<api id>/<stage>/<METHOD>/<path>: this API's deployed stage, one method and path.
            assert parts[-4]["Ref"].startswith("InferenceApi") and parts[-2]["Ref"].startswith("InferenceApiDeploy")
            routes.add(parts[-1].lstrip("/"))
        found[logical_id.removeprefix("InferenceApi").split("InvokePolicy")[0]] = routes
    return found


def test_callers_get_invoke_on_predict_or_on_feedback_through_separate_managed_policies(
    serving_template: Template, api_key_serving_template: Template
) -> None:
    assert invoke_policies(serving_template) == {
        "Predict": {"POST/predict", "GET/health", "GET/model", "GET/openapi.json"},
        "Feedback": {"POST/feedback"},
    }
    # API keys authorise predictions; only the feedback policy is needed.
    assert invoke_policies(api_key_serving_template) == {"Feedback": {"POST/feedback"}}
    assert set(serving_template.find_outputs("*")) >= {"PredictPolicyArn", "FeedbackPolicyArn"}
    outputs = api_key_serving_template.find_outputs("*")
    assert "FeedbackPolicyArn" in outputs and "PredictPolicyArn" not in outputs


def test_the_api_accepts_only_tls_1_3_and_strict_endpoint_access(serving_template: Template) -> None:
    serving_template.has_resource_properties(
        "AWS::ApiGateway::RestApi",
        {
            "EndpointConfiguration": {"Types": ["REGIONAL"]},
            "SecurityPolicy": "SecurityPolicy_TLS13_1_3_2025_09",
            "EndpointAccessMode": "STRICT",
        },
    )


def resource_policy(template: Template) -> list[dict[str, Any]]:
    [api] = template.find_resources("AWS::ApiGateway::RestApi").values()
    return list(api["Properties"]["Policy"]["Statement"])


def test_only_the_accounts_principals_may_reach_the_api_in_iam_mode(serving_template: Template) -> None:
    [statement] = resource_policy(serving_template)
    assert statement["Effect"] == "Allow" and statement["Action"] == "execute-api:Invoke"
    assert statement["Resource"] == "execute-api:/*"
    root = json.dumps(statement["Principal"])
    assert ":root" in root and "AWS::AccountId" in root


def test_api_key_mode_opens_only_the_key_routes_to_any_caller_and_keeps_feedback_to_the_account(
    api_key_serving_template: Template,
) -> None:
    account, keys = resource_policy(api_key_serving_template)
    assert account["Resource"] == "execute-api:/*"
    assert keys["Principal"] == {"AWS": "*"}
    assert sorted(keys["Resource"]) == sorted(
        f"execute-api:/v1/{method}/{path}"
        for path, method in (("predict", "POST"), ("health", "GET"), ("model", "GET"), ("openapi.json", "GET"))
    )
    assert not any("feedback" in resource for resource in keys["Resource"])


def usage_plans(template: Template) -> dict[str, dict[str, Any]]:
    """Client name (the plan's name after '<prefix>-inference-') -> its usage plan's properties, with the logical
    ids of the API keys bound to it under "Keys"."""
    keys: dict[str, list[str]] = {}
    for binding in template.find_resources("AWS::ApiGateway::UsagePlanKey").values():
        assert binding["Properties"]["KeyType"] == "API_KEY"
        keys.setdefault(binding["Properties"]["UsagePlanId"]["Ref"], []).append(binding["Properties"]["KeyId"]["Ref"])
    return {
        plan["Properties"]["UsagePlanName"].removeprefix("driftloop-dev-inference-"): {
            **plan["Properties"],
            "Keys": keys.get(logical_id, []),
        }
        for logical_id, plan in template.find_resources("AWS::ApiGateway::UsagePlan").items()
    }


def test_the_default_client_keeps_todays_limits_with_its_own_key_and_usage_plan_in_both_modes(
    serving_template: Template, api_key_serving_template: Template
) -> None:
    for template in (serving_template, api_key_serving_template):
        template.resource_count_is("AWS::ApiGateway::ApiKey", 1)
        [(client, plan)] = usage_plans(template).items()
        assert client == "default"
        assert plan["Throttle"] == {"RateLimit": 50, "BurstLimit": 100}
        assert plan["Quota"] == {"Limit": 100000, "Period": "DAY"}
        [stage] = plan["ApiStages"]
        assert stage["Stage"]["Ref"].startswith("InferenceApiDeploymentStage")
        assert stage["Throttle"] == {"/feedback/POST": {"RateLimit": 10, "BurstLimit": 20}}
        assert len(plan["Keys"]) == 1


TWO_CLIENTS = [
    {
        "name": "churn-app",
        "rate_limit": 30,
        "burst_limit": 60,
        "feedback_rate_limit": 8,
        "feedback_burst_limit": 15,
        "quota_per_day": 50000,
    },
    {"name": "reports", "rate_limit": 5, "burst_limit": 10, "feedback_rate_limit": 1, "feedback_burst_limit": 2},
]
LABELLER = "arn:aws:iam::123456789012:role/labeller"


@pytest.fixture(scope="module")
def two_clients_template() -> Template:
    """iam mode with two clients, and only one role admitted to the signed routes."""
    context = cdk_context(overrides={"serving": {"clients": TWO_CLIENTS, "allowed_principals": [LABELLER]}})
    return Template.from_stack(build(context).serving)


def test_each_configured_client_gets_its_own_key_in_its_own_usage_plan_with_its_limits(
    two_clients_template: Template,
) -> None:
    plans = usage_plans(two_clients_template)

    assert set(plans) == {"churn-app", "reports"}
    two_clients_template.resource_count_is("AWS::ApiGateway::ApiKey", 2)
    # One key per plan and no key in two plans: a client at its limit is throttled on its own key only.
    [app_key], [reports_key] = plans["churn-app"]["Keys"], plans["reports"]["Keys"]
    assert app_key != reports_key
    assert plans["churn-app"]["Throttle"] == {"RateLimit": 30, "BurstLimit": 60}
    assert plans["churn-app"]["Quota"] == {"Limit": 50000, "Period": "DAY"}
    assert plans["churn-app"]["ApiStages"][0]["Throttle"] == {"/feedback/POST": {"RateLimit": 8, "BurstLimit": 15}}
    assert plans["reports"]["Throttle"] == {"RateLimit": 5, "BurstLimit": 10}
    assert "Quota" not in plans["reports"]
    assert plans["reports"]["ApiStages"][0]["Throttle"] == {"/feedback/POST": {"RateLimit": 1, "BurstLimit": 2}}
    names = {
        key["Properties"]["Name"] for key in two_clients_template.find_resources("AWS::ApiGateway::ApiKey").values()
    }
    assert names == {"driftloop-dev-inference-churn-app", "driftloop-dev-inference-reports"}


def test_the_api_key_ids_output_maps_each_client_to_its_key(two_clients_template: Template) -> None:
    [output] = [value for name, value in two_clients_template.find_outputs("*").items() if name == "ApiKeyIds"]
    rendered = json.dumps(output["Value"])
    keys = two_clients_template.find_resources("AWS::ApiGateway::ApiKey")
    for client in ("churn-app", "reports"):
        [logical_id] = [i for i, key in keys.items() if key["Properties"]["Name"].endswith(client)]
        assert f'\\"{client}\\":\\"' in rendered and json.dumps({"Ref": logical_id}) in rendered


def test_listed_principals_alone_may_call_the_signed_routes_besides_the_account_restriction(
    two_clients_template: Template,
) -> None:
    account, deny = resource_policy(two_clients_template)
    assert account["Effect"] == "Allow" and account["Resource"] == "execute-api:/*"
    assert deny["Effect"] == "Deny" and deny["Principal"] == {"AWS": "*"}
    assert deny["Condition"] == {"ArnNotLike": {"aws:PrincipalArn": [LABELLER]}}
    assert sorted(deny["Resource"]) == sorted(f"execute-api:/v1/{method}/{path}" for path, method in ROUTES)


def test_in_api_key_mode_the_listed_principals_bind_only_the_signed_feedback_route() -> None:
    context = cdk_context(overrides={"serving": {"auth_mode": "api_key", "allowed_principals": [LABELLER]}})
    _, _, deny = resource_policy(Template.from_stack(build(context).serving))
    assert deny["Effect"] == "Deny" and deny["Resource"] == "execute-api:/v1/POST/feedback"


def test_stage_throttles_feedback_lower_traces_and_records_metrics(serving_template: Template) -> None:
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
                },
                # Feedback has its own, lower limits (serving.feedback_throttle_*).
                {
                    "HttpMethod": "POST",
                    "ResourcePath": "/~1feedback",
                    "ThrottlingRateLimit": 10,
                    "ThrottlingBurstLimit": 20,
                    "DataTraceEnabled": False,
                },
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
    permissions = serving_template.find_resources(
        "AWS::Lambda::Permission", {"Properties": {"Principal": "apigateway.amazonaws.com"}}
    ).values()
    suffixes = {p["Properties"]["SourceArn"]["Fn::Join"][1][-1] for p in permissions}
    assert suffixes == {f"/{method}/{path}" for path, method in ROUTES}


def test_outputs_name_the_api_url_the_function_the_invoke_policies_batch_scoring_the_api_keys_and_the_id_key(
    serving_template: Template,
) -> None:
    outputs = serving_template.find_outputs("*")
    # (CDK adds "ExportsOutput..." outputs of its own for stacks that reference this one.)
    assert {name for name in outputs if not name.startswith("ExportsOutput")} == {
        "ApiUrl",
        "FunctionName",
        "PredictPolicyArn",
        "FeedbackPolicyArn",
        "BatchStateMachineArn",
        "ApiKeyIds",
        "IdKeySecretArn",
    }
    assert outputs["IdKeySecretArn"]["Value"] == {"Ref": id_key_secret(serving_template)}
    assert outputs["ApiUrl"]["Value"]["Fn::Join"][1][0] == "https://"


def test_reserved_concurrency_follows_the_config_and_null_leaves_the_function_unreserved() -> None:
    # Five concurrent invocations serve the clients' 5 requests/s at the 1 s p99 latency the alarm allows.
    five = {"reserved_concurrency": 5, "clients": [{**TWO_CLIENTS[1], "rate_limit": 5}]}
    template = Template.from_stack(build(cdk_context(overrides={"serving": five})).serving)
    template.has_resource_properties("AWS::Lambda::Function", {"ReservedConcurrentExecutions": 5})
    # In the base config: jsii drops null members of context objects, so a stage override cannot unset it.
    context = cdk_context()
    context["driftloop"]["serving"]["reserved_concurrency"] = None
    unreserved = Template.from_stack(build(context).serving)
    unreserved.has_resource_properties("AWS::Lambda::Function", {"ReservedConcurrentExecutions": Match.absent()})


# -- capture and feedback streams --------------------------------------------------------------------------------

DATA_BUCKET = {"Fn::ImportValue": "driftloop-dev-DataBucketName"}
DATA_BUCKET_ARN = {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":s3:::", DATA_BUCKET]]}


def data_objects(prefix: str) -> dict[str, Any]:
    return {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":s3:::", DATA_BUCKET, f"/{prefix}*"]]}


def stream(template: Template, name: str) -> tuple[str, dict[str, Any]]:
    """(logical id, properties) of the delivery stream named ``name``."""
    [(logical_id, resource)] = [
        (logical_id, resource)
        for logical_id, resource in template.find_resources("AWS::KinesisFirehose::DeliveryStream").items()
        if resource["Properties"]["DeliveryStreamName"] == name
    ]
    return logical_id, resource["Properties"]


def destination(template: Template, name: str) -> dict[str, Any]:
    config: dict[str, Any] = stream(template, name)[1]["ExtendedS3DestinationConfiguration"]
    return config


def test_two_encrypted_direct_put_streams_deliver_gzipped_json_lines_to_the_data_bucket(
    serving_template: Template,
) -> None:
    serving_template.resource_count_is("AWS::KinesisFirehose::DeliveryStream", 2)
    for name in ("driftloop-dev-captures", "driftloop-dev-feedback"):
        properties = stream(serving_template, name)[1]
        assert properties["DeliveryStreamType"] == "DirectPut"
        assert properties["DeliveryStreamEncryptionConfigurationInput"] == {"KeyType": "AWS_OWNED_CMK"}
        config = properties["ExtendedS3DestinationConfiguration"]
        assert config["BucketARN"] == DATA_BUCKET_ARN
        assert config["CompressionFormat"] == "GZIP"
        assert config["BufferingHints"] == {"IntervalInSeconds": 60, "SizeInMBs": 64}


def test_captures_are_partitioned_by_model_version_and_arrival_hour_as_layout_py_lays_them_out(
    serving_template: Template,
) -> None:
    config = destination(serving_template, "driftloop-dev-captures")

    assert (
        config["Prefix"]
        == "captures/model_version=!{partitionKeyFromQuery:model_version}/hour=!{timestamp:yyyy-MM-dd-HH}/"
    )
    assert (
        config["ErrorOutputPrefix"] == "captures/errors/!{firehose:error-output-type}/hour=!{timestamp:yyyy-MM-dd-HH}/"
    )
    assert config["DynamicPartitioningConfiguration"]["Enabled"] is True
    processors = {p["Type"]: p for p in config["ProcessingConfiguration"]["Processors"]}
    assert {p["ParameterName"]: p["ParameterValue"] for p in processors["MetadataExtraction"]["Parameters"]} == {
        "MetadataExtractionQuery": "{model_version:.model_version}",
        "JsonParsingEngine": "JQ-1.6",
    }
    # What Firehose writes is what the readers list.
    expanded = (
        config["Prefix"]
        .replace("!{partitionKeyFromQuery:model_version}", "v1")
        .replace("!{timestamp:yyyy-MM-dd-HH}", "2026-03-01-17")
    )
    assert expanded == layout.capture_hour_prefix("captures/", "v1", "2026-03-01-17")


def test_feedback_is_partitioned_by_arrival_hour(serving_template: Template) -> None:
    config = destination(serving_template, "driftloop-dev-feedback")

    assert config["Prefix"] == "feedback/hour=!{timestamp:yyyy-MM-dd-HH}/"
    assert (
        config["ErrorOutputPrefix"] == "feedback/errors/!{firehose:error-output-type}/hour=!{timestamp:yyyy-MM-dd-HH}/"
    )
    assert "DynamicPartitioningConfiguration" not in config and "ProcessingConfiguration" not in config
    expanded = config["Prefix"].replace("!{timestamp:yyyy-MM-dd-HH}", "2026-03-01-17")
    assert expanded == layout.feedback_hour_prefix("feedback/", "2026-03-01-17")


def test_the_synthesized_prefixes_are_the_layouts_for_any_stage_and_the_readers_find_what_they_write() -> None:
    data = {"capture_prefix": "stage/captured/", "feedback_prefix": "stage/labels/"}
    template = Template.from_stack(build(cdk_context(overrides={"data": data})).serving)
    captures, feedback = (destination(template, name) for name in ("driftloop-dev-captures", "driftloop-dev-feedback"))

    assert captures["Prefix"] == layout.firehose_capture_prefix("stage/captured/")
    assert feedback["Prefix"] == layout.firehose_feedback_prefix("stage/labels/")
    assert captures["ErrorOutputPrefix"] == layout.firehose_error_prefix("stage/captured/")
    [processor] = [p for p in captures["ProcessingConfiguration"]["Processors"] if p["Type"] == "MetadataExtraction"]
    query = {p["ParameterName"]: p["ParameterValue"] for p in processor["Parameters"]}["MetadataExtractionQuery"]
    assert query == "{" + ",".join(f"{key}:{path}" for key, path in layout.CAPTURE_PARTITION_KEYS.items()) + "}"
    # Evaluated as Firehose does for a record of version v7 arriving at 2026-03-01 17:xx, the partition the
    # readers list; the readers find its version in the folder name.
    written = captures["Prefix"].replace(layout.FIREHOSE_MODEL_VERSION, "v7")
    written = written.replace(layout.FIREHOSE_ARRIVAL_HOUR, "2026-03-01-17")
    assert written == layout.capture_hour_prefix("stage/captured/", "v7", "2026-03-01-17")
    assert layout.capture_model_version("stage/captured/", written.split("hour=")[0]) == "v7"


def test_buffering_follows_the_config() -> None:
    template = Template.from_stack(
        build(cdk_context(overrides={"capture": {"buffer_seconds": 300, "buffer_mb": 128}})).serving
    )
    for name in ("driftloop-dev-captures", "driftloop-dev-feedback"):
        assert destination(template, name)["BufferingHints"] == {"IntervalInSeconds": 300, "SizeInMBs": 128}


def test_delivery_errors_are_logged_to_a_log_group_with_retention(serving_template: Template) -> None:
    for name in ("driftloop-dev-captures", "driftloop-dev-feedback"):
        logging = destination(serving_template, name)["CloudWatchLoggingOptions"]
        assert logging["Enabled"] is True
        log_group = serving_template.find_resources("AWS::Logs::LogGroup")[logging["LogGroupName"]["Ref"]]
        assert log_group["Properties"]["RetentionInDays"] == 30
        serving_template.has_resource_properties(
            "AWS::Logs::LogStream",
            {"LogGroupName": {"Ref": logging["LogGroupName"]["Ref"]}, "LogStreamName": logging["LogStreamName"]},
        )


def test_each_delivery_role_is_assumable_only_by_firehose_for_this_account_and_writes_only_its_prefix(
    serving_template: Template,
) -> None:
    for name, prefix in (("driftloop-dev-captures", "captures/"), ("driftloop-dev-feedback", "feedback/")):
        logical_id, properties = stream(serving_template, name)
        role_id = properties["ExtendedS3DestinationConfiguration"]["RoleARN"]["Fn::GetAtt"][0]
        role = serving_template.find_resources("AWS::IAM::Role")[role_id]["Properties"]
        [trust] = role["AssumeRolePolicyDocument"]["Statement"]
        assert trust["Principal"] == {"Service": "firehose.amazonaws.com"}
        assert trust["Condition"] == {"StringEquals": {"sts:ExternalId": {"Ref": "AWS::AccountId"}}}
        assert "ManagedPolicyArns" not in role

        statements = role_policy(serving_template, role_id)
        s3_statements = [s for s in statements if "s3:" in json.dumps(s["Action"])]
        assert s3_statements == [
            {
                "Action": ["s3:AbortMultipartUpload", "s3:PutObject"],
                "Effect": "Allow",
                "Resource": data_objects(prefix),
            },
            {"Action": "s3:GetBucketLocation", "Effect": "Allow", "Resource": DATA_BUCKET_ARN},
        ]
        [logs] = [s for s in statements if s not in s3_statements]
        assert logs["Action"] == ["logs:CreateLogStream", "logs:PutLogEvents"]
        # The stream is created only once its role may write.
        [policy_id] = [
            policy_id
            for policy_id, policy in serving_template.find_resources("AWS::IAM::Policy").items()
            if policy["Properties"]["Roles"] == [{"Ref": role_id}]
        ]
        resource = serving_template.find_resources("AWS::KinesisFirehose::DeliveryStream")[logical_id]
        assert policy_id in resource["DependsOn"]


def test_the_inference_function_may_put_records_into_the_feedback_stream_only(serving_template: Template) -> None:
    statements = inference_policy(serving_template)
    firehose = [s for s in statements if "firehose:" in json.dumps(s["Action"])]
    feedback, _ = stream(serving_template, "driftloop-dev-feedback")
    assert firehose == [
        {"Action": "firehose:PutRecordBatch", "Effect": "Allow", "Resource": {"Fn::GetAtt": [feedback, "Arn"]}}
    ]


def test_the_capture_stream_unpacks_cloudwatch_logs_envelopes_into_one_record_per_line_before_partitioning(
    serving_template: Template,
) -> None:
    config = destination(serving_template, "driftloop-dev-captures")

    processors = [
        (p["Type"], {q["ParameterName"]: q["ParameterValue"] for q in p.get("Parameters", [])})
        for p in config["ProcessingConfiguration"]["Processors"]
    ]
    assert [kind for kind, _ in processors] == [
        "Decompression",
        "CloudWatchLogProcessing",
        "MetadataExtraction",
        "AppendDelimiterToRecord",
    ]
    assert processors[0][1] == {"CompressionFormat": "GZIP"}
    assert processors[1][1] == {"DataMessageExtraction": "true"}
    assert config["ProcessingConfiguration"]["Enabled"] is True


def subscriptions(template: Template) -> dict[str, dict[str, Any]]:
    """The subscription filters by the handler of the function whose log group they read."""
    functions = template.find_resources("AWS::Lambda::Function")
    groups = {
        properties["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]: properties["Properties"]["Handler"]
        for properties in functions.values()
    }
    found: dict[str, dict[str, Any]] = {}
    for resource in template.find_resources("AWS::Logs::SubscriptionFilter").values():
        found[groups[resource["Properties"]["LogGroupName"]["Ref"]]] = dict(resource)
    return found


def test_the_inference_and_batch_score_logs_ship_exactly_their_capture_lines_to_the_capture_stream(
    serving_template: Template,
) -> None:
    captures, _ = stream(serving_template, "driftloop-dev-captures")

    found = subscriptions(serving_template)

    assert set(found) == {"functions.inference.app.handler", "functions.batch.handlers.score_handler"}
    for resource in found.values():
        properties = resource["Properties"]
        assert properties["FilterPattern"] == CAPTURE_FILTER_PATTERN == '{ $.capture = "prediction" }'
        assert properties["DestinationArn"] == {"Fn::GetAtt": [captures, "Arn"]}
        assert properties["FilterName"] == "driftloop-dev-captures"


def test_cloudwatch_logs_may_put_into_the_capture_stream_only_for_its_own_log_group(
    serving_template: Template,
) -> None:
    captures, _ = stream(serving_template, "driftloop-dev-captures")
    roles = serving_template.find_resources("AWS::IAM::Role")
    for resource in subscriptions(serving_template).values():
        properties = resource["Properties"]
        role_id = properties["RoleArn"]["Fn::GetAtt"][0]
        [trust] = roles[role_id]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        assert trust["Principal"] == {"Service": "logs.amazonaws.com"}
        group = properties["LogGroupName"]["Ref"]
        assert trust["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
        arns = trust["Condition"]["ArnLike"]["aws:SourceArn"]
        assert len(arns) == 2 and all(json.dumps({"Ref": group}) in json.dumps(arn) for arn in arns)
        assert json.dumps(arns[1]).endswith(':*"]]}')
        assert role_policy(serving_template, role_id) == [
            {
                "Action": ["firehose:PutRecord", "firehose:PutRecordBatch"],
                "Effect": "Allow",
                "Resource": {"Fn::GetAtt": [captures, "Arn"]},
            }
        ]
        # The filter is created once its role may put (CloudWatch Logs tries a test record then).
        assert any(dependency.startswith(role_id.removesuffix(role_id[-8:])) for dependency in resource["DependsOn"])


def test_the_stack_exposes_its_streams(dev: DriftloopStacks) -> None:
    serving = dev.serving
    assert serving.capture_stream is not None
    assert serving.capture_stream.stream_name == "driftloop-dev-captures"
    assert serving.feedback_stream.stream_name == "driftloop-dev-feedback"
    assert serving.capture_stream.stream is serving.capture_stream.node.find_child("Stream")


def test_sampling_follows_the_config() -> None:
    template = Template.from_stack(build(cdk_context(overrides={"capture": {"sample_rate": 0.25}})).serving)
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {"Environment": {"Variables": Match.object_like({"DRIFTLOOP_CAPTURE_SAMPLE_RATE": "0.25"})}},
    )


def test_without_capture_there_is_only_the_feedback_stream_and_the_function_captures_nothing() -> None:
    stacks = build(cdk_context(overrides={"capture": {"enabled": False}}))
    template = Template.from_stack(stacks.serving)

    template.resource_count_is("AWS::KinesisFirehose::DeliveryStream", 1)
    feedback, _ = stream(template, "driftloop-dev-feedback")
    assert stacks.serving.capture_stream is None
    variables = function_environment(template, "functions.inference.app.handler")
    assert variables["DRIFTLOOP_CAPTURE"] == "none"
    assert "DRIFTLOOP_CAPTURE_STREAM" not in variables and "DRIFTLOOP_CAPTURE_SAMPLE_RATE" not in variables
    assert variables["DRIFTLOOP_FEEDBACK_STREAM"] == "driftloop-dev-feedback"
    firehose = [s for s in inference_policy(template) if "firehose:" in json.dumps(s["Action"])]
    assert firehose == [
        {"Action": "firehose:PutRecordBatch", "Effect": "Allow", "Resource": {"Fn::GetAtt": [feedback, "Arn"]}}
    ]


def id_key_secret(template: Template) -> str:
    [secret] = template.find_resources("AWS::SecretsManager::Secret")
    return secret


def test_the_prediction_id_key_is_a_generated_secret_with_no_value_in_the_template(
    serving_template: Template,
) -> None:
    [secret] = serving_template.find_resources("AWS::SecretsManager::Secret").values()
    properties = secret["Properties"]
    assert properties["GenerateSecretString"] == {"ExcludePunctuation": True, "PasswordLength": 64}
    # Secrets Manager's AWS managed key encrypts it: no key of ours to grant or to lose.
    assert "SecretString" not in properties and "KmsKeyId" not in properties


def test_the_key_rotates_through_its_function_on_an_interval_derived_from_the_feedback_age(
    serving_template: Template,
) -> None:
    template = serving_template
    secret = id_key_secret(template)
    rotation = Capture()
    max_age = load_config(cdk_context().get).capture.feedback_max_age_days

    template.has_resource_properties(
        "AWS::SecretsManager::RotationSchedule",
        {
            "SecretId": {"Ref": secret},
            "RotationLambdaARN": {"Fn::GetAtt": [rotation, "Arn"]},
            "RotationRules": {"ScheduleExpression": f"rate({rotation_days(max_age)} days)"},
        },
    )
    function = template.find_resources("AWS::Lambda::Function")[rotation.as_string()]
    assert function["Properties"]["Handler"] == ROTATION_HANDLER
    template.has_resource_properties(
        "AWS::Lambda::Permission",
        {
            "Action": "lambda:InvokeFunction",
            "FunctionName": {"Fn::GetAtt": [rotation.as_string(), "Arn"]},
            "Principal": "secretsmanager.amazonaws.com",
            "SourceArn": {"Ref": secret},
        },
    )
    # The rotation function may change this secret, and nothing else.
    changes = [s for s in role_policy(template, "PredictionIdKeysRotationRole") if "secretsmanager:" in json.dumps(s)]
    assert changes == [
        {
            "Action": [
                "secretsmanager:DescribeSecret",
                "secretsmanager:GetSecretValue",
                "secretsmanager:PutSecretValue",
                "secretsmanager:UpdateSecretVersionStage",
            ],
            "Effect": "Allow",
            "Resource": {"Ref": secret},
        }
    ]


def test_the_functions_that_mint_or_verify_ids_read_the_key_and_get_its_arn_never_its_value(
    serving_template: Template,
) -> None:
    secret = id_key_secret(serving_template)
    read = {
        "Action": ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"],
        "Effect": "Allow",
        "Resource": {"Ref": secret},
    }
    for role, handler in (
        ("InferenceFunctionRole", "functions.inference.app.handler"),
        ("BatchScoringScoreRole", "functions.batch.handlers.score_handler"),
    ):
        statements = role_policy(serving_template, role)
        assert read in statements, role
        assert not [s for s in statements if "secretsmanager:" in json.dumps(s) and s != read], role
        assert function_environment(serving_template, handler)["DRIFTLOOP_ID_KEY_SECRET"] == json.dumps({"Ref": secret})
    # No other function reads it, and no environment holds a value resolved from it.
    readers = [
        policy
        for policy in serving_template.find_resources("AWS::IAM::Policy").values()
        if "secretsmanager:GetSecretValue" in json.dumps(policy)
    ]
    assert len(readers) == 3  # the two above and the rotation function
    for function in serving_template.find_resources("AWS::Lambda::Function").values():
        assert "resolve:secretsmanager" not in json.dumps(function["Properties"].get("Environment", {}))
