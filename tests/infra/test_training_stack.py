"""The training stack: the state machine's states and error handling, its IAM, the SageMaker role, the Lambdas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import Stack, Stage
from aws_cdk.assertions import Match, Template
from aws_cdk.cx_api import CloudAssembly

from cli import remote_training
from functions.workflow.settings import ApprovalSettings, WorkflowSettings
from functions.workflow.state import APPROVAL_DENIED, APPROVAL_TIMEOUT
from infra.bundling import EVALUATE, HOLDOUT, WORKFLOW, LambdaBundle
from infra.constructs.capture_catalog import CATALOG_ACTIONS, RESULT_UPLOAD_ACTIONS
from infra.constructs.training_workflow import FAILED_ERROR
from infra.stacks.wiring import DriftloopStacks
from tests.infra.conftest import function_environment
from training.contract import METRIC_DEFINITIONS

# Every task of a run catches everything into RecordFailure.
TASKS = (
    "Guard",
    "Assemble",
    "AssembleFeedback",
    "HoldOut",
    "FinishAssembly",
    "Prepare",
    "Train",
    "Evaluate",
    "Register",
    "Promote",
    "Reject",
    "Release",
)
FUNCTIONS = (
    "Guard",
    "Assemble",
    "FinishAssembly",
    "Prepare",
    "Register",
    "Promote",
    "Reject",
    "RecordFailure",
    "Release",
)
RELEASES = ("Release", "ReleaseAfterFailure")
MODEL_BUCKET = {"Fn::ImportValue": "driftloop-dev-ModelBucketName"}
DATA_BUCKET = {"Fn::ImportValue": "driftloop-dev-DataBucketName"}


def _token(part: dict[str, Any]) -> str:
    if "Fn::GetAtt" in part:
        return "<{}.{}>".format(*part["Fn::GetAtt"])
    if "Ref" in part:
        return f"<{part['Ref']}>"
    return "<token>"


def definition_states(template: Template) -> dict[str, Any]:
    [machine] = template.find_resources("AWS::StepFunctions::StateMachine").values()
    parts = machine["Properties"]["DefinitionString"]["Fn::Join"][1]
    definition = json.loads("".join(part if isinstance(part, str) else _token(part) for part in parts))
    assert definition["StartAt"] == "Guard"
    return dict(definition["States"])


@pytest.fixture(scope="module")
def states(training_template: Template) -> dict[str, Any]:
    return definition_states(training_template)


def successors(state: dict[str, Any]) -> list[str]:
    """Every state a state can hand over to: Next, Choice rules and Default, Catch targets."""
    found = [state["Next"]] if "Next" in state else []
    found += [rule["Next"] for rule in state.get("Choices", [])]
    found += [state["Default"]] if "Default" in state else []
    found += [catch["Next"] for catch in state.get("Catch", [])]
    return found


def paths_from(states: dict[str, Any], start: str) -> list[list[str]]:
    """Every path from ``start`` to an end state (Succeed or Fail); fails on a cycle."""
    paths: list[list[str]] = []

    def walk(path: list[str]) -> None:
        nexts = successors(states[path[-1]])
        if not nexts:
            assert states[path[-1]]["Type"] in ("Succeed", "Fail"), path
            paths.append(path)
        for name in nexts:
            assert name not in path, f"cycle: {[*path, name]}"
            walk([*path, name])

    walk([start])
    return paths


def assembly_of(stack: Stack) -> CloudAssembly:
    stage = Stage.of(stack)
    assert stage is not None
    return stage.synth()


def object_arn(bucket: dict[str, str], prefix: str) -> dict[str, Any]:
    return {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":s3:::", bucket, f"/{prefix}*"]]}


def statements(template: Template, policy: str) -> list[dict[str, Any]]:
    [document] = [
        resource["Properties"]["PolicyDocument"]
        for logical_id, resource in template.find_resources("AWS::IAM::Policy").items()
        if logical_id.startswith(policy)
    ]
    return list(document["Statement"])


def actions_on(template: Template, policy: str, resource: Any) -> set[str]:
    """Every action the policy allows on ``resource``."""
    found: set[str] = set()
    for statement in statements(template, policy):
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        if resource in resources:
            actions = statement["Action"]
            found.update([actions] if isinstance(actions, str) else actions)
    return found


def test_state_machine_is_named_from_config(training_template: Template) -> None:
    training_template.has_resource_properties(
        "AWS::StepFunctions::StateMachine", {"StateMachineName": "driftloop-dev-training"}
    )


def test_states_run_guard_assemble_hold_out_prepare_train_evaluate_register_the_gate_then_release(
    states: dict[str, Any],
) -> None:
    assert states["Guard"]["Next"] == "Acquired?"
    acquired = states["Acquired?"]
    assert acquired["Type"] == "Choice"
    assert acquired["Choices"] == [{"Variable": "$.guard.acquired", "BooleanEquals": True, "Next": "Assemble"}]
    assert acquired["Default"] == "Skipped"
    assert states["Assemble"]["Next"] == "FeedbackQuery?"
    # Athena writes the feedback rows only when Assemble planned an UNLOAD; the base data alone needs none.
    query = states["FeedbackQuery?"]
    assert query["Choices"] == [{"Variable": "$.assembly_plan.unload", "IsPresent": True, "Next": "AssembleFeedback"}]
    assert query["Default"] == "HoldOut"
    # Both ways, the holdout leaves the assembled set before the manifest lists it and the job reads it.
    assert states["AssembleFeedback"]["Next"] == "HoldOut"
    assert states["HoldOut"]["Next"] == "FinishAssembly"
    assert states["FinishAssembly"]["Next"] == "Prepare"
    assert states["Prepare"]["Next"] == "Train"
    # The gate judges what Evaluate scored, not what the job says.
    assert states["Train"]["Next"] == "Evaluate"
    assert states["Evaluate"]["Next"] == "Register"
    assert states["Register"]["Next"] == "GatePassed?"
    gate = states["GatePassed?"]
    assert gate["Type"] == "Choice"
    # A held version waits for a person even with retraining.approval off; a passed one promotes at once.
    assert gate["Choices"] == [
        {"Variable": "$.registration.held", "BooleanEquals": True, "Next": "Approval"},
        {"Variable": "$.registration.passed", "BooleanEquals": True, "Next": "Promote"},
    ]
    assert gate["Default"] == "Reject"
    assert states["Promote"]["Next"] == states["Reject"]["Next"] == "Release"
    assert states["Release"]["Next"] == "Outcome"
    outcome = states["Outcome"]
    # A Choice rule on a missing path is a run-time error: the first rule tells Reject's path from Promote's, so
    # $.promotion.promoted is only read where Promote has set it.
    assert outcome["Choices"] == [
        {"Variable": "$.rejection", "IsPresent": True, "Next": "Rejected"},
        {"Variable": "$.promotion.promoted", "BooleanEquals": True, "Next": "Promoted"},
    ]
    assert outcome["Default"] == "Superseded"
    for end in ("Promoted", "Rejected", "Superseded", "Skipped"):
        assert states[end] == {"Type": "Succeed"}


def test_a_skipped_run_ends_in_succeed_right_after_guard_and_leaves_the_lock_alone(states: dict[str, Any]) -> None:
    # Guard records the "skipped" decision itself; the lock is another run's, so nothing on this path releases it.
    skipped = [path for path in paths_from(states, "Guard") if path[-1] == "Skipped"]
    assert skipped == [["Guard", "Acquired?", "Skipped"]]


def test_every_path_of_a_run_that_took_the_lock_releases_it(states: dict[str, Any]) -> None:
    run_paths = [path for path in paths_from(states, "Guard") if path[-1] != "Skipped"]
    assert {path[-1] for path in run_paths} == {"Promoted", "Rejected", "Superseded", "TrainingFailed"}
    for path in run_paths:
        assert any(name in RELEASES for name in path), f"never released: {' -> '.join(path)}"
    # Success ends come right after Release; failures go through ReleaseAfterFailure before the notification,
    # also when recording the failure failed (RecordFailure's Catch).
    for path in run_paths:
        if path[-1] == "TrainingFailed":
            assert path[path.index("RecordFailure") + 1] == "ReleaseAfterFailure", path
            assert path.index("ReleaseAfterFailure") < path.index("NotifyFailure"), path
        else:
            assert path[-3:-1] == ["Release", "Outcome"], path


def test_a_failing_release_is_recorded_and_retried_on_the_failure_path_without_a_loop(states: dict[str, Any]) -> None:
    assert states["Release"]["Catch"] == [
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "RecordFailure"}
    ]
    assert states["ReleaseAfterFailure"]["Catch"][0]["Next"] == "NotifyFailure"
    paths_from(states, "Guard")  # asserts there is no cycle


def test_every_task_state_catches_everything(states: dict[str, Any]) -> None:
    tasks = [name for name, state in states.items() if state["Type"] == "Task"]
    assert set(tasks) == {*TASKS, "Approval", "RecordFailure", "ReleaseAfterFailure", "NotifyFailure"}
    for name in tasks:
        # Approval first sends a denial or a timeout to Reject (its own test).
        catches = states[name]["Catch"][1:] if name == "Approval" else states[name]["Catch"]
        assert [catch["ErrorEquals"] for catch in catches] == [["States.ALL"]], name


def test_guard_record_failure_and_release_get_the_execution_id_from_the_context_object(
    states: dict[str, Any],
) -> None:
    assert states["Guard"]["Parameters"] == {
        "execution_id.$": "$$.Execution.Id",
        "started_at.$": "$$.Execution.StartTime",
        "state.$": "$",
    }
    for name in RELEASES:
        assert states[name]["Parameters"] == {"execution_id.$": "$$.Execution.Id", "state.$": "$"}
        assert states[name]["Resource"].startswith("<ReleaseFunction")
        assert states[name]["ResultPath"] == "$.release"
    assert states["RecordFailure"]["Parameters"] == {"execution_id.$": "$$.Execution.Id", "state.$": "$"}


def test_lambda_steps_put_their_results_where_the_next_steps_read_them(states: dict[str, Any]) -> None:
    expected = {
        "Guard": ("$.guard", "<GuardFunction"),
        "Assemble": ("$.assembly_plan", "<AssembleFunction"),
        "HoldOut": ("$.holdout", "<HoldOutFunction"),
        "FinishAssembly": ("$.assembly", "<FinishAssemblyFunction"),
        "Prepare": ("$.prepare", "<PrepareFunction"),
        "Evaluate": ("$.evaluation", "<EvaluateFunction"),
        "Register": ("$.registration", "<RegisterFunction"),
        "Promote": ("$.promotion", "<PromoteFunction"),
        "Reject": ("$.rejection", "<RejectFunction"),
        "RecordFailure": ("$.failure", "<RecordFailureFunction"),
    }
    for name, (result_path, function) in expected.items():
        assert states[name]["ResultPath"] == result_path
        # The function ARN itself: the state's whole input is the payload and its return value the result.
        assert states[name]["Resource"].startswith(function)
        if name not in ("Guard", "RecordFailure"):
            assert "Parameters" not in states[name]


def test_train_runs_a_sagemaker_training_job_and_waits_for_it(states: dict[str, Any]) -> None:
    train = states["Train"]
    assert train["Resource"] == "arn:<AWS::Partition>:states:::sagemaker:createTrainingJob.sync"
    parameters = train["Parameters"]
    assert parameters["TrainingJobName.$"] == "$.prepare.training_job_name"
    assert parameters["HyperParameters.$"] == "$.prepare.hyperparameters"
    assert parameters["InputDataConfig.$"] == "$.prepare.input_data_config"
    assert parameters["OutputDataConfig"] == {"S3OutputPath.$": "$.prepare.output_path"}
    assert parameters["RoleArn"].startswith("<SageMakerExecutionRole")
    assert parameters["ResourceConfig"] == {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10}
    assert parameters["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600}
    # The training program reads only its channels: the container gets no network.
    assert parameters["EnableNetworkIsolation"] is True
    assert {"Key": "driftloop:version", "Value.$": "$.prepare.version"} in parameters["Tags"]
    algorithm = parameters["AlgorithmSpecification"]
    assert algorithm["TrainingInputMode"] == "File"
    assert algorithm["MetricDefinitions"] == METRIC_DEFINITIONS
    assert train["ResultSelector"] == {
        "TrainingJobName.$": "$.TrainingJobName",
        "TrainingJobStatus.$": "$.TrainingJobStatus",
        "ModelArtifacts": {"S3ModelArtifacts.$": "$.ModelArtifacts.S3ModelArtifacts"},
        "FinalMetricDataList.$": "$.FinalMetricDataList",
    }
    assert train["ResultPath"] == "$.training"


def test_assemble_feedback_runs_the_planned_unload_in_the_workgroup_and_waits_for_it(states: dict[str, Any]) -> None:
    unload = states["AssembleFeedback"]
    assert unload["Resource"] == "arn:<AWS::Partition>:states:::athena:startQueryExecution.sync"
    assert unload["Parameters"] == {
        "QueryString.$": "$.assembly_plan.unload",
        "WorkGroup": "driftloop-dev",
        "QueryExecutionContext": {"Database": "driftloop_dev"},
    }
    assert unload["ResultSelector"] == {
        "QueryExecutionId.$": "$.QueryExecution.QueryExecutionId",
        "DataScannedInBytes.$": "$.QueryExecution.Statistics.DataScannedInBytes",
    }
    assert unload["ResultPath"] == "$.assembly_query"


@pytest.mark.parametrize("name", TASKS)
def test_every_task_retries_transient_errors_and_catches_everything_into_record_failure(
    states: dict[str, Any], name: str
) -> None:
    state = states[name]
    retried = {error for retry in state["Retry"] for error in retry["ErrorEquals"]}
    if name == "Train":
        assert retried == {"SageMaker.AmazonSageMakerException"}
    elif name == "AssembleFeedback":
        # A failed UNLOAD may have written part of its files: its location is no longer empty, not retried.
        assert retried == {"Athena.TooManyRequestsException"}
    else:
        assert {"Lambda.ServiceException", "Lambda.TooManyRequestsException"} <= retried
        # Errors the function raises itself are failures, not retried.
        assert "States.ALL" not in retried and "States.TaskFailed" not in retried
    assert state["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "RecordFailure"}]


def test_failures_are_recorded_released_notified_then_fail_with_the_original_error(states: dict[str, Any]) -> None:
    record = states["RecordFailure"]
    assert record["Next"] == "ReleaseAfterFailure"
    # Recording itself may fail: the lock is still released and the run notified.
    assert record["Catch"] == [
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.record_failure_error", "Next": "ReleaseAfterFailure"}
    ]
    assert record["Retry"]
    release = states["ReleaseAfterFailure"]
    assert release["Next"] == "NotifyFailure"
    assert release["Catch"] == [
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.release_error", "Next": "NotifyFailure"}
    ]
    assert release["Retry"]
    notify = states["NotifyFailure"]
    assert notify["Resource"] == "arn:<AWS::Partition>:states:::sns:publish"
    assert notify["Parameters"]["TopicArn"].startswith("<FailureTopic")
    assert notify["Parameters"]["Message"]["error.$"] == "$.error.Error"
    assert notify["Next"] == "TrainingFailed"
    assert notify["Retry"] and notify["Catch"][0]["Next"] == "TrainingFailed"
    assert states["TrainingFailed"] == {
        "Type": "Fail",
        "Error": FAILED_ERROR,
        "CausePath": "States.Format('{}: {}', $.error.Error, $.error.Cause)",
    }


def test_state_machine_logs_all_events_without_execution_data_traces_and_times_out(
    training_template: Template,
) -> None:
    # Without execution data: a log line never holds the state or the Approval state's task token.
    training_template.has_resource_properties(
        "AWS::StepFunctions::StateMachine",
        {
            "LoggingConfiguration": {"Level": "ALL", "IncludeExecutionData": False, "Destinations": Match.any_value()},
            "TracingConfiguration": {"Enabled": True},
        },
    )
    training_template.has_resource_properties(
        "AWS::Logs::LogGroup", {"LogGroupName": "/aws/vendedlogs/states/driftloop-dev-training", "RetentionInDays": 30}
    )
    [machine] = training_template.find_resources("AWS::StepFunctions::StateMachine").values()
    definition = "".join(p for p in machine["Properties"]["DefinitionString"]["Fn::Join"][1] if isinstance(p, str))
    assert '"TimeoutSeconds":7200' in definition


def test_state_machine_may_pass_only_the_sagemaker_role_and_only_to_sagemaker(training_template: Template) -> None:
    passes = [s for s in statements(training_template, "WorkflowStateMachineRole") if s["Action"] == "iam:PassRole"]
    assert len(passes) == 1
    assert passes[0]["Resource"]["Fn::GetAtt"][0].startswith("SageMakerExecutionRole")
    assert passes[0]["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}


def test_state_machine_manages_only_this_stages_training_jobs(training_template: Template) -> None:
    jobs = {
        "Fn::Join": [
            "",
            [
                "arn:", {"Ref": "AWS::Partition"}, ":sagemaker:", {"Ref": "AWS::Region"}, ":",
                {"Ref": "AWS::AccountId"}, ":training-job/driftloop-dev-*",
            ],
        ]
    }  # fmt: skip
    assert actions_on(training_template, "WorkflowStateMachineRole", jobs) == {
        "sagemaker:CreateTrainingJob",
        "sagemaker:DescribeTrainingJob",
        "sagemaker:StopTrainingJob",
        "sagemaker:AddTags",
        "sagemaker:ListTags",
    }
    sagemaker_actions = {
        action
        for statement in statements(training_template, "WorkflowStateMachineRole")
        for action in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
        if action.startswith("sagemaker:")
    }
    assert sagemaker_actions == actions_on(training_template, "WorkflowStateMachineRole", jobs)


def test_state_machine_may_manage_only_the_sagemaker_events_rule(training_template: Template) -> None:
    rule = {
        "Fn::Join": [
            "",
            [
                "arn:", {"Ref": "AWS::Partition"}, ":events:", {"Ref": "AWS::Region"}, ":",
                {"Ref": "AWS::AccountId"}, ":rule/StepFunctionsGetEventsForSageMakerTrainingJobsRule",
            ],
        ]
    }  # fmt: skip
    assert actions_on(training_template, "WorkflowStateMachineRole", rule) == {
        "events:PutTargets",
        "events:PutRule",
        "events:DescribeRule",
    }


def test_state_machine_publishes_to_the_encrypted_failure_topic(training_template: Template) -> None:
    policy = statements(training_template, "WorkflowStateMachineRole")
    [publish] = [s for s in policy if s["Action"] == "sns:Publish"]
    assert publish["Resource"]["Ref"].startswith("FailureTopic")
    kms = [s for s in policy if isinstance(s["Action"], list) and "kms:GenerateDataKey" in s["Action"]]
    assert kms and kms[0]["Action"] == ["kms:Decrypt", "kms:GenerateDataKey"]
    training_template.has_resource_properties(
        "AWS::SNS::Topic", {"KmsMasterKeyId": {"Fn::GetAtt": [Match.string_like_regexp("^FailureTopicKey"), "Arn"]}}
    )
    training_template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})
    training_template.has_resource_properties(
        "AWS::SNS::TopicPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [Match.object_like({"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}})]
                )
            }
        },
    )


def test_sagemaker_role_is_assumed_by_sagemaker_only(training_template: Template) -> None:
    training_template.has_resource_properties(
        "AWS::IAM::Role",
        {
            "AssumeRolePolicyDocument": {
                "Statement": [
                    {"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}}
                ]
            },
            "ManagedPolicyArns": Match.absent(),
        },
    )


def test_sagemaker_role_reads_assembled_data_and_registry_and_writes_only_training_outputs(
    training_template: Template,
) -> None:
    role = "SageMakerExecutionRole"
    # The train channel is the run's assembled data set; the base data is read by Assemble only.
    assert actions_on(training_template, role, object_arn(DATA_BUCKET, "assembled/")) == {"s3:GetObject"}
    assert actions_on(training_template, role, object_arn(DATA_BUCKET, "training-data/")) == set()
    assert actions_on(training_template, role, object_arn(MODEL_BUCKET, "registry/")) == {"s3:GetObject"}
    assert actions_on(training_template, role, object_arn(MODEL_BUCKET, "training-jobs/")) == {"s3:PutObject"}
    writes = [s for s in statements(training_template, role) if "s3:PutObject" in json.dumps(s["Action"])]
    assert len(writes) == 1


def test_the_stack_outputs_what_a_remote_training_job_needs_to_run_as_the_workflow_runs_one(
    training_template: Template,
) -> None:
    outputs = {name: output["Value"] for name, output in training_template.find_outputs("*").items()}
    assert set(remote_training.OUTPUTS) <= set(outputs)
    # The image built from training/Dockerfile, the workflow's role and job prefix.
    assert outputs["TrainingImageUri"]["Fn::Sub"].startswith("${AWS::AccountId}.dkr.ecr.${AWS::Region}.")
    assert outputs["SageMakerRoleArn"]["Fn::GetAtt"][0].startswith("SageMakerExecutionRole")
    assert outputs["TrainingJobPrefix"] == "driftloop-dev"
    # The prefixes the role reads below and writes below (test above).
    assert outputs["TrainingInputUri"]["Fn::Join"][1] == [
        "s3://",
        {"Fn::ImportValue": "driftloop-dev-DataBucketName"},
        "/assembled/",
    ]
    assert outputs["TrainingOutputUri"]["Fn::Join"][1] == [
        "s3://",
        {"Fn::ImportValue": "driftloop-dev-ModelBucketName"},
        "/training-jobs/",
    ]


def test_sagemaker_role_logs_and_publishes_metrics_only_for_training_jobs(training_template: Template) -> None:
    policy = statements(training_template, "SageMakerExecutionRole")
    [metrics] = [s for s in policy if s["Action"] == "cloudwatch:PutMetricData"]
    assert metrics["Condition"] == {"StringEquals": {"cloudwatch:namespace": "/aws/sagemaker/TrainingJobs"}}
    [streams] = [s for s in policy if s["Action"] == ["logs:CreateLogStream", "logs:PutLogEvents"]]
    assert streams["Resource"]["Fn::Join"][1][-1] == ":log-group:/aws/sagemaker/TrainingJobs:log-stream:driftloop-dev-*"


def test_sagemaker_role_pulls_the_training_image(training_template: Template) -> None:
    policy = statements(training_template, "SageMakerExecutionRole")
    assert any(
        s["Action"] == ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
        for s in policy
    )


@pytest.mark.parametrize("name", FUNCTIONS)
def test_workflow_function_settings(training_template: Template, name: str) -> None:
    handler = "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")
    training_template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Handler": f"functions.workflow.handlers.{handler}",
            "Runtime": "python3.12",
            "Architectures": ["x86_64"],
            "MemorySize": 512,
            "Timeout": 300,
            "TracingConfig": {"Mode": "Active"},
            "LoggingConfig": {"LogGroup": {"Ref": Match.string_like_regexp(f"^{name}FunctionLogGroup")}},
            "Environment": {
                "Variables": {
                    "DRIFTLOOP_MODEL_BUCKET": MODEL_BUCKET,
                    "DRIFTLOOP_REGISTRY_PREFIX": "registry/",
                    "DRIFTLOOP_DATA_BUCKET": DATA_BUCKET,
                    "DRIFTLOOP_TRAINING_DATA_PREFIX": "training-data/",
                    "DRIFTLOOP_ARTIFACT_PREFIX": "training-jobs/",
                    "DRIFTLOOP_JOB_PREFIX": "driftloop-dev",
                    # The serving Lambda's limits, so that training refuses a bundle it could not load.
                    "DRIFTLOOP_HYPERPARAMETERS": json.dumps(
                        {
                            "algorithm": "hist_gradient_boosting",
                            "target": "churned",
                            "serving_memory_mb": "1024",
                            "serving_timeout_seconds": "10",
                        },
                        sort_keys=True,
                    ),
                    "DRIFTLOOP_ASSEMBLED_PREFIX": "assembled/",
                    "DRIFTLOOP_CAPTURE_PREFIX": "captures/",
                    "DRIFTLOOP_HOLDOUT_PREFIX": "holdouts/",
                    "DRIFTLOOP_HOLDOUT_SHARE": "0.2",
                    "GLUE_DATABASE": "driftloop_dev",
                    "ATHENA_WORKGROUP": "driftloop-dev",
                    "DRIFTLOOP_INCLUDE_FEEDBACK": "true",
                    "DRIFTLOOP_MAX_FEEDBACK_SHARE": "0.3",
                    "DRIFTLOOP_NEW_VALUE_MIN_CALLERS": "3",
                    "DRIFTLOOP_FEEDBACK_MAX_AGE_DAYS": "30",
                    "DRIFTLOOP_COOLDOWN_MINUTES": "360",
                    "DRIFTLOOP_LOCK_TIMEOUT_SECONDS": "7200",
                    "DRIFTLOOP_MODEL_PACKAGE_GROUP": "driftloop-dev",
                    "POWERTOOLS_SERVICE_NAME": "driftloop-dev-workflow",
                    "POWERTOOLS_LOG_LEVEL": "INFO",
                }
            },
        },
    )


@pytest.mark.parametrize("name", FUNCTIONS)
def test_every_workflow_function_gets_exactly_the_workflow_contract_and_reads_it_back(
    training_template: Template, name: str
) -> None:
    handler = "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")
    environment = function_environment(training_template, f"functions.workflow.handlers.{handler}")

    assert set(environment) == set(WorkflowSettings.variables().values())
    settings = WorkflowSettings.from_env(environment)
    assert (settings.service, settings.registry_prefix, settings.lock_timeout_seconds) == (
        "driftloop-dev-workflow",
        "registry/",
        7200,
    )
    assert settings.model_bucket == json.dumps(MODEL_BUCKET) and settings.include_feedback is True


def test_workflow_functions_have_no_managed_policies(training_template: Template) -> None:
    for resource in training_template.find_resources("AWS::IAM::Role").values():
        assert "ManagedPolicyArns" not in resource["Properties"]


CHAMPION = {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":s3:::", MODEL_BUCKET, "/registry/champion.json"]]}
READ_WRITE = {"s3:GetObject", "s3:PutObject"}


def object_actions(template: Template, role: str) -> dict[str, set[str]]:
    """Every object ARN the role's policy names (as its key or prefix pattern, e.g. 'registry/decisions/*')
    -> the actions allowed on it."""
    found: dict[str, set[str]] = {}
    for statement in statements(template, role):
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        for resource in resources:
            parts = resource.get("Fn::Join", ["", []])[1] if isinstance(resource, dict) else []
            if parts and isinstance(parts[-1], str) and parts[-1].startswith("/"):
                bucket = "model" if parts[-2] == MODEL_BUCKET else "data"
                found.setdefault(f"{bucket}:{parts[-1][1:]}", set()).update(actions)
    return found


def test_prepare_reads_only_the_champion_pointer(training_template: Template) -> None:
    assert object_actions(training_template, "PrepareFunctionRole") == {
        "model:registry/champion.json": {"s3:GetObject"}
    }


def test_only_promote_may_write_the_champion_pointer(training_template: Template) -> None:
    assert object_actions(training_template, "PromoteFunctionRole") == {
        "model:registry/champion.json": READ_WRITE,
        "model:registry/versions/*": {"s3:GetObject"},
        "model:registry/decisions/*": READ_WRITE,
    }
    writers = {
        policy
        for policy in training_template.find_resources("AWS::IAM::Policy")
        for key, actions in object_actions(training_template, policy).items()
        if "s3:PutObject" in actions and "registry/champion.json".startswith(key.split(":", 1)[1].rstrip("*"))
    }
    assert len(writers) == 1 and writers.pop().startswith("PromoteFunctionRole")


def test_register_reads_training_outputs_and_creates_versions_and_decisions(training_template: Template) -> None:
    # It reads back a version it may have stored already (a retried step) and the decisions it recorded.
    assert object_actions(training_template, "RegisterFunctionRole") == {
        "data:holdouts/*": {"s3:GetObject"},
        "model:training-jobs/*": {"s3:GetObject"},
        "model:registry/versions/*": READ_WRITE,
        "model:registry/decisions/*": READ_WRITE,
    }


def sagemaker_arn(resource: str) -> dict[str, Any]:
    return {
        "Fn::Join": [
            "",
            [
                "arn:",
                {"Ref": "AWS::Partition"},
                ":sagemaker:",
                {"Ref": "AWS::Region"},
                ":",
                {"Ref": "AWS::AccountId"},
                f":{resource}",
            ],
        ]
    }


GROUP_ARN = sagemaker_arn("model-package-group/driftloop-dev")
PACKAGES_ARN = sagemaker_arn("model-package/driftloop-dev/*")


def test_the_stack_creates_the_deployments_tagged_model_package_group(training_template: Template) -> None:
    [group] = training_template.find_resources("AWS::SageMaker::ModelPackageGroup").values()

    assert group["Properties"]["ModelPackageGroupName"] == "driftloop-dev"
    assert {"Key": "stage", "Value": "dev"} in group["Properties"]["Tags"]
    assert group["DeletionPolicy"] == "Retain"  # dev keeps its data: removal is retain


def sagemaker_statements(template: Template) -> dict[str, list[dict[str, Any]]]:
    """Every policy's statements that allow a SageMaker model package action, by policy."""
    found: dict[str, list[dict[str, Any]]] = {}
    for logical_id, resource in template.find_resources("AWS::IAM::Policy").items():
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            if any("ModelPackage" in action for action in actions):
                found.setdefault(logical_id, []).append(statement)
    return found


def test_register_creates_and_promote_and_reject_update_packages_of_the_deployments_group_only(
    training_template: Template,
) -> None:
    found = sagemaker_statements(training_template)

    update = [{"Action": "sagemaker:UpdateModelPackage", "Effect": "Allow", "Resource": PACKAGES_ARN}]
    assert {key.split("FunctionRole")[0]: value for key, value in found.items()} == {
        "Register": [
            {"Action": "sagemaker:CreateModelPackage", "Effect": "Allow", "Resource": [GROUP_ARN, PACKAGES_ARN]}
        ],
        "Promote": update,
        "Reject": update,
    }


@pytest.mark.parametrize("role", ["RejectFunctionRole", "RecordFailureFunctionRole"])
def test_reject_and_record_failure_touch_only_the_decision_record(training_template: Template, role: str) -> None:
    assert object_actions(training_template, role) == {"model:registry/decisions/*": READ_WRITE}
    # No ListBucket beyond the decisions prefix either.
    listing = [s for s in statements(training_template, role) if s["Action"] == "s3:ListBucket"]
    assert [s["Condition"] for s in listing] == [{"StringLike": {"s3:prefix": ["registry/decisions/*"]}}]


def test_guard_reads_and_writes_the_run_lock_and_records_decisions(training_template: Template) -> None:
    role = "GuardFunctionRole"
    assert actions_on(training_template, role, object_arn(MODEL_BUCKET, "registry/runs/")) == {
        "s3:GetObject",
        "s3:PutObject",
    }
    assert actions_on(training_template, role, object_arn(MODEL_BUCKET, "registry/decisions/")) == READ_WRITE
    # Not the champion pointer, not the versions.
    assert actions_on(training_template, role, object_arn(MODEL_BUCKET, "registry/")) == set()
    assert "DataBucketName" not in json.dumps(statements(training_template, role))


def test_release_touches_only_the_run_lock(training_template: Template) -> None:
    role = "ReleaseFunctionRole"
    assert actions_on(training_template, role, object_arn(MODEL_BUCKET, "registry/runs/")) == {
        "s3:GetObject",
        "s3:PutObject",
    }
    objects = [s for s in statements(training_template, role) if "s3:GetObject" in json.dumps(s["Action"])]
    assert len(objects) == 1


WORKGROUP_ARN = {
    "Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":athena:", {"Ref": "AWS::Region"}, ":",
                      {"Ref": "AWS::AccountId"}, ":workgroup/driftloop-dev"]]
}  # fmt: skip
QUERY_ACTIONS = {
    "athena:StartQueryExecution",
    "athena:GetQueryExecution",
    "athena:GetQueryResults",
    "athena:StopQueryExecution",
}


def glue_arn(resource: str) -> dict[str, Any]:
    return {
        "Fn::Join": [
            "",
            ["arn:", {"Ref": "AWS::Partition"}, ":glue:", {"Ref": "AWS::Region"}, ":", {"Ref": "AWS::AccountId"},
             f":{resource}"],
        ]
    }  # fmt: skip


def test_assemble_copies_the_data_lists_capture_folders_and_queries_only_feedback(
    training_template: Template,
) -> None:
    role = "AssembleFunctionRole"
    for prefix in ("training-data/", "feedback/"):
        assert actions_on(training_template, role, object_arn(DATA_BUCKET, prefix)) == {"s3:GetObject"}, prefix
    # The capture folders name the model versions; Assemble reads no capture (its first query reads feedback).
    assert actions_on(training_template, role, object_arn(DATA_BUCKET, "captures/")) == set()
    assert actions_on(training_template, role, object_arn(DATA_BUCKET, "assembled/")) == {"s3:PutObject"}
    results = {"s3:GetObject", "s3:PutObject", *RESULT_UPLOAD_ACTIONS}
    assert actions_on(training_template, role, object_arn(DATA_BUCKET, "athena/")) == results
    assert actions_on(training_template, role, WORKGROUP_ARN) == QUERY_ACTIONS
    assert actions_on(training_template, role, glue_arn("table/driftloop_dev/feedback")) == set(CATALOG_ACTIONS)
    assert actions_on(training_template, role, glue_arn("table/driftloop_dev/captures")) == set()
    policy = statements(training_template, role)
    writes = [s for s in policy if "s3:PutObject" in json.dumps(s["Action"])]
    assert len(writes) == 2  # the assembled prefix, and the workgroup's query results
    # In the model bucket: the champion pointer and the versions' metadata (the values new to the champion).
    assert {
        key: actions for key, actions in object_actions(training_template, role).items() if key.startswith("model:")
    } == {
        "model:registry/champion.json": {"s3:GetObject"},
        "model:registry/versions/*/metadata.json": {"s3:GetObject"},
    }
    assert not any(action.startswith("glue:") and not action.startswith("glue:Get") for action in _actions(policy))


