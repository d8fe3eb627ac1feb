"""An S3 bucket with the protections every driftloop bucket needs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_s3 as s3
from constructs import Construct


class SecureBucket(Construct):
    """Versioned, SSE-S3 encrypted, private, TLS-only, with server access logs and housekeeping lifecycle rules.

    SSE-S3 rather than KMS: the access-log target must use SSE-S3 anyway, SageMaker, Step Functions and Lambda
    read and write without key grants, and there is no per-request KMS cost; access stays governed by IAM and
    the bucket policy.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        noncurrent_version_expiry: Duration,
        incomplete_upload_expiry: Duration,
        removal_policy: RemovalPolicy,
        auto_delete_objects: bool,
        access_logs: s3.IBucket | None,
        extra_lifecycle_rules: Sequence[s3.LifecycleRule] = (),
        event_bridge_enabled: bool = False,
    ) -> None:
        super().__init__(scope, construct_id)
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            versioned=True,
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            server_access_logs_bucket=access_logs,
            server_access_logs_prefix=f"{construct_id}/" if access_logs is not None else None,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="housekeeping",
                    noncurrent_version_expiration=noncurrent_version_expiry,
                    abort_incomplete_multipart_upload_after=incomplete_upload_expiry,
                    expired_object_delete_marker=True,
                ),
                *extra_lifecycle_rules,
            ],
            removal_policy=removal_policy,
            auto_delete_objects=auto_delete_objects,
        )
        if event_bridge_enabled:
            # On the CloudFormation bucket itself: the L2's event_bridge_enabled deploys a custom-resource Lambda
            # to set the same notification configuration.
            bucket = cast(s3.CfnBucket, self.bucket.node.default_child)
            bucket.notification_configuration = s3.CfnBucket.NotificationConfigurationProperty(
                event_bridge_configuration=s3.CfnBucket.EventBridgeConfigurationProperty(event_bridge_enabled=True)
            )
