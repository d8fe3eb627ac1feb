"""The training state machine.

    Guard -> Acquired? -> Assemble -> FeedbackQuery? -> AssembleFeedback -> HoldOut -> FinishAssembly -> Prepare
          -> Train -> Evaluate -> Register -> GatePassed? -> Promote | Reject -> Release -> Outcome
          -> Promoted | Superseded | Rejected
    FeedbackQuery? -> HoldOut                     (no feedback rows to add: nothing for Athena to write)
    GatePassed? -> Approval -> Promote            (a held version, and with retraining.approval every passed one:
                            -> Reject              an operator approves, or the run is rejected when one denies or
                                                   none answers in time)
    Guard -> Acquired? -> Skipped                 (lock held or cooldown; Guard recorded the "skipped" decision)
    any task fails -> RecordFailure -> ReleaseAfterFailure -> NotifyFailure -> TrainingFailed

Every path of a run that took the run lock passes through Release or ReleaseAfterFailure, which release it only
if this execution holds it (the execution id comes from the context object, so even a Guard that failed after
taking the lock is covered). A state machine timeout runs no state: the lock then goes stale after the timeout.

AssembleFeedback is Athena's ``startQueryExecution.sync``: the UNLOAD that Assemble planned writes the feedback
rows of the training set to S3 and the state machine waits for it; no Lambda holds those rows.

HoldOut moves the run's holdout out of the assembled set before the job can read it, and Evaluate, not the job,
scores the challenger and the champion on it: the verdict Register records rests on Evaluate's scores only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aws_cdk import Aws, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from functions.workflow.state import (
    APPROVAL_DENIED,
    APPROVAL_TIMEOUT,
    NOTIFY_FAILURE_ERROR,
    RECORD_FAILURE_ERROR,
    RELEASE_ERROR,
    Approval,
    ApprovalEvent,
    AssemblyPlan,
    AssemblyQuery,
    AssemblyResult,
    EvaluationResult,
    FailureResult,
    GuardResult,
    HoldoutResult,
    PrepareResult,
    PromotionResult,
    RegistrationResult,
    RejectionResult,
    ReleaseResult,
    StepError,
    StepEvent,
    TrainingResult,
    path,
)
from infra.constructs.encrypted_topic import EncryptedTopic
from infra.constructs.log_group import state_machine_log_group

# Transient Lambda service errors and throttling; errors raised by the function itself are not retried.
LAMBDA_TRANSIENT_ERRORS = (
    "Lambda.ClientExecutionTimeoutException",
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
)
# How the SageMaker integration reports API errors such as throttling; a failed job is States.TaskFailed.
SAGEMAKER_TRANSIENT_ERRORS = ("SageMaker.AmazonSageMakerException",)
# Athena's throttling, before a query starts; a failed query is States.TaskFailed (its location is then not empty:
# not retried).
ATHENA_TRANSIENT_ERRORS = ("Athena.TooManyRequestsException",)
# The error of a failed execution; its cause starts with the original error's name.
FAILED_ERROR = "driftloop.TrainingFailed"
SAGEMAKER_EVENTS_RULE = "StepFunctionsGetEventsForSageMakerTrainingJobsRule"


@dataclass(frozen=True)
class WorkflowFunctions:
    guard: lambda_.IFunction
    assemble: lambda_.IFunction
    hold_out: lambda_.IFunction
    finish_assembly: lambda_.IFunction
    prepare: lambda_.IFunction
    evaluate: lambda_.IFunction
    register: lambda_.IFunction
    promote: lambda_.IFunction
    reject: lambda_.IFunction
    record_failure: lambda_.IFunction
    release: lambda_.IFunction


@dataclass(frozen=True)
class ApprovalSpec:
    """A manual approval between the gate and Promote: ``function`` publishes the request with the task token
    (``{"token": $$.Task.Token, "state": $}``); ``driftloop approve`` / ``deny`` answer it. A held version always
    waits for it; a passed one only with ``every_pass`` (``retraining.approval.enabled``)."""

    function: lambda_.IFunction
    timeout: Duration
    every_pass: bool


@dataclass(frozen=True)
class QuerySpec:
    """Where the AssembleFeedback UNLOAD runs: the deployment's Athena workgroup and Glue database."""

    workgroup: str
    database: str


