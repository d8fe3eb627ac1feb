"""The training workflow: image, SageMaker role, workflow Lambdas, failure topic, state machine.

The run lock (``<registry>runs/``) and the decisions are what Guard and Release touch in the registry; Assemble
reads the training data, captures and feedback and writes the run's training set under the assembled prefix,
which is the only data the SageMaker job reads.
"""

from __future__ import annotations

import json
from typing import Any

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from functions.workflow.lock import LOCK_KEY
from infra.config import DriftloopConfig
from infra.constructs.encrypted_topic import EncryptedTopic
from infra.constructs.python_function import PythonFunction, bundled_code
from infra.constructs.sagemaker_role import SageMakerExecutionRole
from infra.constructs.training_image import TrainingImage
from infra.constructs.training_workflow import TrainingJobSpec, TrainingWorkflow, WorkflowFunctions
from infra.grants import PrefixAccess, grant_missing_key_lookups, grant_prefix
from infra.stacks.data_stack import SharedBucket

WORKFLOW_SOURCES = ("functions/__init__.py", "functions/common", "functions/workflow")
WORKFLOW_HANDLERS = "functions.workflow.handlers"


class TrainingStack(Stack):
    """Exposes ``state_machine``, ``failure_topic`` and ``sagemaker_role`` for the stacks that build on it."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DriftloopConfig,
        data_bucket: SharedBucket,
        model_bucket: SharedBucket,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        removal = RemovalPolicy.RETAIN if config.retain else RemovalPolicy.DESTROY
        data, training = config.data, config.training
        self.data_bucket = data_bucket.import_into(self, "DataBucket")
        self.model_bucket = model_bucket.import_into(self, "ModelBucket")

        image = TrainingImage(self, "TrainingImage", image_uri=training.image_uri)
        self.sagemaker = SageMakerExecutionRole(
            self,
            "SageMakerExecution",
            data_bucket=self.data_bucket,
            # The train channel is the run's assembled data set; the job never reads the base data directly.
            training_data_prefix=data.assembled_prefix,
            model_bucket=self.model_bucket,
            registry_prefix=data.registry_prefix,
            artifact_prefix=data.artifact_prefix,
            job_prefix=config.job_prefix,
        )
        self.sagemaker_role: iam.IRole = self.sagemaker.role
        image.grant_pull(self.sagemaker_role)

        self.steps = self._workflow_functions(config, removal)
        self.failure = EncryptedTopic(
            self, "FailureTopic", display_name=f"{config.resource_prefix} training failures", removal_policy=removal
        )
        self.failure_topic: sns.ITopic = self.failure.topic
        self.workflow = TrainingWorkflow(
            self,
            "Workflow",
            state_machine_name=config.state_machine_name,
            functions=WorkflowFunctions(**{name: step.function for name, step in self.steps.items()}),
            job=TrainingJobSpec(
                image_uri=image.image_uri,
                role=self.sagemaker_role,
                job_prefix=config.job_prefix,
                instance_type=training.instance_type,
                instance_count=training.instance_count,
                volume_size_gb=training.volume_size_gb,
                max_runtime_seconds=training.max_runtime_seconds,
                metric_definitions=_metric_definitions(),
                tags={"driftloop:stage": config.stage},
            ),
            failure_topic=self.failure,
            timeout=Duration.seconds(training.workflow_timeout_seconds),
            log_retention_days=config.log_retention_days,
            removal_policy=removal,
        )
        self.state_machine: sfn.StateMachine = self.workflow.state_machine

        CfnOutput(self, "StateMachineArn", value=self.state_machine.state_machine_arn)
        CfnOutput(self, "FailureTopicArn", value=self.failure_topic.topic_arn)

    def _workflow_functions(self, config: DriftloopConfig, removal: RemovalPolicy) -> dict[str, PythonFunction]:
        data, training = config.data, config.training
        code = bundled_code(WORKFLOW_SOURCES)
        environment = {
            "DRIFTLOOP_MODEL_BUCKET": self.model_bucket.bucket_name,
            "DRIFTLOOP_REGISTRY_PREFIX": data.registry_prefix,
            "DRIFTLOOP_DATA_BUCKET": self.data_bucket.bucket_name,
            "DRIFTLOOP_TRAINING_DATA_PREFIX": data.training_data_prefix,
            "DRIFTLOOP_ARTIFACT_PREFIX": data.artifact_prefix,
            "DRIFTLOOP_JOB_PREFIX": config.job_prefix,
            "DRIFTLOOP_HYPERPARAMETERS": json.dumps(dict(training.hyperparameters), sort_keys=True),
            "DRIFTLOOP_ASSEMBLED_PREFIX": data.assembled_prefix,
            "DRIFTLOOP_CAPTURE_PREFIX": data.capture_prefix,
            "DRIFTLOOP_FEEDBACK_PREFIX": data.feedback_prefix,
            "DRIFTLOOP_INCLUDE_FEEDBACK": json.dumps(config.retraining.include_feedback),
            "DRIFTLOOP_FEEDBACK_MAX_AGE_DAYS": str(config.capture.feedback_max_age_days),
            "DRIFTLOOP_COOLDOWN_MINUTES": str(config.retraining.cooldown_minutes),
            "DRIFTLOOP_LOCK_TIMEOUT_SECONDS": str(training.workflow_timeout_seconds),
            "LOG_LEVEL": config.log_level,
        }
        descriptions = {
            "guard": "Takes the run lock and checks the cooldown, or records why the run is skipped",
            "assemble": "Assembles the run's training set: base data plus captured predictions with feedback",
            "prepare": "Names the training job and builds its channels",
            "register": "Registers the trained bundle with its evaluation and lineage",
            "promote": "Makes the gated version the champion",
            "reject": "Records a version the gate rejected",
            "record_failure": "Records a failed training run",
            "release": "Releases the run lock and stamps the run's end",
        }
        steps = {
            name: PythonFunction(
                self,
                "".join(part.title() for part in name.split("_")) + "Function",
                code=code,
                handler=f"{WORKFLOW_HANDLERS}.{name}",
                description=description,
                environment=environment,
                memory_mb=training.step_memory_mb,
                timeout=Duration.seconds(training.step_timeout_seconds),
                log_retention_days=config.log_retention_days,
                removal_policy=removal,
            )
            for name, description in descriptions.items()
        }
        # What each step reads and writes (functions/workflow/steps.py); everything else is denied.
        model, registry, bucket = self.model_bucket, data.registry_prefix, self.data_bucket
        runs, decisions = run_lock_prefix(registry), decisions_prefix(registry)
        grants: dict[str, list[tuple[s3.IBucket, str, PrefixAccess]]] = {
            "guard": [(model, runs, "read-write"), (model, decisions, "write")],
            "assemble": [
                (bucket, data.training_data_prefix, "read"),
                (bucket, data.capture_prefix, "read"),
                (bucket, data.feedback_prefix, "read"),
                (bucket, data.assembled_prefix, "write"),
            ],
            "prepare": [(model, registry, "read")],
            "register": [(model, data.artifact_prefix, "read"), (model, registry, "read-write")],
            "promote": [(model, registry, "read-write")],
            "reject": [(model, registry, "read-write")],
            "record_failure": [(model, registry, "write")],
            "release": [(model, runs, "read-write")],
        }
        for name, accesses in grants.items():
            for bucket, prefix, access in accesses:
                grant_prefix(steps[name].role, bucket, prefix, access)
        # The steps that read the registry must see a missing key (no champion, no run lock yet) as 404.
        for name in ("guard", "prepare", "register", "promote", "reject", "release"):
            grant_missing_key_lookups(steps[name].role, model)
        return steps


def run_lock_prefix(registry_prefix: str) -> str:
    """Where the run lock lives (functions/workflow/lock.py): the only registry keys Guard and Release change."""
    return registry_prefix + LOCK_KEY.rsplit("/", 1)[0] + "/"


def decisions_prefix(registry_prefix: str) -> str:
    return registry_prefix + "decisions/"


def _metric_definitions() -> list[dict[str, str]]:
    # Imported here: training.contract is the training program's module, needed only to synthesize this stack.
    from training.contract import METRIC_DEFINITIONS

    return [{"Name": item["Name"], "Regex": item["Regex"]} for item in METRIC_DEFINITIONS]
