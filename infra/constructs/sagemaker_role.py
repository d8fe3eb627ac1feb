"""The execution role SageMaker assumes to run a driftloop training job."""

from __future__ import annotations

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.grants import grant_prefix

TRAINING_LOG_GROUP = "/aws/sagemaker/TrainingJobs"
TRAINING_METRIC_NAMESPACE = "/aws/sagemaker/TrainingJobs"


class SageMakerExecutionRole(Construct):
    """Reads the training data and the registry (champion channel), writes training outputs, logs, metrics."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        data_bucket: s3.IBucket,
        training_data_prefix: str,
        model_bucket: s3.IBucket,
        registry_prefix: str,
        artifact_prefix: str,
        job_prefix: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="Runs driftloop training jobs",
        )
        grant_prefix(self.role, data_bucket, training_data_prefix, "read")
        grant_prefix(self.role, model_bucket, registry_prefix, "read")
        grant_prefix(self.role, model_bucket, artifact_prefix, "write")
        stack = Stack.of(self)
        self.log_group_arn = stack.format_arn(
            service="logs", resource="log-group", resource_name=f"{TRAINING_LOG_GROUP}:*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )  # fmt: skip
        self.log_stream_arn = stack.format_arn(
            service="logs", resource="log-group", resource_name=f"{TRAINING_LOG_GROUP}:log-stream:{job_prefix}-*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )  # fmt: skip
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogGroup", "logs:DescribeLogStreams"], resources=[self.log_group_arn]
            )
        )
        # Streams are named <job name>/algo-<n>-<timestamp>: only this stage's jobs can write.
        self.role.add_to_policy(
            iam.PolicyStatement(actions=["logs:CreateLogStream", "logs:PutLogEvents"], resources=[self.log_stream_arn])
        )
        # PutMetricData has no resource type; the namespace condition is the scope.
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": TRAINING_METRIC_NAMESPACE}},
            )
        )
