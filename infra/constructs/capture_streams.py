"""Kinesis Data Firehose delivery streams for captured predictions and ground-truth feedback.

Both are DirectPut streams (the inference Lambda calls ``PutRecordBatch``) that write the JSON lines of
``functions.common.records`` into the data bucket under the keys ``functions.common.layout`` owns (the prefix
expressions are built there):

- captures: ``<capture_prefix>model_version=<v>/hour=<YYYY-MM-DD-HH>/``, the version taken from each record by
  dynamic partitioning (JQ ``.model_version``), the hour from the record's arrival time;
- feedback: ``<feedback_prefix>hour=<YYYY-MM-DD-HH>/``.

Objects are gzip-compressed (``.gz``). Records Firehose cannot deliver or partition go under
``<prefix>errors/<error type>/hour=<YYYY-MM-DD-HH>/``. Each
stream is encrypted at rest (an AWS-owned key), logs delivery errors to its own log group, and has its own
delivery role that can write only below its prefix.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Aws, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesisfirehose as firehose
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from functions.common.layout import (
    CAPTURE_PARTITION_KEYS,
    firehose_capture_prefix,
    firehose_error_prefix,
    firehose_feedback_prefix,
)
from infra.config import CaptureConfig, DataConfig
from infra.constructs.log_group import log_group
from infra.grants import grant_prefix, objects_arn

# How long Firehose retries a record whose partition key cannot be extracted before it goes to the error prefix.
PARTITIONING_RETRY_SECONDS = 300
DELIVERY_LOG_STREAM = "S3Delivery"


@dataclass(frozen=True)
class StreamSettings:
    name: str
    # Everything the stream writes lies below this prefix (its delivery role can write nowhere else).
    prefix: str
    key_prefix: str
    # JQ partition keys by name (dynamic partitioning), or none.
    partition_keys: dict[str, str]


class DeliveryStream(Construct):
    """One DirectPut delivery stream into ``bucket``, with its delivery role and delivery-error log."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: StreamSettings,
        bucket: s3.IBucket,
        capture: CaptureConfig,
        log_retention_days: int,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.stream_name = settings.name
        self.prefix = settings.prefix
        self.role = iam.Role(
            self,
            "DeliveryRole",
            # The external id keeps another account's stream from using this role (confused deputy).
            assumed_by=iam.ServicePrincipal(
                "firehose.amazonaws.com", conditions={"StringEquals": {"sts:ExternalId": Aws.ACCOUNT_ID}}
            ),
            description=f"Firehose delivery of {settings.name} to s3://<data bucket>/{settings.prefix}",
        )
        grant_prefix(self.role, bucket, settings.prefix, "write")
        self.role.add_to_principal_policy(
            iam.PolicyStatement(actions=["s3:AbortMultipartUpload"], resources=[objects_arn(bucket, settings.prefix)])
        )
        self.role.add_to_principal_policy(
            iam.PolicyStatement(actions=["s3:GetBucketLocation"], resources=[bucket.bucket_arn])
        )
        self.log_group = log_group(
            self, "DeliveryLogs", retention_days=log_retention_days, removal_policy=removal_policy
        )
        logs.LogStream(
            self,
            "DeliveryErrors",
            log_group=self.log_group,
            log_stream_name=DELIVERY_LOG_STREAM,
            removal_policy=removal_policy,
        )
        self.log_group.grant_write(self.role)

        partitioning = _partitioning(settings.partition_keys)
        self.stream = firehose.CfnDeliveryStream(
            self,
            "Stream",
            delivery_stream_name=settings.name,
            delivery_stream_type="DirectPut",
            delivery_stream_encryption_configuration_input=(
                firehose.CfnDeliveryStream.DeliveryStreamEncryptionConfigurationInputProperty(key_type="AWS_OWNED_CMK")
            ),
            extended_s3_destination_configuration=firehose.CfnDeliveryStream.ExtendedS3DestinationConfigurationProperty(
                bucket_arn=bucket.bucket_arn,
                role_arn=self.role.role_arn,
                prefix=settings.key_prefix,
                error_output_prefix=firehose_error_prefix(settings.prefix),
                # Gzipped JSON lines: Athena reads them by the catalog's table (functions.common.catalog), the
                # Python readers by functions.common.labelled.object_records.
                compression_format="GZIP",
                buffering_hints=firehose.CfnDeliveryStream.BufferingHintsProperty(
                    interval_in_seconds=capture.buffer_seconds, size_in_m_bs=capture.buffer_mb
                ),
                cloud_watch_logging_options=firehose.CfnDeliveryStream.CloudWatchLoggingOptionsProperty(
                    enabled=True, log_group_name=self.log_group.log_group_name, log_stream_name=DELIVERY_LOG_STREAM
                ),
                dynamic_partitioning_configuration=partitioning[0] if partitioning else None,
                processing_configuration=partitioning[1] if partitioning else None,
            ),
        )
        # Firehose checks its role when the stream is created: the role's policy must exist first.
        self.stream.node.add_dependency(self.role)
        self.stream_arn = self.stream.attr_arn

    def grant_put(self, grantee: iam.IGrantable) -> None:
        """``firehose:PutRecordBatch`` on this stream only."""
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(actions=["firehose:PutRecordBatch"], resources=[self.stream_arn])
        )


