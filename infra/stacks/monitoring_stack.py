"""Monitoring: the scheduled drift monitor, the model and operational alarms, the retraining triggers, the
operations topic and the dashboard."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aws_cdk import CfnOutput, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.config import DriftloopConfig
from infra.constructs.alarms import AlarmTopic, ModelAlarms, OperationalAlarms, OperationalTargets
from infra.constructs.capture_catalog import SharedCatalog
from infra.constructs.dashboard import DashboardSources, MonitoringDashboard
from infra.constructs.event_dead_letters import EventDeadLetters
from infra.constructs.monitor_function import MonitorFunction
from infra.constructs.retraining_triggers import RetrainingTriggers
from infra.stacks.data_stack import SharedBucket


class MonitoringStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DriftloopConfig,
        data_bucket: SharedBucket,
        model_bucket: SharedBucket,
        state_machine: sfn.IStateMachine,
        inference_function: lambda_.IFunction,
        api: apigw.RestApi,
        catalog: SharedCatalog,
        delivery_streams: Mapping[str, str] | None = None,
        capture_subscriptions: Sequence[tuple[str, str]] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        removal = RemovalPolicy.RETAIN if config.retain else RemovalPolicy.DESTROY
        prefix, monitoring = config.resource_prefix, config.monitoring
        self.data_bucket = data_bucket.import_into(self, "DataBucket")
        self.model_bucket = model_bucket.import_into(self, "ModelBucket")

        self.dead_letters = EventDeadLetters(self, "EventDeadLetters", removal_policy=removal)
        self.monitor = MonitorFunction(
            self,
            "Monitor",
            config=config,
            data_bucket=self.data_bucket,
            model_bucket=self.model_bucket,
            removal_policy=removal,
            dead_letters=self.dead_letters,
            catalog=catalog,
        )
        self.ops = AlarmTopic(
            self,
            "OpsTopic",
            display_name=f"{prefix} operations alarms",
            email=monitoring.alarm_email,
            removal_policy=removal,
        )
        # Drift and quality alarms notify too (so a retraining never starts unannounced), and start retraining.
        self.model_alarms = ModelAlarms(
            self, "ModelAlarms", prefix=prefix, service=self.monitor.service, monitoring=monitoring
        )
        self.operational_alarms = OperationalAlarms(
            self,
            "OperationalAlarms",
            prefix=prefix,
            targets=OperationalTargets(
                api=api,
                inference_function=inference_function,
                inference_service=config.service_name("inference"),
                monitor_function=self.monitor.function,
                monitor_service=self.monitor.service,
                state_machine=state_machine,
                delivery_streams=dict(delivery_streams or {}),
                delivery_buffer_seconds=config.capture.buffer_seconds,
                capture_subscriptions=list(capture_subscriptions),
                inference_reserved_concurrency=config.serving.reserved_concurrency,
                event_dead_letters=self.dead_letters.queue,
            ),
            monitoring=monitoring,
        )
        for alarm in (*self.model_alarms.alarms, *self.operational_alarms.alarms.values()):
            self.ops.notify(alarm)

        self.triggers = RetrainingTriggers(
            self,
            "RetrainingTriggers",
            prefix=prefix,
            state_machine=state_machine,
            retraining=config.retraining,
            alarms=self.model_alarms.alarms,
            data_bucket_name=self.data_bucket.bucket_name,
            training_data_prefix=config.data.training_data_prefix,
            dead_letters=self.dead_letters,
        )
        self.dashboard = MonitoringDashboard(
            self,
            "Dashboard",
            name=f"{prefix}-monitoring",
            sources=DashboardSources(
                api=api,
                inference_service=config.service_name("inference"),
                monitor_service=self.monitor.service,
                monitor_log_group=self.monitor.monitor.log_group,
                state_machine=state_machine,
                alarms=[*self.model_alarms.alarms, *self.operational_alarms.alarms.values()],
            ),
            monitoring=monitoring,
        )

        CfnOutput(self, "OpsTopicArn", value=self.ops.topic.topic_arn)
        CfnOutput(self, "MonitorFunctionName", value=self.monitor.function.function_name)
        CfnOutput(self, "DashboardName", value=f"{prefix}-monitoring")
        CfnOutput(self, "EventDeadLetterQueueUrl", value=self.dead_letters.queue.queue_url)