def test_finish_assembly_counts_with_athena_and_writes_nothing_but_query_results(training_template: Template) -> None:
    role = "FinishAssemblyFunctionRole"
    for prefix in ("captures/", "feedback/", "assembled/"):
        assert actions_on(training_template, role, object_arn(DATA_BUCKET, prefix)) == {"s3:GetObject"}, prefix
    assert actions_on(training_template, role, WORKGROUP_ARN) == QUERY_ACTIONS
    policy = statements(training_template, role)
    writes = [s for s in policy if "s3:PutObject" in json.dumps(s["Action"])]
    assert [w["Resource"] for w in writes] == [object_arn(DATA_BUCKET, "athena/")]
    # The metadata of the champion the plan named, never its archive or the pointer.
    models = {
        key: actions for key, actions in object_actions(training_template, role).items() if key.startswith("model:")
    }
    assert models == {"model:registry/versions/*/metadata.json": {"s3:GetObject"}}


def test_state_machine_unloads_feedback_reading_only_captures_and_feedback_and_writing_assembled_sets(
    training_template: Template,
) -> None:
    role = "WorkflowStateMachineRole"
    for prefix in ("captures/", "feedback/"):
        assert actions_on(training_template, role, object_arn(DATA_BUCKET, prefix)) == {"s3:GetObject"}, prefix
    parts = {"s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"}
    assert actions_on(training_template, role, object_arn(DATA_BUCKET, "assembled/")) == {"s3:PutObject", *parts}
    assert actions_on(training_template, role, object_arn(DATA_BUCKET, "athena/")) == {
        "s3:GetObject",
        "s3:PutObject",
        *parts,
    }
    assert actions_on(training_template, role, object_arn(DATA_BUCKET, "training-data/")) == set()
    assert actions_on(training_template, role, WORKGROUP_ARN) == QUERY_ACTIONS
    for table in ("captures", "feedback"):
        assert "glue:GetTable" in actions_on(training_template, role, glue_arn(f"table/driftloop_dev/{table}"))
    policy = statements(training_template, role)
    assert not any(action.startswith("glue:") and not action.startswith("glue:Get") for action in _actions(policy))
    assert not any(action.startswith(("lakeformation:", "s3:CreateBucket")) for action in _actions(policy))


