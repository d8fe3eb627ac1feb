"""cdk-nag: the AwsSolutions rule pack, and every finding acknowledged on purpose, each with its reason.

cdk-nag 3 runs as a CDK policy-validation plugin: an unacknowledged finding (error or warning) fails
``cdk synth``. Acknowledgements are recorded with ``Validations.of(construct).acknowledge`` on the narrowest
construct (the one resource or IAM policy concerned) and, for rules that report several findings per resource
(IAM4, IAM5), on the single finding, e.g. ``AwsSolutions-IAM5[Resource::*]``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from aws_cdk import Acknowledgment, App, Stack, Validations
from aws_cdk import aws_iam as iam
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct

from functions.batch.layout import BATCH
from functions.common.bundle import METADATA_FILE
from functions.common.registry import RegistryLayout
from infra.grants import objects_arn

if TYPE_CHECKING:
    from infra.constructs.python_function import PythonFunction
    from infra.stacks.wiring import DriftloopStacks

PACK = "AwsSolutions"

PINNED_RUNTIME = (
    "python3.12 is pinned on purpose: the project's Python is 3.12 and the bundled wheels and precompiled "
    "bytecode are built for cp312. Move runtime, wheels and project to a newer Python together."
)
XRAY = (
    "Active X-Ray tracing needs xray:PutTraceSegments and xray:PutTelemetryRecords, which support no "
    "resource-level permissions, so their resource must be '*'."
)
VERSION_METADATA = (
    "Reads only each registered version's metadata.json (the champion's categories and ranges, which tell values "
    "new to it): versions are created at run time, so the version segment is a wildcard; no archive is readable."
)
MODEL_PACKAGES = (
    "The deployment's model package group mirrors each registered version as a versioned package, "
    "model-package/<group>/<version number>, numbered by SageMaker at creation: the number is a wildcard, the "
    "group is fixed."
)
PREFIX_OBJECTS = (
    "Object access is confined to one configured key prefix of one bucket; the keys below it (data files, "
    "training jobs, model versions) are created at run time, so the prefix ends in a wildcard."
)


def apply_nag(app: App, stacks: DriftloopStacks) -> None:
    add_checks(app)
    acknowledge_findings(stacks)


def add_checks(app: App) -> None:
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))


def acknowledge_findings(stacks: DriftloopStacks) -> None:
    _acknowledge_training(stacks)
    _acknowledge_serving(stacks)
    _acknowledge_monitoring(stacks)


def acknowledge(scope: IConstruct, rule: str, reason: str, findings: Iterable[str] = ()) -> None:
    """Acknowledge ``rule``, or only the listed findings of it, on the CloudFormation resource behind ``scope``.

    On the resource itself, not the L2 construct: an acknowledgement applies to everything below it, and an L2
    may hold more (a REST API holds its stage, methods and permissions).
    """
    target = scope.node.default_child or scope
    ids = [f"{PACK}-{rule}[{finding}]" for finding in findings] or [f"{PACK}-{rule}"]
    Validations.of(target).acknowledge(*(Acknowledgment(id=rule_id, reason=reason) for rule_id in ids))


def resource_finding(scope: IConstruct, arn: str) -> str:
    """The IAM4/IAM5 finding cdk-nag reports for an ARN used in ``scope``'s stack, e.g.
    ``Resource::arn:<AWS::Partition>:s3:::<bucket>/registry/*`` or ``Resource::<MyFunction1234.Arn>:*``."""
    return f"Resource::{flatten_reference(Stack.of(scope).resolve(arn))}"


def flatten_reference(node: Any) -> str:
    """A resolved CloudFormation value as cdk-nag renders it in finding ids (its ``flattenCfnReference``)."""
    if isinstance(node, str):
        return node.replace("${", "<").replace("}", ">")
    if isinstance(node, dict):
        if "Fn::Join" in node:
            delimiter, items = node["Fn::Join"]
            return str(delimiter).join(flatten_reference(item) for item in items)
        if "Fn::Sub" in node:
            return flatten_reference(node["Fn::Sub"])
        if "Fn::GetAtt" in node:
            resource, attribute = node["Fn::GetAtt"]
            return f"<{flatten_reference(resource)}.{flatten_reference(attribute)}>"
        if "Fn::ImportValue" in node:
            return flatten_reference(node["Fn::ImportValue"])
        if "Ref" in node:
            return f"<{flatten_reference(node['Ref'])}>"
    return json.dumps(node, separators=(",", ":"))


def _default_policy(role: iam.IRole) -> IConstruct:
    return role.node.find_child("DefaultPolicy")


def _acknowledge_function(function: PythonFunction, object_arns: Iterable[str]) -> None:
    acknowledge(function.function, "L1", PINNED_RUNTIME)
    policy = _default_policy(function.role)
    acknowledge(policy, "IAM5", XRAY, ["Resource::*"])
    findings = [resource_finding(policy, arn) for arn in object_arns]
    # No findings must not become an acknowledgement of the whole rule.
    if findings:
        acknowledge(policy, "IAM5", PREFIX_OBJECTS, findings)


def _acknowledge_training(stacks: DriftloopStacks) -> None:
    training, data = stacks.training, stacks.config.data
    registry = objects_arn(training.model_bucket, data.registry_prefix)
    artifacts = objects_arn(training.model_bucket, data.artifact_prefix)
    assembled = objects_arn(training.data_bucket, data.assembled_prefix)
    model, registry_prefix = training.model_bucket, data.registry_prefix
    layout = RegistryLayout(registry_prefix)
    run_lock = objects_arn(model, layout.runs_prefix)
    decisions = objects_arn(model, layout.decisions_prefix)
    versions = objects_arn(model, layout.versions_prefix)
    holdouts = objects_arn(training.data_bucket, data.holdout_prefix)
    steps = training.steps
    for name, arns in (
        ("guard", [run_lock, decisions]),
        ("prepare", []),
        ("hold_out", [assembled, holdouts]),
        ("evaluate", [artifacts, versions, holdouts]),
        ("register", [artifacts, versions, decisions, holdouts]),
        ("promote", [versions, decisions]),
        ("reject", [decisions]),
        ("record_failure", [decisions]),
        ("release", [run_lock]),
    ):
        _acknowledge_function(steps[name], arns)
    for name in ("register", "promote", "reject"):
        policy = _default_policy(steps[name].role)
        acknowledge(policy, "IAM5", MODEL_PACKAGES, [resource_finding(policy, training.model_packages.packages_arn)])
    functions = [step.function for step in steps.values()]
    # It only publishes to the approvals topic: no object access to acknowledge.
    _acknowledge_function(training.approval.function, [])
    functions.append(training.approval.function.function)
    results = training.catalog.results_prefix
    for name, readable in (
        ("assemble", (data.training_data_prefix, data.feedback_prefix, data.assembled_prefix, results)),
        ("finish_assembly", (data.capture_prefix, data.feedback_prefix, data.assembled_prefix, results)),
    ):
        _acknowledge_function(steps[name], [objects_arn(training.data_bucket, prefix) for prefix in readable])
        policy = _default_policy(steps[name].role)
        metadata = model.arn_for_objects(layout.version_key("*", METADATA_FILE))
        acknowledge(policy, "IAM5", VERSION_METADATA, [resource_finding(policy, metadata)])

    sagemaker = training.sagemaker
    sagemaker_policy = _default_policy(sagemaker.role)
    prefixes = (assembled, registry, artifacts)
    acknowledge(sagemaker_policy, "IAM5", PREFIX_OBJECTS, [resource_finding(sagemaker_policy, arn) for arn in prefixes])
    acknowledge(
        sagemaker_policy,
        "IAM5",
        "SageMaker creates the job's log streams as <job name>/algo-<n>-<timestamp> in its fixed log group; "
        "the group ARN ends in ':*' and the streams are limited to this stage's job-name prefix.",
        [resource_finding(sagemaker_policy, arn) for arn in (sagemaker.log_group_arn, sagemaker.log_stream_arn)],
    )
    acknowledge(
        sagemaker_policy,
        "IAM5",
        "Two actions without resource-level permissions: cloudwatch:PutMetricData (limited by a "
        "cloudwatch:namespace condition to /aws/sagemaker/TrainingJobs) and ecr:GetAuthorizationToken "
        "(image pulls themselves are limited to the training image's repository).",
        ["Resource::*"],
    )

    workflow = training.workflow
    machine_policy = _default_policy(workflow.state_machine.role)
    acknowledge(
        machine_policy,
        "IAM5",
        "Step Functions' CloudWatch Logs delivery actions (logs:CreateLogDelivery, logs:PutResourcePolicy, ...) "
        "and X-Ray tracing actions support no resource-level permissions.",
        ["Resource::*"],
    )
    acknowledge(
        machine_policy,
        "IAM5",
        "CDK's LambdaInvoke grants lambda:InvokeFunction on the function and on '<function ARN>:*' so that "
        "versions and aliases of the same function can be invoked; no other function is reachable.",
        [resource_finding(machine_policy, f"{function.function_arn}:*") for function in functions],
    )
    acknowledge(
        machine_policy,
        "IAM5",
        "Training job names are generated per run as <stage prefix>-<version>; the state machine may create, "
        "describe, stop and tag only jobs with this stage's prefix.",
        [resource_finding(machine_policy, workflow.training_jobs_arn)],
    )
    # AssembleFeedback's UNLOAD: Athena reads and writes with the state machine's role.
    unload_prefixes = (data.capture_prefix, data.feedback_prefix, data.assembled_prefix, results)
    acknowledge(
        machine_policy,
        "IAM5",
        PREFIX_OBJECTS,
        [resource_finding(machine_policy, objects_arn(training.data_bucket, prefix)) for prefix in unload_prefixes],
    )


def _acknowledge_serving(stacks: DriftloopStacks) -> None:
    serving, config = stacks.serving, stacks.config
    _acknowledge_function(serving.inference, [objects_arn(serving.model_bucket, config.data.registry_prefix)])
    # Its only grant is on the id key's secret (no wildcard): X-Ray and the runtime pin are the findings left.
    _acknowledge_function(serving.id_keys.rotation, [])
    for stream in serving.streams.streams:
        delivery_policy = _default_policy(stream.role)
        acknowledge(
            delivery_policy,
            "IAM5",
            "Firehose names each object it delivers (partition, date, stream, time, random suffix), so the "
            "delivery role may put objects anywhere below its one prefix of the data bucket, and nowhere else.",
            [resource_finding(delivery_policy, objects_arn(serving.data_bucket, stream.prefix))],
        )

    _acknowledge_batch(stacks)

    api = serving.api.api
    acknowledge(
        api,
        "APIG2",
        "Requests are validated by the inference app, which answers 422 naming every invalid field against the "
        "live model's feature schema; an API Gateway model would duplicate that schema and go stale on promotion.",
    )
    acknowledge(
        api.deployment_stage,
        "APIG3",
        "No WAF web ACL by default: every method requires a client's API key, whose own usage plan throttles it "
        "under the stage's throttle, and IAM (SigV4) in iam mode. Associate a web ACL with the stage where the API "
        "faces untrusted networks.",
    )
    for method in api.methods:
        acknowledge(
            method,
            "COG4",
            "The callers are services and scripts, not end users: methods are authorised with IAM (SigV4) or, "
            "in api_key mode, API keys with a usage plan per client, so there is no Cognito user pool.",
        )
        if config.serving.auth_mode == "api_key":
            acknowledge(
                method,
                "APIG4",
                "api_key mode is chosen in config for clients that cannot sign requests: the API key identifies "
                "the client and its usage plan throttles and meters it. Use auth_mode 'iam' for authorisation.",
            )
    cloud_watch_role = api.node.try_find_child("CloudWatchRole")
    if cloud_watch_role is not None:
        acknowledge(
            cloud_watch_role,
            "IAM4",
            "The region-wide API Gateway logging role uses AmazonAPIGatewayPushToCloudWatchLogs, the policy AWS "
            "defines and maintains for exactly this role (it writes API Gateway's own log groups).",
            ["Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"],
        )


def _acknowledge_batch(stacks: DriftloopStacks) -> None:
    serving, registry = stacks.serving, stacks.config.data.registry_prefix
    batch, data = serving.batch, serving.data_bucket
    registry_objects = objects_arn(serving.model_bucket, registry)
    _acknowledge_function(batch.resolve, [registry_objects])
    _acknowledge_function(
        batch.score,
        [
            registry_objects,
            *(objects_arn(data, prefix) for prefix in (BATCH.input_prefix, BATCH.output_prefix, BATCH.runs_prefix)),
        ],
    )
    _acknowledge_function(batch.summarise, [objects_arn(data, BATCH.runs_prefix)])
    policy = _default_policy(batch.role)
    acknowledge(
        policy,
        "IAM5",
        "Step Functions' CloudWatch Logs delivery actions (logs:CreateLogDelivery, logs:PutResourcePolicy, ...) "
        "and X-Ray tracing actions support no resource-level permissions.",
        ["Resource::*"],
    )
    acknowledge(
        policy,
        "IAM5",
        "The Distributed Map's result writer names its files by map run (<prefix><map run id>/...), so it may "
        "write below the batch runs' map prefix of the data bucket, and nowhere else.",
        [resource_finding(policy, objects_arn(data, BATCH.map_results_prefix))],
    )
    children = batch.state_machine.node.find_child("DistributedMapPolicy")
    statements = Stack.of(children).resolve(children.node.default_child.policy_document)["Statement"]  # type: ignore[union-attr]
    acknowledge(
        children,
        "IAM5",
        "A Distributed Map's children are executions of the same state machine, named at run time: CDK's policy "
        "lets the state machine describe, stop and redrive only its own executions.",
        sorted(
            {
                f"Resource::{flatten_reference(resource)}"
                for statement in statements
                if statement["Action"] != "states:StartExecution"
                for resource in [statement["Resource"]]
            }
        ),
    )


def _acknowledge_monitoring(stacks: DriftloopStacks) -> None:
    monitoring, data = stacks.monitoring, stacks.config.data
    acknowledge(
        monitoring.dead_letters.queue,
        "SQS3",
        "This queue is itself the dead-letter queue of every EventBridge rule target (cdk-nag recognises only "
        "SQS redrive policies as DLQ use); an alarm tells the operations topic when a message lands in it.",
    )
    function = monitoring.monitor.monitor
    acknowledge(function.function, "L1", PINNED_RUNTIME)
    policy = _default_policy(function.role)
    acknowledge(
        policy,
        "IAM5",
        "Two kinds of actions without resource-level permissions: X-Ray tracing (xray:PutTraceSegments, "
        "xray:PutTelemetryRecords) and cloudwatch:PutMetricData, which a cloudwatch:namespace condition limits to "
        "the driftloop namespace.",
        ["Resource::*"],
    )
    object_arns = [
        *(objects_arn(monitoring.data_bucket, prefix) for prefix in (data.capture_prefix, data.feedback_prefix)),
        objects_arn(monitoring.data_bucket, data.report_prefix),
        objects_arn(monitoring.data_bucket, data.athena_results_prefix),
        objects_arn(monitoring.model_bucket, data.registry_prefix),
    ]
    acknowledge(policy, "IAM5", PREFIX_OBJECTS, [resource_finding(policy, arn) for arn in object_arns])
