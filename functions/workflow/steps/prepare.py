"""Prepare: the training job's name, channels and hyperparameters; ``train`` is the assembled data."""

from __future__ import annotations

from typing import Any

from functions.common.registry import Registry
from functions.workflow.errors import WorkflowError
from functions.workflow.settings import WorkflowSettings
from functions.workflow.state import AssemblyResult, ChampionRef, PrepareResult, RunState
from functions.workflow.steps.hyperparameters import run_hyperparameters

# SageMaker training job names: at most 63 characters.
MAX_JOB_NAME = 63


def prepare(settings: WorkflowSettings, registry: Registry, state: RunState) -> PrepareResult:
    version = state.version()
    job_name = f"{settings.job_prefix}-{version}"
    if len(job_name) > MAX_JOB_NAME:
        raise WorkflowError(f"training job name {job_name!r} exceeds {MAX_JOB_NAME} characters: shorten the job prefix")
    if state.assembly is None or not state.assembly.prefix:
        raise WorkflowError(
            f"no assembled training data in the state ({AssemblyResult.path('prefix')}): Assemble must run first"
        )
    hyperparameters = run_hyperparameters(settings, state.execution_input())
    channels = [_s3_channel("train", f"s3://{settings.data_bucket}/{state.assembly.prefix}")]
    champion = registry.champion()
    if champion is not None:
        channels.append(_s3_channel("champion", f"s3://{registry.bucket}/{champion.archive_key}"))
        hyperparameters["champion_version"] = champion.version
    return PrepareResult(
        version=version,
        training_job_name=job_name,
        hyperparameters=hyperparameters,
        input_data_config=channels,
        output_path=f"s3://{settings.model_bucket}/{settings.artifact_prefix}",
        champion=None if champion is None else ChampionRef(champion.version, champion.sha256),
        trigger=state.trigger(),
    )


def _s3_channel(name: str, uri: str) -> dict[str, Any]:
    return {
        "ChannelName": name,
        "DataSource": {
            "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri, "S3DataDistributionType": "FullyReplicated"}
        },
        "InputMode": "File",
    }