def _actions(policy: list[dict[str, Any]]) -> list[str]:
    return [a for s in policy for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])]


def test_hold_out_rewrites_the_assembled_set_and_writes_only_the_holdout(training_template: Template) -> None:
    assert object_actions(training_template, "HoldOutFunctionRole") == {
        "data:assembled/*": READ_WRITE,
        "data:holdouts/*": {"s3:PutObject"},
    }


def test_evaluate_reads_both_models_and_the_holdout_and_writes_only_its_evaluation(training_template: Template) -> None:
    assert object_actions(training_template, "EvaluateFunctionRole") == {
        "model:training-jobs/*": {"s3:GetObject"},
        "model:registry/versions/*": {"s3:GetObject"},
        "data:holdouts/*": READ_WRITE,
    }


@pytest.mark.parametrize(("name", "bundle", "storage"), [("HoldOut", HOLDOUT, 10240), ("Evaluate", EVALUATE, None)])
def test_the_data_steps_get_their_own_bundle_more_memory_and_the_longest_timeout(
    training_template: Template, name: str, bundle: LambdaBundle, storage: int | None
) -> None:
    [function] = [
        resource["Properties"]
        for logical_id, resource in training_template.find_resources("AWS::Lambda::Function").items()
        if logical_id.startswith(f"{name}Function")
    ]
    assert (function["MemorySize"], function["Timeout"]) == (2048, 900)
    assert function.get("EphemeralStorage") == (None if storage is None else {"Size": storage})
    others = training_template.find_resources(
        "AWS::Lambda::Function", {"Properties": {"Handler": "functions.workflow.handlers.guard"}}
    )
    [guard] = [resource["Properties"] for resource in others.values()]
    assert function["Code"] != guard["Code"]
    assert bundle.requirements.path != WORKFLOW.requirements.path


