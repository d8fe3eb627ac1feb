"""The REST API (API Gateway v1) in front of the inference Lambda.

Feedback labels flow into the training data and the gate, so ``POST /feedback`` trusts fewer callers than
``/predict``: it always requires IAM (SigV4), whatever ``serving.auth_mode`` says (an API key that may predict may
not label), and it has its own, lower throttle. Callers get ``execute-api:Invoke`` through one of two managed
policies: the predict policy (iam mode) and the feedback policy.

Every method requires an API key in both modes: each configured client (``serving.clients``) has its own key and
usage plan, so API Gateway throttles and counts each client apart and one cannot use up another's share. In iam
mode the key only says which client's limits apply; SigV4 still says who the caller is.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import cast

from aws_cdk import RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.config import ApiClientConfig, ServingConfig
from infra.constructs.log_group import log_group

# (path, method): every route the inference app serves, all through one Lambda proxy integration.
ROUTES = (("predict", "POST"), ("feedback", "POST"), ("health", "GET"), ("model", "GET"), ("openapi.json", "GET"))
FEEDBACK_ROUTE = ("feedback", "POST")
# What a predicting client calls: everything but feedback.
PREDICT_ROUTES = tuple(route for route in ROUTES if route != FEEDBACK_ROUTE)
# TLS 1.3 only, on the REGIONAL endpoint without a custom domain (edge-optimized endpoints take the *_EDGE
# policies). An enhanced ("SecurityPolicy_...") policy requires an endpoint access mode; STRICT also refuses requests
# whose TLS SNI does not match their Host header or that arrive through another endpoint type. Set on the
# CloudFormation resource: the RestApi L2 has no such props, and apigw.SecurityPolicy (for DomainName) renders to
# CloudFormation only through that L2, its Python value being the member name, not the policy name.
SECURITY_POLICY = "SecurityPolicy_TLS13_1_3_2025_09"
ENDPOINT_ACCESS_MODE = "STRICT"


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
    """IAM (SigV4) authorisation on every method, or API keys, as ``serving.auth_mode`` says; ``POST /feedback``
    always with IAM; a key with its client's usage plan on every method in both modes."""

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
            policy=_resource_policy(
                serving.api_stage_name, api_key_mode=api_key_mode, allowed_principals=serving.allowed_principals
            ),
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
                method_options={
                    _method_path(*FEEDBACK_ROUTE): apigw.MethodDeploymentOptions(
                        throttling_rate_limit=serving.feedback_throttle_rate_limit,
                        throttling_burst_limit=serving.feedback_throttle_burst_limit,
                    )
                },
            ),
            default_method_options=apigw.MethodOptions(
                api_key_required=True,
                authorization_type=apigw.AuthorizationType.NONE if api_key_mode else apigw.AuthorizationType.IAM,
            ),
        )
        rest_api = cast(apigw.CfnRestApi, self.api.node.default_child)
        rest_api.security_policy = SECURITY_POLICY
        rest_api.endpoint_access_mode = ENDPOINT_ACCESS_MODE
        # One integration for all routes; the console's test-invoke permission is not needed.
        integration = apigw.LambdaIntegration(handler, proxy=True, allow_test_invoke=False)
        for path, method in ROUTES:
            resource = self.api.root.add_resource(path)
            if (path, method) == FEEDBACK_ROUTE:
                feedback = resource.add_method(method, integration, authorization_type=apigw.AuthorizationType.IAM)
            else:
                resource.add_method(method, integration)

        self.feedback_policy = self._invoke_policy(
            "FeedbackInvokePolicy", "May post ground-truth labels: POST /feedback only", [FEEDBACK_ROUTE]
        )
        self.predict_policy: iam.ManagedPolicy | None = None
        if not api_key_mode:
            self.predict_policy = self._invoke_policy(
                "PredictInvokePolicy", "May call POST /predict and the read-only routes, not /feedback", PREDICT_ROUTES
            )

        # Client name -> its API key (the ApiKeyIds output lists their ids).
        self.api_keys = {
            client.name: self._client(client, f"{name}-{client.name}", feedback) for client in serving.clients
        }

    def _client(self, client: ApiClientConfig, name: str, feedback: apigw.Method) -> apigw.IApiKey:
        """The client's API key in a usage plan of its own: its throttle (and its lower one on ``/feedback``) and
        quota are counted for its key alone."""
        key = apigw.ApiKey(self, f"ApiKey-{client.name}", api_key_name=name, description=f"client {client.name}")
        plan = self.api.add_usage_plan(
            f"UsagePlan-{client.name}",
            name=name,
            description=f"client {client.name}: its own throttle and quota",
            throttle=apigw.ThrottleSettings(rate_limit=client.rate_limit, burst_limit=client.burst_limit),
            quota=(
                None
                if client.quota_per_day is None
                else apigw.QuotaSettings(limit=client.quota_per_day, period=apigw.Period.DAY)
            ),
            api_stages=[
                apigw.UsagePlanPerApiStage(
                    api=self.api,
                    stage=self.api.deployment_stage,
                    throttle=[
                        apigw.ThrottlingPerMethod(
                            method=feedback,
                            throttle=apigw.ThrottleSettings(
                                rate_limit=client.feedback_rate_limit, burst_limit=client.feedback_burst_limit
                            ),
                        )
                    ],
                )
            ],
        )
        plan.add_api_key(key)
        return key

    def _invoke_policy(
        self, construct_id: str, description: str, routes: Sequence[tuple[str, str]]
    ) -> iam.ManagedPolicy:
        """``execute-api:Invoke`` on exactly ``routes`` of the deployed stage; attach it to the callers."""
        stage = self.api.deployment_stage.stage_name
        return iam.ManagedPolicy(
            self,
            construct_id,
            description=description,
            statements=[
                iam.PolicyStatement(
                    actions=["execute-api:Invoke"],
                    resources=[self.api.arn_for_execute_api(method, f"/{path}", stage) for path, method in routes],
                )
            ],
        )