@dataclass(frozen=True)
class TrainingJobSpec:
    """The static part of every CreateTrainingJob request; the rest comes from Prepare at run time."""

    image_uri: str
    role: iam.IRole
    job_prefix: str
    instance_type: str
    instance_count: int
    volume_size_gb: int
    max_runtime_seconds: int
    metric_definitions: Sequence[Mapping[str, str]]
    tags: Mapping[str, str]


class TrainingWorkflow(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        state_machine_name: str,
        functions: WorkflowFunctions,
        job: TrainingJobSpec,
        query: QuerySpec,
        failure_topic: EncryptedTopic,
        timeout: Duration,
        log_retention_days: int,
        removal_policy: RemovalPolicy,
        approval: ApprovalSpec,
    ) -> None:
        super().__init__(scope, construct_id)
        self._job = job

        # Guard, RecordFailure and Release get the execution's id from the context object, beside the whole state:
        # a failure is recorded under its execution even when Guard failed and left no result.
        release_payload = sfn.TaskInput.from_object(
            StepEvent.payload(sfn.JsonPath.execution_id, sfn.JsonPath.entire_payload)
        )
        error, cause = StepError.path(StepError.NAME), StepError.path(StepError.CAUSE)

        record_failure = self._invoke(
            "RecordFailure", functions.record_failure, FailureResult.path(), payload=release_payload
        )
        release_after_failure = self._invoke(
            "ReleaseAfterFailure", functions.release, ReleaseResult.path(), payload=release_payload
        )
        notify_failure = tasks.SnsPublish(
            self,
            "NotifyFailure",
            topic=failure_topic.topic,
            subject=f"{state_machine_name} failed",
            message=sfn.TaskInput.from_object(
                {
                    "state_machine": state_machine_name,
                    "execution": sfn.JsonPath.execution_id,
                    "error": sfn.JsonPath.string_at(error),
                    "cause": sfn.JsonPath.string_at(cause),
                }
            ),
            result_path=sfn.JsonPath.DISCARD,
        )
        # The execution fails with the original error in its cause, whatever happened while recording it or
        # releasing the lock. The error name is fixed: Step Functions reserves "States." names (States.TaskFailed,
        # the usual one here) for itself and rejects them in a Fail state.
        failed = sfn.Fail(
            self,
            "TrainingFailed",
            error=FAILED_ERROR,
            cause_path=sfn.JsonPath.format("{}: {}", sfn.JsonPath.string_at(error), sfn.JsonPath.string_at(cause)),
        )
        notify_failure.add_retry(errors=["States.TaskFailed"], interval=Duration.seconds(5), max_attempts=3)
        notify_failure.add_catch(failed, errors=["States.ALL"], result_path=path(NOTIFY_FAILURE_ERROR))
        release_after_failure.add_catch(notify_failure, errors=["States.ALL"], result_path=path(RELEASE_ERROR))
        record_failure.add_catch(release_after_failure, errors=["States.ALL"], result_path=path(RECORD_FAILURE_ERROR))
        record_failure.next(release_after_failure).next(notify_failure).next(failed)

        guard = self._invoke(
            "Guard",
            functions.guard,
            GuardResult.path(),
            payload=sfn.TaskInput.from_object(
                StepEvent.payload(
                    sfn.JsonPath.execution_id, sfn.JsonPath.entire_payload, sfn.JsonPath.execution_start_time
                )
            ),
        )
        assemble = self._invoke("Assemble", functions.assemble, AssemblyPlan.path())
        assemble_feedback = self._unload_state(query)
        assemble_feedback.add_retry(
            errors=list(ATHENA_TRANSIENT_ERRORS), interval=Duration.seconds(5), max_attempts=5, backoff_rate=2
        )
        hold_out = self._invoke("HoldOut", functions.hold_out, HoldoutResult.path())
        finish_assembly = self._invoke("FinishAssembly", functions.finish_assembly, AssemblyResult.path())
        prepare = self._invoke("Prepare", functions.prepare, PrepareResult.path())
        train = self._train_state()
        evaluate = self._invoke("Evaluate", functions.evaluate, EvaluationResult.path())
        register = self._invoke("Register", functions.register, RegistrationResult.path())
        promote = self._invoke("Promote", functions.promote, PromotionResult.path())
        reject = self._invoke("Reject", functions.reject, RejectionResult.path())
        release = self._invoke("Release", functions.release, ReleaseResult.path(), payload=release_payload)
        caught = (
            guard,
            assemble,
            assemble_feedback,
            hold_out,
            finish_assembly,
            prepare,
            train,
            evaluate,
            register,
            promote,
            reject,
            release,
        )
        for task in caught:
            task.add_catch(record_failure, errors=["States.ALL"], result_path=StepError.path())

        # A Choice rule on a path that does not exist is a run-time error, so the first rule tells the paths apart
        # and the second reads $.promotion only on Promote's path, where it is always set.
        outcome = (
            sfn.Choice(self, "Outcome")
            .when(sfn.Condition.is_present(RejectionResult.path()), sfn.Succeed(self, "Rejected"))
            .when(sfn.Condition.boolean_equals(PromotionResult.path("promoted"), True), sfn.Succeed(self, "Promoted"))
            # Promote found the champion changed during training: recorded as rejected, the run ends cleanly.
            .otherwise(sfn.Succeed(self, "Superseded"))
        )
        release.next(outcome)
        promote.next(release)
        reject.next(release)
        approve = self._approval_state(approval, promote=promote, reject=reject, record_failure=record_failure)
        # Register always writes both flags (held never with passed): a held version waits for a person.
        gate = (
            sfn.Choice(self, "GatePassed?")
            .when(sfn.Condition.boolean_equals(RegistrationResult.path("held"), True), approve)
            .when(
                sfn.Condition.boolean_equals(RegistrationResult.path("passed"), True),
                approve if approval.every_pass else promote,
            )
            .otherwise(reject)
        )
        assemble_feedback.next(hold_out).next(finish_assembly).next(prepare).next(train).next(evaluate).next(
            register
        ).next(gate)
        acquired = (
            sfn.Choice(self, "Acquired?")
            .when(
                sfn.Condition.boolean_equals(GuardResult.path("acquired"), True),
                assemble.next(
                    sfn.Choice(self, "FeedbackQuery?")
                    .when(sfn.Condition.is_present(AssemblyPlan.path("unload")), assemble_feedback)
                    .otherwise(hold_out)
                ),
            )
            # Another run holds the lock, or the cooldown has not passed: Guard recorded a "skipped" decision.
            .otherwise(sfn.Succeed(self, "Skipped"))
        )

        self.log_group = state_machine_log_group(
            self,
            "Logs",
            state_machine_name=state_machine_name,
            retention_days=log_retention_days,
            removal_policy=removal_policy,
        )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=state_machine_name,
            comment="driftloop: one run at a time: assemble data, train a challenger, gate it, promote or reject it",
            definition_body=sfn.DefinitionBody.from_chainable(guard.next(acquired)),
            timeout=timeout,
            tracing_enabled=True,
            # Every event, but never the state or a task's parameters: the Approval state's parameters hold its
            # task token, which anyone who can read the log could answer the approval with.
            logs=sfn.LogOptions(destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=False),
        )
        failure_topic.grant_publish(self.state_machine)
        self._grant_training_job(self.state_machine.role)

    def _invoke(
        self,
        construct_id: str,
        function: lambda_.IFunction,
        result_path: str,
        *,
        payload: sfn.TaskInput | None = None,
    ) -> tasks.LambdaInvoke:
        """Invoke with the whole state as input (or ``payload``); the return value lands at ``result_path``."""
        task = tasks.LambdaInvoke(
            self,
            construct_id,
            lambda_function=function,
            payload=payload,
            payload_response_only=True,
            retry_on_service_exceptions=False,
            result_path=result_path,
        )
        _retry_transient_lambda_errors(task)
        return task

    def _approval_state(
        self, approval: ApprovalSpec, *, promote: sfn.State, reject: sfn.State, record_failure: sfn.State
    ) -> tasks.LambdaInvoke:
        """Waits for ``driftloop approve`` (its output lands at ``$.approval``, then Promote) or ``deny``; a denial
        or no answer within the timeout goes to Reject with the error at ``$.approval``. Promote and Reject verify
        the answer's proof: one they cannot verify fails the run (their Catch, to RecordFailure)."""
        task = tasks.LambdaInvoke(
            self,
            "Approval",
            lambda_function=approval.function,
            integration_pattern=sfn.IntegrationPattern.WAIT_FOR_TASK_TOKEN,
            payload=sfn.TaskInput.from_object(
                ApprovalEvent.payload(sfn.JsonPath.task_token, sfn.JsonPath.entire_payload)
            ),
            retry_on_service_exceptions=False,
            result_path=Approval.path(),
            task_timeout=sfn.Timeout.duration(approval.timeout),
        )
        _retry_transient_lambda_errors(task)
        task.add_catch(reject, errors=[APPROVAL_DENIED, APPROVAL_TIMEOUT], result_path=Approval.path())
        task.add_catch(record_failure, errors=["States.ALL"], result_path=StepError.path())
        task.next(promote)
        return task

    def _train_state(self) -> sfn.CustomState:
        # Raw ASL: the channel list is built by Prepare (a champion channel only when one exists), which the
        # SageMakerCreateTrainingJob construct cannot express.
        job = self._job
        state: dict[str, Any] = {
            "Type": "Task",
            "Resource": f"arn:{Aws.PARTITION}:states:::sagemaker:createTrainingJob.sync",
            "Parameters": {
                "TrainingJobName.$": PrepareResult.path("training_job_name"),
                "HyperParameters.$": PrepareResult.path("hyperparameters"),
                "InputDataConfig.$": PrepareResult.path("input_data_config"),
                "OutputDataConfig": {"S3OutputPath.$": PrepareResult.path("output_path")},
                "AlgorithmSpecification": {
                    "TrainingImage": job.image_uri,
                    "TrainingInputMode": "File",
                    "MetricDefinitions": [dict(definition) for definition in job.metric_definitions],
                },
                "RoleArn": job.role.role_arn,
                "ResourceConfig": {
                    "InstanceType": job.instance_type,
                    "InstanceCount": job.instance_count,
                    "VolumeSizeInGB": job.volume_size_gb,
                },
                "StoppingCondition": {"MaxRuntimeInSeconds": job.max_runtime_seconds},
                # The training program reads only its channels and writes only /opt/ml (training/): the container
                # gets no network at all, so a compromised dependency cannot send data out or fetch code.
                "EnableNetworkIsolation": True,
                "Tags": [
                    *({"Key": key, "Value": value} for key, value in job.tags.items()),
                    {"Key": "driftloop:version", "Value.$": PrepareResult.path("version")},
                ],
            },
            "ResultSelector": TrainingResult.SELECTOR,
            "ResultPath": TrainingResult.path(),
        }
        train = sfn.CustomState(self, "Train", state_json=state)
        train.add_retry(
            errors=list(SAGEMAKER_TRANSIENT_ERRORS), interval=Duration.seconds(10), max_attempts=5, backoff_rate=2
        )
        return train

    def _unload_state(self, query: QuerySpec) -> sfn.CustomState:
        # Raw ASL, as for Train: tasks.AthenaStartQueryExecution would grant the role Glue catalog writes and S3
        # on every bucket; the stack grants what the UNLOAD reads and writes instead. The workgroup sets where
        # the query's own results go.
        state: dict[str, Any] = {
            "Type": "Task",
            "Resource": f"arn:{Aws.PARTITION}:states:::athena:startQueryExecution.sync",
            "Parameters": {
                "QueryString.$": AssemblyPlan.path("unload"),
                "WorkGroup": query.workgroup,
                "QueryExecutionContext": {"Database": query.database},
            },
            "ResultSelector": AssemblyQuery.SELECTOR,
            "ResultPath": AssemblyQuery.path(),
        }
        return sfn.CustomState(self, "AssembleFeedback", state_json=state)

    def _grant_training_job(self, role: iam.IRole) -> None:
        """What ``createTrainingJob.sync`` needs, which a CustomState does not add by itself."""
        stack = Stack.of(self)
        self.training_jobs_arn = stack.format_arn(
            service="sagemaker", resource="training-job", resource_name=f"{self._job.job_prefix}-*"
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=[
                    "sagemaker:CreateTrainingJob",
                    "sagemaker:DescribeTrainingJob",
                    "sagemaker:StopTrainingJob",
                    "sagemaker:AddTags",
                    "sagemaker:ListTags",
                ],
                resources=[self.training_jobs_arn],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["iam:PassRole"],
                resources=[self._job.role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            )
        )
        # .sync waits for the job through this Step Functions-managed EventBridge rule.
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"],
                resources=[stack.format_arn(service="events", resource="rule", resource_name=SAGEMAKER_EVENTS_RULE)],
            )
        )


def _retry_transient_lambda_errors(task: tasks.LambdaInvoke) -> None:
    task.add_retry(errors=list(LAMBDA_TRANSIENT_ERRORS), interval=Duration.seconds(2), max_attempts=6, backoff_rate=2)
