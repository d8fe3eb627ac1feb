"""The batch scoring state machine (what SageMaker Batch Transform does, on Lambda).

    ResolveRequest -> ScoreObjects (a Distributed Map over listObjectsV2 of the input prefix: ScoreObject, one
                   object each) -> SummariseRun -> Verdict -> Scored | BatchFailed
    ScoreObjects fails (too many failed objects, or the listing failed) -> SummariseRun (the same verdict)

Resolve pins the model version once (the champion, or a named version), so every object of a run is scored by
the same model even if a promotion happens meanwhile. Each function has its own role, limited to what it does:
Resolve reads the registry; Score reads the registry, the input prefix, and writes predictions and its result;
Summarise lists the inputs, reads the results and writes the summary. Keys: ``functions/batch/layout.py``.
Score captures through its log (the serving stack subscribes its log group to the capture stream).
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from functions.batch.layout import BATCH
from functions.batch.settings import BatchSettings
from infra.bundling import BATCH as BATCH_BUNDLE
from infra.constructs.log_group import state_machine_log_group
from infra.constructs.python_function import PythonFunction, bundled_code
from infra.constructs.training_workflow import LAMBDA_TRANSIENT_ERRORS
from infra.grants import grant_missing_key_lookups, grant_prefix, objects_arn

HANDLERS = "functions.batch.handlers."
# The error of a run whose failed objects exceed the tolerated share; the cause is the summary's message.
FAILED_ERROR = "driftloop.BatchFailed"
# Objects scored at once: Lambda concurrency the run may take from the account.
MAX_CONCURRENCY = 20
# An object is scored within one invocation: Lambda's longest timeout bounds an object's size.
SCORE_TIMEOUT = Duration.minutes(15)
STEP_TIMEOUT = Duration.minutes(5)
STEP_MEMORY_MB = 256
RUN_TIMEOUT = Duration.hours(24)


class BatchScoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        state_machine_name: str,
        settings: BatchSettings,
        model_bucket: s3.IBucket,
        data_bucket: s3.IBucket,
        registry_prefix: str,
        score_memory_mb: int,
        log_retention_days: int,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        code = bundled_code(BATCH_BUNDLE)
        environment = settings.to_env()

        def function(name: str, handler: str, description: str, memory_mb: int, timeout: Duration) -> PythonFunction:
            return PythonFunction(
                self,
                name,
                code=code,
                handler=HANDLERS + handler,
                description=description,
                environment=environment,
                memory_mb=memory_mb,
                timeout=timeout,
                log_retention_days=log_retention_days,
                removal_policy=removal_policy,
            )

        self.resolve = function(
            "Resolve", "resolve_handler", "driftloop batch: checks a request, pins its model version",
            STEP_MEMORY_MB, STEP_TIMEOUT,
        )  # fmt: skip
        self.score = function(
            "Score", "score_handler", "driftloop batch: scores one CSV object with onnxruntime",
            score_memory_mb, SCORE_TIMEOUT,
        )  # fmt: skip
        self.summarise = function(
            "Summarise", "summarise_handler", "driftloop batch: counts a run's results and failures",
            STEP_MEMORY_MB, STEP_TIMEOUT,
        )  # fmt: skip
        # The registry: the champion pointer and versions, 404 (not 403) for a missing pointer.
        for step in (self.resolve, self.score):
            grant_prefix(step.role, model_bucket, registry_prefix, "read")
            grant_missing_key_lookups(step.role, model_bucket)
        grant_prefix(self.score.role, data_bucket, BATCH.input_prefix, "read")
        grant_prefix(self.score.role, data_bucket, BATCH.output_prefix, "write")
        grant_prefix(self.score.role, data_bucket, BATCH.runs_prefix, "write")
        grant_prefix(self.summarise.role, data_bucket, BATCH.input_prefix, "list")
        grant_prefix(self.summarise.role, data_bucket, BATCH.runs_prefix, "read-write")
        # A result not written yet must read as missing (404), not as forbidden.
        grant_missing_key_lookups(self.summarise.role, data_bucket)

        resolve = self._invoke(
            "ResolveRequest",
            self.resolve.function,
            {"request": sfn.JsonPath.entire_payload, "run": sfn.JsonPath.execution_name},
            "$.job",
        )
        score = self._invoke(
            "ScoreObject",
            self.score.function,
            {"key": sfn.JsonPath.string_at("$.key"), "job": sfn.JsonPath.object_at("$.job")},
        )
        score_objects = sfn.DistributedMap(
            self,
            "ScoreObjects",
            item_reader=sfn.S3ObjectsItemReader(bucket=data_bucket, prefix=sfn.JsonPath.string_at("$.job.prefix")),
            item_selector={
                "key": sfn.JsonPath.string_at("$$.Map.Item.Value.Key"),
                "job": sfn.JsonPath.object_at("$.job"),
            },
            max_concurrency=MAX_CONCURRENCY,
            # Standard children: an object may take Lambda's 15 minutes, beyond an Express execution's 5.
            map_execution_type=sfn.StateMachineType.STANDARD,
            tolerated_failure_percentage_path="$.job.tolerated_failure_percent",
            # The children's results go to S3, not into the state: a run of any number of objects stays within
            # the 256 KiB state limit. The summary reads the results Score writes itself.
            result_writer_v2=sfn.ResultWriterV2(bucket=data_bucket, prefix=BATCH.map_results_prefix),
            result_path=sfn.JsonPath.DISCARD,
        )
        score_objects.item_processor(score)
        summarise = self._invoke(
            "SummariseRun", self.summarise.function, {"job": sfn.JsonPath.object_at("$.job")}, "$.summary"
        )
        score_objects.add_catch(summarise, errors=["States.ALL"], result_path="$.map_error")
        verdict = (
            sfn.Choice(self, "Verdict")
            .when(
                sfn.Condition.string_equals("$.summary.outcome", "failed"),
                sfn.Fail(self, "BatchFailed", error=FAILED_ERROR, cause_path="$.summary.message"),
            )
            .otherwise(sfn.Succeed(self, "Scored", output_path="$.summary"))
        )
        self.log_group = state_machine_log_group(
            self,
            "Logs",
            state_machine_name=state_machine_name,
            retention_days=log_retention_days,
            removal_policy=removal_policy,
        )
        # CDK's own grants for a Distributed Map reach the whole data bucket (its S3 reader lists any key, its
        # result writer reads and writes any object): the state machine gets a role CDK cannot add to, and
        # exactly the statements below.
        self.role = iam.Role(
            self, "Role", assumed_by=iam.ServicePrincipal("states.amazonaws.com"), description="batch scoring runs"
        )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=state_machine_name,
            comment="driftloop batch scoring: every CSV object under a prefix, scored by one pinned model version",
            definition_body=sfn.DefinitionBody.from_chainable(
                resolve.next(score_objects).next(summarise).next(verdict)
            ),
            role=self.role.without_policy_updates(),
            timeout=RUN_TIMEOUT,
            tracing_enabled=True,
            logs=sfn.LogOptions(destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=False),
        )
        self._grant(data_bucket, (self.resolve, self.score, self.summarise))

    def _grant(self, data_bucket: s3.IBucket, steps: tuple[PythonFunction, ...]) -> None:
        role = self.role
        role.add_to_policy(
            iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[s.function.function_arn for s in steps])
        )
        # The Map's reader lists the input prefix; its writer puts the children's results below its own prefix.
        grant_prefix(role, data_bucket, BATCH.input_prefix, "list")
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
                resources=[objects_arn(data_bucket, BATCH.map_results_prefix)],
            )
        )
        # CloudWatch Logs delivery and X-Ray: actions without resource-level permissions (what CDK would grant).
        role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "logs:CreateLogDelivery", "logs:DeleteLogDelivery", "logs:DescribeLogGroups",
                    "logs:DescribeResourcePolicies", "logs:GetLogDelivery", "logs:ListLogDeliveries",
                    "logs:PutResourcePolicy", "logs:UpdateLogDelivery",
                    "xray:GetSamplingRules", "xray:GetSamplingTargets", "xray:PutTelemetryRecords",
                    "xray:PutTraceSegments",
                ],
                resources=["*"],
            )
        )  # fmt: skip
        # AWS checks the logging permissions when the state machine is created.
        self.state_machine.node.add_dependency(role)
        # (CDK adds the Map's own policy: start, describe and stop this state machine's child executions.)

    def _invoke(
        self, construct_id: str, function: lambda_.IFunction, payload: dict[str, Any], result_path: str | None = None
    ) -> tasks.LambdaInvoke:
        task = tasks.LambdaInvoke(
            self,
            construct_id,
            lambda_function=function,
            payload=sfn.TaskInput.from_object(payload),
            payload_response_only=True,
            retry_on_service_exceptions=False,
            result_path=result_path,
        )
        task.add_retry(
            errors=list(LAMBDA_TRANSIENT_ERRORS), interval=Duration.seconds(2), max_attempts=6, backoff_rate=2
        )
        return task
