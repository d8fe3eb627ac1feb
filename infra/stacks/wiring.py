"""The app's four stacks and how they are wired: what the app entry point (``infra/app.py``) builds and cdk-nag
(``infra/nag.py``) reviews."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import App, Tags

from infra.config import DriftloopConfig
from infra.stacks.data_stack import DataStack
from infra.stacks.monitoring_stack import MonitoringStack
from infra.stacks.serving_stack import ServingStack
from infra.stacks.training_stack import TrainingStack


@dataclass(frozen=True)
class DriftloopStacks:
    config: DriftloopConfig
    data: DataStack
    training: TrainingStack
    serving: ServingStack
    monitoring: MonitoringStack


def build_stacks(app: App, config: DriftloopConfig) -> DriftloopStacks:
    """The stacks, environment-agnostic so that synth needs no credentials."""
    prefix = config.resource_prefix
    Tags.of(app).add("project", config.name_prefix)
    Tags.of(app).add("stage", config.stage)
    data = DataStack(app, f"{prefix}-data", config=config, description="driftloop buckets: data, models, logs")
    training = TrainingStack(
        app,
        f"{prefix}-training",
        config=config,
        data_bucket=data.shared_data_bucket,
        model_bucket=data.shared_model_bucket,
        catalog=data.catalog,
        description="driftloop training workflow: SageMaker job orchestrated by Step Functions",
    )
    serving = ServingStack(
        app,
        f"{prefix}-serving",
        config=config,
        model_bucket=data.shared_model_bucket,
        data_bucket=data.shared_data_bucket,
        description="driftloop inference: Lambda behind a REST API, capture and feedback streams",
    )
    # The buckets reach the other stacks through named exports, which CDK does not track as references.
    training.add_stack_dependency(data)
    serving.add_stack_dependency(data)
    monitoring = MonitoringStack(
        app,
        f"{prefix}-monitoring",
        config=config,
        data_bucket=data.shared_data_bucket,
        model_bucket=data.shared_model_bucket,
        state_machine=training.state_machine,
        inference_function=serving.function,
        api=serving.api.api,
        catalog=data.catalog,
        delivery_streams={
            label: stream.stream_name
            for label, stream in (("captures", serving.capture_stream), ("feedback", serving.feedback_stream))
            if stream is not None
        },
        capture_subscriptions=[
            (subscription.log_group_name, subscription.filter_name)
            for subscription in (serving.capture_stream.subscriptions if serving.capture_stream else [])
        ],
        description="driftloop monitoring: drift monitor, alarms, retraining triggers, dashboard",
    )
    monitoring.add_stack_dependency(data)
    return DriftloopStacks(config, data, training, serving, monitoring)
