"""The driftloop CDK app: ``python -m infra.app`` (run by ``npx cdk synth`` through cdk.json)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aws_cdk import App, Tags

from infra.config import DriftloopConfig, load_config
from infra.nag import apply_nag
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
        delivery_streams={
            label: stream.stream_name
            for label, stream in (("captures", serving.capture_stream), ("feedback", serving.feedback_stream))
            if stream is not None
        },
        description="driftloop monitoring: drift monitor, alarms, retraining triggers, dashboard",
    )
    monitoring.add_stack_dependency(data)
    return DriftloopStacks(config, data, training, serving, monitoring)


def create_app(context: Mapping[str, Any] | None = None, outdir: str | None = None) -> tuple[App, DriftloopStacks]:
    app = App(context=dict(context) if context is not None else None, outdir=outdir)
    stacks = build_stacks(app, load_config(app.node.try_get_context))
    apply_nag(app, stacks)
    return app, stacks


def main() -> None:
    app, _ = create_app()
    app.synth()


if __name__ == "__main__":
    main()