@pytest.mark.parametrize(
    ("rule", "prefix"), [("expire-assembled-data", "assembled/"), ("expire-holdouts", "holdouts/")]
)
def test_assembled_data_sets_and_holdouts_expire_with_the_training_outputs(
    data_template: Template, rule: str, prefix: str
) -> None:
    [bucket] = [
        resource
        for logical_id, resource in data_template.find_resources("AWS::S3::Bucket").items()
        if logical_id.startswith("DataBucket")
    ]
    rules = bucket["Properties"]["LifecycleConfiguration"]["Rules"]
    assert {"Id": rule, "Prefix": prefix, "ExpirationInDays": 30, "Status": "Enabled"} in rules


def test_training_image_context_holds_only_what_the_dockerfile_copies(dev: DriftloopStacks) -> None:
    assembly = assembly_of(dev.training)
    manifest = json.loads((Path(assembly.directory) / "driftloop-dev-training.assets.json").read_text())
    [image] = manifest["dockerImages"].values()
    assert image["source"]["dockerFile"] == "training/Dockerfile"
    context = Path(assembly.directory) / image["source"]["directory"]
    top_level = {path.name for path in context.iterdir()}
    assert top_level == {"training", "functions"}
    assert {path.name for path in (context / "functions").iterdir()} == {"__init__.py", "common"}
    assert not list(context.rglob("__pycache__"))


