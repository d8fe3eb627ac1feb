"""Serving: the inference Lambda (ZIP, bundled locally) behind a REST API, the Firehose streams that carry its
captured predictions (from its log, through a subscription) and ground-truth feedback to the data bucket, batch
scoring (the champion's other way of serving, deployed and changed with the inference code it reuses), and the
rotated key both sign prediction ids with."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from constructs import Construct

from functions.batch.settings import BatchSettings
from functions.inference.settings import InferenceSettings, KeyRotationSettings
from infra.bundling import INFERENCE
from infra.config import DriftloopConfig
from infra.constructs.batch_scoring import BatchScoring
from infra.constructs.capture_streams import CaptureStreams, DeliveryStream
from infra.constructs.id_keys import PredictionIdKeys
from infra.constructs.inference_api import InferenceApi
from infra.constructs.python_function import PythonFunction, bundled_code
from infra.grants import grant_missing_key_lookups, grant_prefix
from infra.stacks.data_stack import SharedBucket

INFERENCE_HANDLER = "functions.inference.app.handler"


class ServingStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DriftloopConfig,
        model_bucket: SharedBucket,
        data_bucket: SharedBucket,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        removal = RemovalPolicy.RETAIN if config.retain else RemovalPolicy.DESTROY
        serving, registry = config.serving, config.data.registry_prefix
        self.model_bucket = model_bucket.import_into(self, "ModelBucket")
        self.data_bucket = data_bucket.import_into(self, "DataBucket")

        # Captured predictions (unless capture is disabled) and feedback, delivered to the data bucket.
        self.streams = CaptureStreams(
            self,
            "CaptureStreams",
            name_prefix=config.resource_prefix,
            bucket=self.data_bucket,
            data=config.data,
            capture=config.capture,
            log_retention_days=config.log_retention_days,
            removal_policy=removal,
        )
        self.capture_stream: DeliveryStream | None = self.streams.capture
        self.feedback_stream: DeliveryStream = self.streams.feedback
        # The key that signs prediction ids: the functions that predict mint with it, /feedback verifies.
        self.id_keys = PredictionIdKeys(
            self,
            "PredictionIdKeys",
            rotation=KeyRotationSettings(service=config.service_name("id-key-rotation"), log_level=config.log_level),
            feedback_max_age_days=config.capture.feedback_max_age_days,
            log_retention_days=config.log_retention_days,
            removal_policy=removal,
        )
        key_secret = self.id_keys.secret.secret_arn
        # Without capture the function gets neither a capture stream nor a sampling rate.
        capture = self.capture_stream
        settings = InferenceSettings(
            service=config.service_name("inference"),
            log_level=config.log_level,
            model_bucket=self.model_bucket.bucket_name,
            registry_prefix=registry,
            refresh_seconds=serving.refresh_seconds,
            max_instances=serving.max_instances,
            max_body_bytes=serving.max_body_bytes,
            capture="none" if capture is None else "log",
            capture_sample_rate=None if capture is None else config.capture.sample_rate,
            feedback_stream=self.feedback_stream.stream_name,
            feedback_max_age_days=config.capture.feedback_max_age_days,
            id_key_secret=key_secret,
        )

        self.inference = PythonFunction(
            self,
            "InferenceFunction",
            code=bundled_code(INFERENCE),
            handler=INFERENCE_HANDLER,
            description="driftloop inference API: serves the registry's champion model with onnxruntime",
            environment=settings.to_env(),
            memory_mb=serving.memory_mb,
            timeout=Duration.seconds(serving.timeout_seconds),
            log_retention_days=config.log_retention_days,
            removal_policy=removal,
            reserved_concurrency=serving.reserved_concurrency,
        )
        self.function = self.inference.function
        # Read-only, and only the registry: the champion pointer and the versions it names.
        grant_prefix(self.inference.role, self.model_bucket, registry, "read")
        grant_missing_key_lookups(self.inference.role, self.model_bucket)
        self.id_keys.grant_read(self.inference.role)
        # PutRecordBatch on the feedback stream only (captures leave through the log); it cannot read what it delivers.
        self.feedback_stream.grant_put(self.inference.role)

        self.batch = BatchScoring(
            self,
            "BatchScoring",
            state_machine_name=f"{config.resource_prefix}-batch",
            settings=BatchSettings(
                service=config.service_name("batch"),
                log_level=config.log_level,
                model_bucket=self.model_bucket.bucket_name,
                registry_prefix=registry,
                data_bucket=self.data_bucket.bucket_name,
                capture_stream=None if capture is None else capture.stream_name,
                id_key_secret=key_secret,
            ),
            model_bucket=self.model_bucket,
            data_bucket=self.data_bucket,
            registry_prefix=registry,
            # The serving-load check at training guarantees the model fits the serving function's memory.
            score_memory_mb=serving.memory_mb,
            log_retention_days=config.log_retention_days,
            removal_policy=removal,
        )

        # Batch predictions' ids are minted as the API's: /feedback accepts them.
        self.id_keys.grant_read(self.batch.score.role)

        # The capture lines of the functions that predict reach the capture stream through their logs.
        if capture is not None:
            capture.subscribe(self, "InferenceCaptures", self.inference.log_group)
            capture.subscribe(self, "BatchCaptures", self.batch.score.log_group)

        self.api = InferenceApi(
            self,
            "InferenceApi",
            name=f"{config.resource_prefix}-inference",
            handler=self.function,
            serving=serving,
            log_retention_days=config.log_retention_days,
            removal_policy=removal,
        )
        # A stable output name for scripts, in place of the RestApi's own hashed "Endpoint" output.
        self.api.api.node.try_remove_child("Endpoint")
        CfnOutput(self, "ApiUrl", value=self.api.api.url)
        CfnOutput(self, "FunctionName", value=self.function.function_name)
        CfnOutput(
            self,
            "BatchStateMachineArn",
            value=self.batch.state_machine.state_machine_arn,
            description="driftloop batch --state-machine <arn> --input s3://<data bucket>/batch/input/<name>/",
        )
        CfnOutput(
            self,
            "IdKeySecretArn",
            value=key_secret,
            description="The prediction id key: aws secretsmanager rotate-secret --secret-id <arn> rotates it now",
        )
        CfnOutput(
            self,
            "FeedbackPolicyArn",
            value=self.api.feedback_policy.managed_policy_arn,
            description="Attach to the callers that may post ground-truth labels (POST /feedback, SigV4)",
        )
        if self.api.predict_policy is not None:
            CfnOutput(
                self,
                "PredictPolicyArn",
                value=self.api.predict_policy.managed_policy_arn,
                description="Attach to the callers that may predict: POST /predict and the GET routes, not /feedback",
            )
        CfnOutput(
            self,
            "ApiKeyIds",
            value=self.to_json_string({client: key.key_id for client, key in self.api.api_keys.items()}),
            description="Each client's API key id, by client name: driftloop api-key --client NAME prints its key",
        )