def _partitioning(
    keys: dict[str, str],
) -> (
    tuple[
        firehose.CfnDeliveryStream.DynamicPartitioningConfigurationProperty,
        firehose.CfnDeliveryStream.ProcessingConfigurationProperty,
    ]
    | None
):
    """Dynamic partitioning on JQ keys extracted from each JSON record (none: no partitioning)."""
    if not keys:
        return None
    query = "{" + ",".join(f"{name}:{path}" for name, path in keys.items()) + "}"
    dynamic = firehose.CfnDeliveryStream.DynamicPartitioningConfigurationProperty(
        enabled=True,
        retry_options=firehose.CfnDeliveryStream.RetryOptionsProperty(duration_in_seconds=PARTITIONING_RETRY_SECONDS),
    )
    processing = firehose.CfnDeliveryStream.ProcessingConfigurationProperty(
        enabled=True,
        processors=[
            firehose.CfnDeliveryStream.ProcessorProperty(
                type="MetadataExtraction",
                parameters=[_parameter("MetadataExtractionQuery", query), _parameter("JsonParsingEngine", "JQ-1.6")],
            )
        ],
    )
    return dynamic, processing


def _parameter(name: str, value: str) -> firehose.CfnDeliveryStream.ProcessorParameterProperty:
    return firehose.CfnDeliveryStream.ProcessorParameterProperty(parameter_name=name, parameter_value=value)


class CaptureStreams(Construct):
    """The capture stream (only when ``capture.enabled``) and the feedback stream (always)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name_prefix: str,
        bucket: s3.IBucket,
        data: DataConfig,
        capture: CaptureConfig,
        log_retention_days: int,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)

        def stream(stream_id: str, settings: StreamSettings) -> DeliveryStream:
            return DeliveryStream(
                self,
                stream_id,
                settings=settings,
                bucket=bucket,
                capture=capture,
                log_retention_days=log_retention_days,
                removal_policy=removal_policy,
            )

        self.capture: DeliveryStream | None = None
        if capture.enabled:
            self.capture = stream(
                "Captures",
                StreamSettings(
                    name=f"{name_prefix}-captures",
                    prefix=data.capture_prefix,
                    key_prefix=firehose_capture_prefix(data.capture_prefix),
                    partition_keys=CAPTURE_PARTITION_KEYS,
                ),
            )
        self.feedback = stream(
            "Feedback",
            StreamSettings(
                name=f"{name_prefix}-feedback",
                prefix=data.feedback_prefix,
                key_prefix=firehose_feedback_prefix(data.feedback_prefix),
                partition_keys={},
            ),
        )

    @property
    def streams(self) -> list[DeliveryStream]:
        return [stream for stream in (self.capture, self.feedback) if stream is not None]