def test_configured_image_uri_is_used_instead_of_building_one(local: DriftloopStacks) -> None:
    template = Template.from_stack(local.training)
    [machine] = template.find_resources("AWS::StepFunctions::StateMachine").values()
    definition = "".join(p for p in machine["Properties"]["DefinitionString"]["Fn::Join"][1] if isinstance(p, str))
    assert '"TrainingImage":"000000000000.dkr.ecr.us-east-1.amazonaws.com/driftloop-training:local"' in definition
    assembly = assembly_of(local.training)
    manifest = json.loads((Path(assembly.directory) / "driftloop-local-training.assets.json").read_text())
    assert manifest.get("dockerImages", {}) == {}


def test_stack_exposes_what_later_stacks_build_on(dev: DriftloopStacks) -> None:
    assert dev.training.state_machine.state_machine_name
    assert dev.training.failure_topic.topic_arn
    assert dev.training.sagemaker_role.role_arn


# -- manual approval (retraining.approval) ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def approval_template(approval: DriftloopStacks) -> Template:
    return Template.from_stack(approval.training)


@pytest.fixture(scope="module")
def approval_states(approval_template: Template) -> dict[str, Any]:
    return definition_states(approval_template)


def test_without_approval_only_a_held_version_waits_for_the_approval_step_and_its_topic_is_built(
    states: dict[str, Any], training_template: Template
) -> None:
    assert [choice["Next"] for choice in states["GatePassed?"]["Choices"]] == ["Approval", "Promote"]
    approval = states["Approval"]
    assert approval["Resource"] == "arn:<AWS::Partition>:states:::lambda:invoke.waitForTaskToken"
    assert (approval["ResultPath"], approval["Next"]) == ("$.approval", "Promote")
    # Not the configured 24 hours: what the 2-hour workflow leaves after the 1-hour job, so an unanswered hold is
    # rejected before the state machine's timeout cuts the run off.
    assert approval["TimeoutSeconds"] == 3600
    assert approval["Catch"][0] == {
        "ErrorEquals": [APPROVAL_DENIED, APPROVAL_TIMEOUT],
        "ResultPath": "$.approval",
        "Next": "Reject",
    }
    assert "ApprovalTopicArn" in training_template.find_outputs("*")
    policy = statements(training_template, "RequestApprovalFunctionRole")
    assert [s["Action"] for s in policy if "sns:" in json.dumps(s["Action"])] == ["sns:Publish"]
    assert not [s for s in policy if "s3:" in json.dumps(s["Action"])]


