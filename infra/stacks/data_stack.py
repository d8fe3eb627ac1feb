"""Buckets: training data (and later captured predictions), model artifacts and the registry, access logs; the Glue
catalog and Athena workgroup over the captured predictions and feedback."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_cdk import CfnOutput, Duration, Fn, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from functions.common.registry import RegistryLayout
from infra.config import DriftloopConfig
from infra.constructs.capture_catalog import CaptureCatalog, SharedCatalog
from infra.constructs.secure_bucket import SecureBucket


@dataclass(frozen=True)
class SharedBucket:
    """A data-stack bucket as other stacks use it: through the bucket name exported under a fixed name.

    A fixed export keeps the consumers' IAM resources stable and readable (``arn:...:s3:::<export>/registry/*``),
    so their cdk-nag acknowledgements can name them exactly, and lets scripts find the buckets.
    """

    export_name: str

    def import_into(self, scope: Construct, construct_id: str) -> s3.IBucket:
        return s3.Bucket.from_bucket_name(scope, construct_id, Fn.import_value(self.export_name))


class DataStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: DriftloopConfig, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        data = config.data
        protections: dict[str, Any] = {
            "noncurrent_version_expiry": Duration.days(data.noncurrent_version_expiry_days),
            "incomplete_upload_expiry": Duration.days(data.incomplete_upload_expiry_days),
            "removal_policy": RemovalPolicy.RETAIN if config.retain else RemovalPolicy.DESTROY,
            "auto_delete_objects": config.auto_delete_objects,
        }
        self.access_log_bucket = SecureBucket(
            self,
            "AccessLogBucket",
            access_logs=None,
            extra_lifecycle_rules=[
                s3.LifecycleRule(id="expire-access-logs", expiration=Duration.days(data.access_log_expiry_days))
            ],
            **protections,
        ).bucket
        self.data_bucket = SecureBucket(
            self,
            "DataBucket",
            access_logs=self.access_log_bucket,
            # S3 events to EventBridge: new labelled data may start a training run (retraining.on_new_data).
            event_bridge_enabled=config.retraining.on_new_data,
            extra_lifecycle_rules=[
                # Each training run's assembled data set (copies plus joined feedback) expires like its outputs.
                s3.LifecycleRule(
                    id="expire-assembled-data",
                    prefix=data.assembled_prefix,
                    expiration=Duration.days(data.artifact_expiry_days),
                ),
                # Each run's holdout and Evaluate's evaluation of it (the registry keeps a copy of the evaluation).
                s3.LifecycleRule(
                    id="expire-holdouts",
                    prefix=data.holdout_prefix,
                    expiration=Duration.days(data.artifact_expiry_days),
                ),
                # Captured predictions and feedback (Firehose's error output included) expire; a run that
                # needs them longer keeps them in its assembled data set.
                *(
                    s3.LifecycleRule(
                        id=f"expire-{name}", prefix=prefix, expiration=Duration.days(data.capture_expiry_days)
                    )
                    for name, prefix in (("captures", data.capture_prefix), ("feedback", data.feedback_prefix))
                ),
                # Athena's query results are copies of captured data, needed only until the querier read them.
                s3.LifecycleRule(
                    id="expire-athena-results",
                    prefix=data.athena_results_prefix,
                    expiration=Duration.days(config.athena.results_expiry_days),
                ),
            ],
            **protections,
        ).bucket
        self.model_bucket = SecureBucket(
            self,
            "ModelBucket",
            access_logs=self.access_log_bucket,
            # Training outputs are copied into the registry when registered; the registry prefix never expires.
            extra_lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-training-outputs",
                    prefix=data.artifact_prefix,
                    expiration=Duration.days(data.artifact_expiry_days),
                )
            ],
            **protections,
        ).bucket
        self._protect_registry_history(config)
        self.shared_data_bucket = self._share("DataBucketName", self.data_bucket, config)
        self.shared_model_bucket = self._share("ModelBucketName", self.model_bucket, config)
        self.capture_catalog = CaptureCatalog(
            self,
            "CaptureCatalog",
            bucket=self.data_bucket,
            data=data,
            athena_config=config.athena,
            database_name=config.glue_database_name,
            workgroup_name=config.athena_workgroup_name,
        )

    @property
    def catalog(self) -> SharedCatalog:
        """The Glue database and Athena workgroup as the other stacks use them (names and ``grant_query``)."""
        return self.capture_catalog.shared

    def _protect_registry_history(self, config: DriftloopConfig) -> None:
        """Versions and decisions are written once (``IfNoneMatch="*"``, functions/common/registry.py) and never
        replaced: the bucket refuses any other write there, whatever the writer's IAM permissions."""
        history = [
            self.model_bucket.arn_for_objects(f"{prefix}*")
            for prefix in RegistryLayout(config.data.registry_prefix).history_prefixes
        ]
        self.model_bucket.add_to_resource_policy(
            iam.PolicyStatement(
                sid="DenyUnconditionalWritesToRegistryHistory",
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                # CompleteMultipartUpload is authorised as s3:PutObject and carries the same header.
                actions=["s3:PutObject"],
                resources=history,
                conditions={"Null": {"s3:if-none-match": "true"}},
            )
        )
        # Deleting and re-creating would rewrite history too. auto_delete_objects exists to empty the bucket on
        # stack deletion, which this would block.
        if not config.auto_delete_objects:
            self.model_bucket.add_to_resource_policy(
                iam.PolicyStatement(
                    sid="DenyDeletingRegistryHistory",
                    effect=iam.Effect.DENY,
                    principals=[iam.AnyPrincipal()],
                    actions=["s3:DeleteObject", "s3:DeleteObjectVersion"],
                    resources=history,
                )
            )

    def _share(self, output_id: str, bucket: s3.Bucket, config: DriftloopConfig) -> SharedBucket:
        shared = SharedBucket(f"{config.resource_prefix}-{output_id}")
        CfnOutput(self, output_id, value=bucket.bucket_name, export_name=shared.export_name)
        return shared
