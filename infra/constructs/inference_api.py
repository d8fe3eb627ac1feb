"""The REST API (API Gateway v1) in front of the inference Lambda."""

from __future__ import annotations

import json

from aws_cdk import RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.config import ServingConfig
from infra.constructs.log_group import log_group

# (path, method): every route the inference app serves, all through one Lambda proxy integration.
ROUTES = (("predict", "POST"), ("feedback", "POST"), ("health", "GET"), ("model", "GET"), ("openapi.json", "GET"))


def _access_log_format() -> apigw.AccessLogFormat:
    field = apigw.AccessLogField
    return apigw.AccessLogFormat.custom(
        json.dumps(
            {
                "requestId": field.context_request_id(),
                "requestTime": field.context_request_time(),
                "ip": field.context_identity_source_ip(),
                "caller": field.context_identity_caller(),
                "user": field.context_identity_user(),
                "apiKeyId": field.context_identity_api_key_id(),
                "httpMethod": field.context_http_method(),
                "resourcePath": field.context_resource_path(),
                "protocol": field.context_protocol(),
                "status": field.context_status(),
                "responseLength": field.context_response_length(),
                "responseLatency": field.context_response_latency(),
                "integrationLatency": field.context_integration_latency(),
                "integrationStatus": field.context_integration_status(),
                "errorMessage": field.context_error_message(),
            }
        )
    )


class InferenceApi(Construct):
    """IAM (SigV4) authorisation on every method, or API keys with a usage plan, as ``serving.auth_mode`` says."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name: str,
        handler: lambda_.IFunction,
        serving: ServingConfig,
        log_retention_days: int,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        api_key_mode = serving.auth_mode == "api_key"
        self.access_logs = log_group(
            self, "AccessLogs", retention_days=log_retention_days, removal_policy=removal_policy
        )
        self.api = apigw.RestApi(
            self,
            "Api",
            rest_api_name=name,
            description="driftloop inference: POST /predict, /feedback; GET /health, /model, /openapi.json",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            # Access and execution logs need the region-wide API Gateway CloudWatch role. Retained on delete:
            # other APIs in the account rely on the same account setting.
            cloud_watch_role=serving.manage_api_gateway_account,
            cloud_watch_role_removal_policy=RemovalPolicy.RETAIN,
            deploy_options=apigw.StageOptions(
                stage_name=serving.api_stage_name,
                throttling_rate_limit=serving.throttle_rate_limit,
                throttling_burst_limit=serving.throttle_burst_limit,
                access_log_destination=apigw.LogGroupLogDestination(self.access_logs),
                access_log_format=_access_log_format(),
                tracing_enabled=True,
                metrics_enabled=True,
                # Execution logs for errors only, and never request bodies (they carry the callers' features).
                logging_level=apigw.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,
            ),
            default_method_options=(
                apigw.MethodOptions(api_key_required=True)
                if api_key_mode
                else apigw.MethodOptions(authorization_type=apigw.AuthorizationType.IAM)
            ),
        )
        # One integration for all routes; the console's test-invoke permission is not needed.
        integration = apigw.LambdaIntegration(handler, proxy=True, allow_test_invoke=False)
        for path, method in ROUTES:
            self.api.root.add_resource(path).add_method(method, integration)

        self.api_key: apigw.IApiKey | None = None
        if api_key_mode:
            self.api_key = self.api.add_api_key("ApiKey", api_key_name=f"{name}-key")
            plan = self.api.add_usage_plan(
                "UsagePlan",
                name=f"{name}-plan",
                throttle=apigw.ThrottleSettings(
                    rate_limit=serving.throttle_rate_limit, burst_limit=serving.throttle_burst_limit
                ),
                quota=apigw.QuotaSettings(limit=serving.quota_per_day, period=apigw.Period.DAY),
                api_stages=[apigw.UsagePlanPerApiStage(api=self.api, stage=self.api.deployment_stage)],
            )
            plan.add_api_key(self.api_key)