def test_with_approval_a_passed_gate_waits_for_a_task_token_then_promotes(approval_states: dict[str, Any]) -> None:
    assert [choice["Next"] for choice in approval_states["GatePassed?"]["Choices"]] == ["Approval", "Approval"]
    assert approval_states["GatePassed?"]["Default"] == "Reject"
    approval = approval_states["Approval"]
    assert approval["Resource"] == "arn:<AWS::Partition>:states:::lambda:invoke.waitForTaskToken"
    assert approval["Parameters"]["FunctionName"].startswith("<RequestApprovalFunction")
    assert approval["Parameters"]["Payload"] == {"token.$": "$$.Task.Token", "state.$": "$"}
    # The operator's answer ({"approved": true, "by", "note"}) is what Promote reads.
    assert (approval["ResultPath"], approval["Next"]) == ("$.approval", "Promote")
    assert approval["TimeoutSeconds"] == 3600


def test_with_approval_the_task_token_never_reaches_the_state_machines_log(approval_template: Template) -> None:
    [machine] = approval_template.find_resources("AWS::StepFunctions::StateMachine").values()
    logging = machine["Properties"]["LoggingConfiguration"]
    # Execution data holds the Approval state's parameters, and with them $$.Task.Token.
    assert logging["IncludeExecutionData"] is False


