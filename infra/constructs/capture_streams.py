"""Kinesis Data Firehose delivery streams for captured predictions and ground-truth feedback.

Both write the JSON lines of ``functions.common.records`` into the data bucket under the keys
``functions.common.layout`` owns (the prefix expressions are built there). Feedback is a DirectPut stream the
inference Lambda calls (``PutRecordBatch``). Captures come from the logs of the functions that predict: a
CloudWatch Logs subscription filter (:meth:`DeliveryStream.subscribe`, pattern ``records.CAPTURE_FILTER_PATTERN``)
sends the marked capture lines to the capture stream as gzip CloudWatch Logs envelopes, and the stream's processors
turn them back into the records, one per line (``Decompression``, ``CloudWatchLogProcessing`` with message
extraction, ``AppendDelimiterToRecord``) before it partitions them:

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

from aws_cdk import ArnFormat, Aws, RemovalPolicy, Stack
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
from functions.common.records import CAPTURE_FILTER_PATTERN
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
    # Fed by CloudWatch Logs subscriptions: the stream unpacks their envelopes back into the logged lines.
    from_logs: bool = False


class DeliveryStream(Construct):
    """One delivery stream into ``bucket`` (DirectPut: producers and log subscriptions put records), with its
    delivery role and delivery-error log."""

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
        self.subscriptions: list[LogSubscription] = []
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

        partitioning = _processing(settings.partition_keys, from_logs=settings.from_logs)
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
                # tests by tests/stored_records.py.
                compression_format="GZIP",
                buffering_hints=firehose.CfnDeliveryStream.BufferingHintsProperty(
                    interval_in_seconds=capture.buffer_seconds, size_in_m_bs=capture.buffer_mb
                ),
                cloud_watch_logging_options=firehose.CfnDeliveryStream.CloudWatchLoggingOptionsProperty(
                    enabled=True, log_group_name=self.log_group.log_group_name, log_stream_name=DELIVERY_LOG_STREAM
                ),
                dynamic_partitioning_configuration=partitioning[0],
                processing_configuration=partitioning[1],
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

    def subscribe(self, scope: Construct, construct_id: str, log_group: logs.ILogGroup) -> LogSubscription:
        """Ship ``log_group``'s capture lines to this stream (a stream built ``from_logs``)."""
        subscription = LogSubscription(scope, construct_id, log_group=log_group, stream=self)
        self.subscriptions.append(subscription)
        return subscription


class LogSubscription(Construct):
    """A subscription filter that sends a log group's capture lines to a delivery stream, with the role CloudWatch
    Logs assumes to put them: ``PutRecord``/``PutRecordBatch`` on that stream only, and only on behalf of that log
    group (``aws:SourceArn``, against the confused deputy)."""

    def __init__(
        self, scope: Construct, construct_id: str, *, log_group: logs.ILogGroup, stream: DeliveryStream
    ) -> None:
        super().__init__(scope, construct_id)
        self.log_group_name = log_group.log_group_name
        # Unique per log group; the name is the FilterName dimension of the delivery metrics the alarms watch.
        self.filter_name = stream.stream_name
        # The log group as a source ARN, with and without the ":*" that its ARN attribute carries.
        group_arn = Stack.of(self).format_arn(
            service="logs",
            resource="log-group",
            resource_name=log_group.log_group_name,
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal(
                "logs.amazonaws.com",
                conditions={
                    "StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID},
                    "ArnLike": {"aws:SourceArn": [group_arn, f"{group_arn}:*"]},
                },
            ),
            description=f"CloudWatch Logs puts capture lines into {stream.stream_name}",
        )
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["firehose:PutRecord", "firehose:PutRecordBatch"], resources=[stream.stream_arn]
            )
        )
        self.filter = logs.CfnSubscriptionFilter(
            self,
            "Filter",
            log_group_name=log_group.log_group_name,
            filter_name=self.filter_name,
            filter_pattern=CAPTURE_FILTER_PATTERN,
            destination_arn=stream.stream_arn,
            role_arn=self.role.role_arn,
        )
        # CloudWatch Logs checks that it can put a test record when the filter is created: policy first.
        self.filter.node.add_dependency(self.role)


Processing = tuple[
    firehose.CfnDeliveryStream.DynamicPartitioningConfigurationProperty | None,
    firehose.CfnDeliveryStream.ProcessingConfigurationProperty | None,
]


def _processing(keys: dict[str, str], *, from_logs: bool) -> Processing:
    """The stream's processors: unpacking CloudWatch Logs envelopes (``from_logs``), then dynamic partitioning on
    JQ keys extracted from each JSON record (none: no partitioning).

    AWS's Firehose guide ("Send CloudWatch Logs to Firehose", writing-with-cloudwatch-logs.html) says dynamic
    partitioning of CloudWatch Logs needs decompression enabled; with message extraction (Message_extraction.html)
    Firehose drops the envelope's metadata and passes on only each log event's message, which here is one capture
    line, so the JQ query reads the record's own ``.model_version``. Records that fail after decompression go to the
    error prefix, still compressed (decomp-faq.html); a record that cannot be decompressed goes there too, which is
    why only subscriptions may feed this stream. The delimiter processor ends each record with a newline.
    """
    processors = []
    if from_logs:
        processors += [
            firehose.CfnDeliveryStream.ProcessorProperty(
                type="Decompression", parameters=[_parameter("CompressionFormat", "GZIP")]
            ),
            firehose.CfnDeliveryStream.ProcessorProperty(
                type="CloudWatchLogProcessing", parameters=[_parameter("DataMessageExtraction", "true")]
            ),
        ]
    dynamic = None
    if keys:
        query = "{" + ",".join(f"{name}:{path}" for name, path in keys.items()) + "}"
        dynamic = firehose.CfnDeliveryStream.DynamicPartitioningConfigurationProperty(
            enabled=True,
            retry_options=firehose.CfnDeliveryStream.RetryOptionsProperty(
                duration_in_seconds=PARTITIONING_RETRY_SECONDS
            ),
        )
        processors.append(
            firehose.CfnDeliveryStream.ProcessorProperty(
                type="MetadataExtraction",
                parameters=[_parameter("MetadataExtractionQuery", query), _parameter("JsonParsingEngine", "JQ-1.6")],
            )
        )
    if from_logs:
        processors.append(firehose.CfnDeliveryStream.ProcessorProperty(type="AppendDelimiterToRecord"))
    if not processors:
        return dynamic, None
    return dynamic, firehose.CfnDeliveryStream.ProcessingConfigurationProperty(enabled=True, processors=processors)


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
                    from_logs=True,
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