def _resource_policy(stage: str, *, api_key_mode: bool, allowed_principals: Sequence[str]) -> iam.PolicyDocument:
    """Who may reach the API at all, before authorisation: the account's own principals (each still needs an IAM
    permission, the invoke policies above, since the account root principal delegates to IAM), so no other account
    can call it even with a policy of its own. With API keys, the key routes are open to any caller holding a key
    (the key is their authentication); ``/feedback`` stays the account's. With ``allowed_principals``, the
    IAM-authorised routes refuse every other principal of the account too (an assumed role's session is judged by
    its role's ARN)."""
    statements = [
        iam.PolicyStatement(
            principals=[iam.AccountRootPrincipal()], actions=["execute-api:Invoke"], resources=["execute-api:/*"]
        )
    ]
    if api_key_mode:
        statements.append(
            iam.PolicyStatement(
                principals=[iam.AnyPrincipal()],
                actions=["execute-api:Invoke"],
                resources=[_execute_api_path(stage, *route) for route in PREDICT_ROUTES],
            )
        )
    if allowed_principals:
        signed = [FEEDBACK_ROUTE] if api_key_mode else ROUTES
        statements.append(
            iam.PolicyStatement(
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=["execute-api:Invoke"],
                resources=[_execute_api_path(stage, *route) for route in signed],
                conditions={"ArnNotLike": {"aws:PrincipalArn": list(allowed_principals)}},
            )
        )
    return iam.PolicyDocument(statements=statements)


def _execute_api_path(stage: str, path: str, method: str) -> str:
    return f"execute-api:/{stage}/{method}/{path}"


def _method_path(path: str, method: str) -> str:
    """The key of a method's stage settings: ``/<resource path>/<HTTP method>``."""
    return f"/{path}/{method}"
