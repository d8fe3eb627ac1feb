"""The training workflow: image, SageMaker role, workflow Lambdas, failure topic, state machine.

The run lock (``<registry>runs/``) and the decisions are what Guard and Release touch in the registry; Assemble
copies the training data and has Athena join captures with feedback (the state machine's UNLOAD), writing the
run's training set under the assembled prefix, which is the only data the SageMaker job reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from functions.common.bundle import METADATA_FILE
from functions.common.catalog import FEEDBACK_TABLE
from functions.common.layout import s3_location
from functions.common.registry import RegistryLayout
from functions.workflow.settings import ApprovalSettings, WorkflowSettings
from infra.bundling import EVALUATE, HOLDOUT, WORKFLOW, LambdaBundle
from infra.config import DriftloopConfig
from infra.constructs.capture_catalog import RESULT_UPLOAD_ACTIONS, SharedCatalog
from infra.constructs.encrypted_topic import EncryptedTopic
from infra.constructs.model_package_group import ModelPackageGroup
from infra.constructs.python_function import PythonFunction, bundled_code
from infra.constructs.sagemaker_role import SageMakerExecutionRole
from infra.constructs.training_image import TrainingImage
from infra.constructs.training_workflow import (
    ApprovalSpec,
    QuerySpec,
    TrainingJobSpec,
    TrainingWorkflow,
    WorkflowFunctions,
)
from infra.grants import PrefixAccess, grant_missing_key_lookups, grant_object, grant_prefix, objects_arn
from infra.stacks.data_stack import SharedBucket

WORKFLOW_HANDLERS = "functions.workflow.handlers"
# The steps that read a run's rows, with the bundles that carry what they read them with.
DATA_STEPS: dict[str, LambdaBundle] = {"hold_out": HOLDOUT, "evaluate": EVALUATE}
MAX_LAMBDA_SECONDS = 900
HOLDOUT_STORAGE_MB = 10240
# The Service of the workflow Lambdas' log lines: one component, whichever step wrote the line.
SERVICE = "workflow"


@dataclass(frozen=True)
class WorkflowApproval:
    """The approval step: its topic, its function and how the state machine uses it. Always built: a held version
    waits for it even when ``retraining.approval`` (every passed version waits too) is off."""

    topic: EncryptedTopic
    function: PythonFunction
    spec: ApprovalSpec


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
        catalog: SharedCatalog,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.catalog = catalog
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

        self.model_packages = ModelPackageGroup(
            self, "ModelPackageGroup", name=config.model_package_group_name, removal_policy=removal
        )
        self._code = bundled_code(WORKFLOW)
        self.steps = self._workflow_functions(config, removal)
        self.approval = self._approval(config, removal)
        self.failure = EncryptedTopic(
            self, "FailureTopic", display_name=f"{config.resource_prefix} training failures", removal_policy=removal
        )
        self.failure_topic: sns.ITopic = self.failure.topic
        self.workflow = TrainingWorkflow(
            self,
            "Workflow",
            state_machine_name=config.state_machine_name,
            functions=WorkflowFunctions(**{name: step.function for name, step in self.steps.items()}),
            approval=self.approval.spec,
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
            query=QuerySpec(workgroup=catalog.workgroup_name, database=catalog.database_name),
            failure_topic=self.failure,
            timeout=Duration.seconds(training.workflow_timeout_seconds),
            log_retention_days=config.log_retention_days,
            removal_policy=removal,
        )
        self.state_machine: sfn.StateMachine = self.workflow.state_machine
        self._grant_feedback_unload(config, self.state_machine.role)

        CfnOutput(self, "StateMachineArn", value=self.state_machine.state_machine_arn)
        # What a training job outside the workflow needs to run as the workflow's do (`driftloop train --remote`, the
        # SageMaker SDK: README "The SageMaker Python SDK"): the role reads below the input and writes below the
        # output location, and writes logs only for job names that start with the prefix.
        CfnOutput(self, "TrainingImageUri", value=image.image_uri)
        CfnOutput(self, "SageMakerRoleArn", value=self.sagemaker_role.role_arn)
        CfnOutput(self, "TrainingJobPrefix", value=config.job_prefix)
        CfnOutput(self, "TrainingInputUri", value=s3_location(self.data_bucket.bucket_name, data.assembled_prefix))
        CfnOutput(self, "TrainingOutputUri", value=s3_location(self.model_bucket.bucket_name, data.artifact_prefix))
        CfnOutput(self, "FailureTopicArn", value=self.failure_topic.topic_arn)
        CfnOutput(
            self,
            "ModelPackageGroupName",
            value=self.model_packages.name,
            description="SageMaker's model registry mirror of driftloop's versions",
        )
        CfnOutput(
            self,
            "ApprovalTopicArn",
            value=self.approval.topic.topic.topic_arn,
            description="Subscribe the approvers: each message carries the task token for driftloop approve/deny",
        )

    def _approval(self, config: DriftloopConfig, removal: RemovalPolicy) -> WorkflowApproval:
        approval = config.retraining.approval
        topic = EncryptedTopic(
            self, "ApprovalTopic", display_name=f"{config.resource_prefix} promotion approvals", removal_policy=removal
        )
        function = self._step_function(
            config,
            removal,
            "request_approval",
            "Asks the approvers to approve or deny the promotion of a version the gate passed or held",
            ApprovalSettings(
                service=config.service_name(SERVICE), log_level=config.log_level, topic_arn=topic.topic.topic_arn
            ).to_env(),
        )
        # Publishing is all it does: the answer comes from the operator CLI (states:SendTaskSuccess/Failure).
        topic.grant_publish(function.role)
        return WorkflowApproval(
            topic=topic,
            function=function,
            spec=ApprovalSpec(
                function=function.function,
                timeout=Duration.seconds(config.approval_timeout_seconds),
                every_pass=approval.enabled,
            ),
        )

    def _settings(self, config: DriftloopConfig) -> WorkflowSettings:
        data, retraining = config.data, config.retraining
        return WorkflowSettings(
            service=config.service_name(SERVICE),
            log_level=config.log_level,
            model_bucket=self.model_bucket.bucket_name,
            registry_prefix=data.registry_prefix,
            data_bucket=self.data_bucket.bucket_name,
            training_data_prefix=data.training_data_prefix,
            artifact_prefix=data.artifact_prefix,
            job_prefix=config.job_prefix,
            hyperparameters=config.workflow_hyperparameters,
            assembled_prefix=data.assembled_prefix,
            capture_prefix=data.capture_prefix,
            holdout_prefix=data.holdout_prefix,
            holdout_share=config.training.holdout_share,
            glue_database=self.catalog.database_name,
            athena_workgroup=self.catalog.workgroup_name,
            include_feedback=retraining.include_feedback,
            max_feedback_share=retraining.max_feedback_share,
            new_value_min_callers=retraining.new_value_min_callers,
            feedback_max_age_days=config.capture.feedback_max_age_days,
            cooldown_minutes=retraining.cooldown_minutes,
            # A lock older than the state machine's timeout belongs to an execution that can no longer run.
            lock_timeout_seconds=config.training.workflow_timeout_seconds,
            model_package_group=self.model_packages.name,
        )

    def _step_function(
        self,
        config: DriftloopConfig,
        removal: RemovalPolicy,
        name: str,
        description: str,
        environment: Mapping[str, str],
    ) -> PythonFunction:
        """The Lambda behind one state: ``functions.workflow.handlers.<name>``. HoldOut and Evaluate read and score
        the run's data: their own bundles (pyarrow; ONNX Runtime), more memory, the longest timeout, and HoldOut
        room on disk for the largest file it splits (5 GiB, CopyObject's limit, and its two parts)."""
        data_step = DATA_STEPS.get(name)
        training = config.training
        return PythonFunction(
            self,
            "".join(part.title() for part in name.split("_")) + "Function",
            code=self._code if data_step is None else bundled_code(data_step),
            handler=f"{WORKFLOW_HANDLERS}.{name}",
            description=description,
            environment=environment,
            memory_mb=training.step_memory_mb if data_step is None else training.evaluation_memory_mb,
            timeout=Duration.seconds(training.step_timeout_seconds if data_step is None else MAX_LAMBDA_SECONDS),
            log_retention_days=config.log_retention_days,
            removal_policy=removal,
            ephemeral_storage_mb=HOLDOUT_STORAGE_MB if name == "hold_out" else None,
        )

    def _workflow_functions(self, config: DriftloopConfig, removal: RemovalPolicy) -> dict[str, PythonFunction]:
        data = config.data
        environment = self._settings(config).to_env()
        descriptions = {
            "guard": "Takes the run lock and checks the cooldown, or records why the run is skipped",
            "assemble": "Copies the run's base data and plans the Athena UNLOAD of captured predictions with feedback",
            "hold_out": "Moves the run's holdout rows out of its training set, where the training job cannot read them",
            "finish_assembly": "Counts the run's feedback rows and writes the training set's manifest",
            "prepare": "Names the training job and builds its channels",
            "evaluate": "Scores the challenger and the champion on the run's holdout: the scores the gate judges",
            "register": "Registers the trained bundle with its evaluation and lineage",
            "promote": "Makes the gated version the champion",
            "reject": "Records a version the gate rejected",
            "record_failure": "Records a failed training run",
            "release": "Releases the run lock and stamps the run's end",
        }
        steps = {
            name: self._step_function(config, removal, name, description, environment)
            for name, description in descriptions.items()
        }
        # What each step reads and writes (functions/workflow/steps/, functions/common/registry.py); everything
        # else is denied. Only Promote moves the champion; only Register creates versions. Steps that record
        # decisions also read them (a retried step finds the decision its first attempt wrote); the model bucket's
        # policy keeps versions and decisions create-only whatever these grants say.
        model, registry, bucket = self.model_bucket, data.registry_prefix, self.data_bucket
        layout = RegistryLayout(registry)
        runs, decisions, versions = layout.runs_prefix, layout.decisions_prefix, layout.versions_prefix
        grants: dict[str, list[tuple[s3.IBucket, str, PrefixAccess]]] = {
            "guard": [(model, runs, "read-write"), (model, decisions, "read-write")],
            # Assemble lists the capture folders (model versions); its queries (below) read feedback, FinishAssembly's
            # read both: Athena reads with their roles, neither reads a record itself.
            "assemble": [
                (bucket, data.training_data_prefix, "read"),
                (bucket, data.capture_prefix, "list"),
                (bucket, data.assembled_prefix, "write"),
            ],
            "hold_out": [(bucket, data.assembled_prefix, "read-write"), (bucket, data.holdout_prefix, "write")],
            "finish_assembly": [(bucket, data.assembled_prefix, "read")],
            "prepare": [],
            "evaluate": [
                (model, data.artifact_prefix, "read"),
                (model, versions, "read"),
                (bucket, data.holdout_prefix, "read-write"),
            ],
            "register": [
                (bucket, data.holdout_prefix, "read"),
                (model, data.artifact_prefix, "read"),
                (model, versions, "read-write"),
                (model, decisions, "read-write"),
            ],
            "promote": [(model, versions, "read"), (model, decisions, "read-write")],
            "reject": [(model, decisions, "read-write")],
            "record_failure": [(model, decisions, "read-write")],
            "release": [(model, runs, "read-write")],
        }
        for name, accesses in grants.items():
            for bucket, prefix, access in accesses:
                grant_prefix(steps[name].role, bucket, prefix, access)
        grant_object(steps["prepare"].role, model, layout.champion_key, "read")
        # Assemble tells new feature values from the champion's (its metadata); FinishAssembly re-reads the same
        # version's. Metadata only, never an archive.
        grant_object(steps["assemble"].role, model, layout.champion_key, "read")
        for name in ("assemble", "finish_assembly"):
            grant_object(steps[name].role, model, layout.version_key("*", METADATA_FILE), "read")
        grant_object(steps["promote"].role, model, layout.champion_key, "read-write")
        # The model registry mirror: Register creates the version's package, Promote and Reject set its status.
        self.model_packages.grant_create(steps["register"].role)
        for name in ("promote", "reject"):
            self.model_packages.grant_update(steps[name].role)
        self.catalog.grant_query(steps["assemble"].role, self.data_bucket, tables=(FEEDBACK_TABLE,))
        self.catalog.grant_query(steps["finish_assembly"].role, self.data_bucket)
        # The steps that read keys that may be missing (no champion, run lock, version or evaluation yet) need a 404.
        for name in ("guard", "assemble", "prepare", "evaluate", "register", "promote", "release"):
            grant_missing_key_lookups(steps[name].role, model)
        return steps

    def _grant_feedback_unload(self, config: DriftloopConfig, role: iam.IRole) -> None:
        """What AssembleFeedback's ``startQueryExecution.sync`` needs: the query (Athena reads the tables and writes
        the UNLOAD's files and its results with the state machine's role), and nothing beyond those prefixes."""
        data, bucket = config.data, self.data_bucket
        self.catalog.grant_query(role, bucket)
        grant_prefix(role, bucket, data.assembled_prefix, "write")
        # UNLOAD checks that its location is empty before it writes.
        grant_prefix(role, bucket, data.assembled_prefix, "list")
        # Athena writes large files in parts, and aborts the upload of a failed query's.
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=list(RESULT_UPLOAD_ACTIONS), resources=[objects_arn(bucket, data.assembled_prefix)]
            )
        )


def _metric_definitions() -> list[dict[str, str]]:
    # Imported here: training.contract is the training program's module, needed only to synthesize this stack.
    from training.contract import METRIC_DEFINITIONS

    return [{"Name": item["Name"], "Regex": item["Regex"]} for item in METRIC_DEFINITIONS]
