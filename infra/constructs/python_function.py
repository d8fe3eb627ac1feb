"""A Python Lambda function with explicit settings, its own role and its own log group."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import AssetHashType, BundlingOptions, Duration, RemovalPolicy, Size
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.bundling import REPO_ROOT, LambdaBundle, LocalPythonBundler
from infra.constructs.log_group import log_group


class PythonFunction(Construct):
    """python3.12 on x86_64 (the platform the bundled wheels are built for), X-Ray tracing on.

    The role starts empty: no AWSLambdaBasicExecutionRole, only write access to this function's log group,
    so every permission the function has is granted explicitly by its stack.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        code: lambda_.Code,
        handler: str,
        description: str,
        environment: Mapping[str, str],
        memory_mb: int,
        timeout: Duration,
        log_retention_days: int,
        removal_policy: RemovalPolicy,
        reserved_concurrency: int | None = None,
        ephemeral_storage_mb: int | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Execution role of {handler}",
        )
        self.log_group = log_group(self, "LogGroup", retention_days=log_retention_days, removal_policy=removal_policy)
        self.log_group.grant_write(self.role)
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=lambda_.Runtime.PYTHON_3_12,
            architecture=lambda_.Architecture.X86_64,
            code=code,
            handler=handler,
            description=description,
            role=self.role,
            environment=dict(environment),
            memory_size=memory_mb,
            timeout=timeout,
            tracing=lambda_.Tracing.ACTIVE,
            log_group=self.log_group,
            reserved_concurrent_executions=reserved_concurrency,
            ephemeral_storage_size=None if ephemeral_storage_mb is None else Size.mebibytes(ephemeral_storage_mb),
        )


def bundled_code(bundle: LambdaBundle) -> lambda_.Code:
    """A ZIP asset built by :class:`LocalPythonBundler`; the Docker image is named but never pulled."""
    bundler = LocalPythonBundler(bundle.sources, bundle.requirements.path)
    return lambda_.Code.from_asset(
        str(REPO_ROOT),
        asset_hash=bundler.asset_hash(),
        asset_hash_type=AssetHashType.CUSTOM,
        bundling=BundlingOptions(image=lambda_.Runtime.PYTHON_3_12.bundling_image, local=bundler),
    )