def test_a_denied_or_unanswered_approval_is_rejected_with_the_error_at_approval(
    approval_states: dict[str, Any],
) -> None:
    assert approval_states["Approval"]["Catch"] == [
        {"ErrorEquals": [APPROVAL_DENIED, APPROVAL_TIMEOUT], "ResultPath": "$.approval", "Next": "Reject"},
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "RecordFailure"},
    ]
    retried = {error for retry in approval_states["Approval"]["Retry"] for error in retry["ErrorEquals"]}
    assert "Lambda.ServiceException" in retried and "States.ALL" not in retried


def test_with_approval_every_run_still_releases_the_lock(approval_states: dict[str, Any]) -> None:
    run_paths = [path for path in paths_from(approval_states, "Guard") if path[-1] != "Skipped"]
    assert ["Approval", "Reject"] in [path[i : i + 2] for path in run_paths for i in range(len(path) - 1)]
    for path in run_paths:
        assert any(name in RELEASES for name in path), f"never released: {' -> '.join(path)}"


def test_the_approval_function_only_publishes_to_the_encrypted_approvals_topic(
    approval_template: Template,
) -> None:
    approval_template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Handler": "functions.workflow.handlers.request_approval",
            "Environment": {
                "Variables": Match.object_like(
                    {"DRIFTLOOP_APPROVAL_TOPIC_ARN": {"Ref": Match.string_like_regexp("^ApprovalTopic")}}
                )
            },
        },
    )
    policy = statements(approval_template, "RequestApprovalFunctionRole")
    assert not [s for s in policy if "s3:" in json.dumps(s["Action"])]
    [publish] = [s for s in policy if s["Action"] == "sns:Publish"]
    assert publish["Resource"]["Ref"].startswith("ApprovalTopic")
    approval_template.has_resource_properties(
        "AWS::SNS::Topic", {"KmsMasterKeyId": {"Fn::GetAtt": [Match.string_like_regexp("^ApprovalTopicKey"), "Arn"]}}
    )
    assert "ApprovalTopicArn" in approval_template.find_outputs("*")


def test_the_approval_function_gets_exactly_the_approval_contract_and_reads_it_back(
    approval_template: Template,
) -> None:
    environment = function_environment(approval_template, "functions.workflow.handlers.request_approval")

    assert set(environment) == set(ApprovalSettings.variables().values())
    settings = ApprovalSettings.from_env(environment)
    assert settings.service == "driftloop-dev-workflow" and settings.log_level == "INFO"
    assert json.loads(settings.topic_arn)["Ref"].startswith("ApprovalTopic")


def test_the_state_machine_cannot_answer_approvals_itself(approval_template: Template) -> None:
    # Only an operator (driftloop approve / deny) sends the task token back.
    assert "states:SendTask" not in json.dumps(approval_template.find_resources("AWS::IAM::Policy"))
