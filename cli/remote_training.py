"""``driftloop train --remote``: the training ``driftloop train`` runs, as a SageMaker training job in the account.

It goes through AWS's SageMaker Python SDK (``ModelTrainer``, the ``sagemaker`` extra), as a data scientist would
run driftloop's image: the deployed training stack's outputs (:data:`OUTPUTS`) give the image, the execution role,
the S3 locations that role may read and write, and the job-name prefix its log permissions allow. The data (and
the champion) are uploaded under the input location; the hyperparameters are ``--hp``'s, unchanged, and the job
has no network, as the workflow's. Credentials, region and endpoint come from the environment (AWS_PROFILE,
AWS_REGION, AWS_ENDPOINT_URL), so a local cloud works the same way (``driftloop local env``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cli.command import CommandError
from functions.common.bundle import ARCHIVE_FILE
from functions.common.layout import remote_channel_folder, split_s3_uri
from training.contract import CHAMPION_CHANNEL, METRIC_DEFINITIONS, TRAIN_CHANNEL

# The training stack's outputs this command reads (infra/stacks/training_stack.py).
IMAGE_OUTPUT = "TrainingImageUri"
ROLE_OUTPUT = "SageMakerRoleArn"
JOB_PREFIX_OUTPUT = "TrainingJobPrefix"
INPUT_OUTPUT = "TrainingInputUri"
ARTIFACT_OUTPUT = "TrainingOutputUri"
OUTPUTS = (IMAGE_OUTPUT, ROLE_OUTPUT, JOB_PREFIX_OUTPUT, INPUT_OUTPUT, ARTIFACT_OUTPUT)
DEFAULT_INSTANCE_TYPE = "ml.m5.large"
DEFAULT_MAX_RUNTIME_SECONDS = 3600
VALIDATE_ROLE = "SAGEMAKER_VALIDATE_ROLE"
# Where the SDK's TrainingJob.wait(logs=True) logs each of the job's log lines.
SDK_JOB_LOGGER = "sagemaker.core.resources"


@dataclass(frozen=True)
class RemoteTarget:
    """Where and as whom a training job runs: the deployed training stack's outputs."""

    image_uri: str
    role_arn: str
    job_prefix: str
    input_uri: str  # s3://<data bucket>/<assembled prefix>: the role reads below it
    output_uri: str  # s3://<model bucket>/<artifact prefix>: the role writes below it

    @classmethod
    def from_outputs(cls, outputs: Mapping[str, str], stack: str) -> RemoteTarget:
        missing = [name for name in OUTPUTS if not outputs.get(name)]
        if missing:
            raise CommandError(
                f"the stack {stack} has no output {', '.join(missing)}: deploy this version of driftloop's training "
                "stack first (or pass --stack <name_prefix>-<stage>-training)"
            )
        return cls(*(outputs[name] for name in OUTPUTS))


@dataclass(frozen=True)
class RemoteResult:
    job_name: str
    status: str
    failure_reason: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    model_uri: str | None = None

    @property
    def completed(self) -> bool:
        return self.status == "Completed"

    def summary(self) -> str:
        lines = [f"training job {self.job_name}: {self.status}"]
        if self.failure_reason:
            lines.append(f"failure reason: {self.failure_reason}")
        if self.metrics:
            lines.append("metrics: " + ", ".join(f"{name}={value:.4f}" for name, value in sorted(self.metrics.items())))
        if self.model_uri:
            lines.append(f"model artifact: {self.model_uri}")
        return "\n".join(lines)


def stack_target(stack: str) -> RemoteTarget:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        [found] = _session().client("cloudformation").describe_stacks(StackName=stack)["Stacks"]
    except (BotoCoreError, ClientError) as error:
        raise CommandError(f"cannot read the outputs of the training stack {stack}: {error}") from error
    return RemoteTarget.from_outputs({o["OutputKey"]: o["OutputValue"] for o in found.get("Outputs", [])}, stack)


def _files(source: Path) -> Iterator[tuple[Path, str]]:
    """Each file under ``source`` with its path in the channel, placed as ``driftloop train`` stages them."""
    if not source.exists():
        raise CommandError(f"{source} does not exist")
    if source.is_dir():
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            yield path, path.relative_to(source).as_posix()
    else:
        yield source, source.name


def upload_channels(
    s3: Any, target: RemoteTarget, run: str, data: Iterable[Path], champion: Path | None
) -> dict[str, str]:
    """Upload each channel under ``<input>/<run>/<channel>/``; returns each channel's S3 URI."""
    bucket, prefix = split_s3_uri(target.input_uri)
    sources = {TRAIN_CHANNEL: [(path, name) for source in data for path, name in _files(source)]}
    if champion is not None:
        archive = champion.is_file() and champion.name.endswith(".tar.gz")
        sources[CHAMPION_CHANNEL] = [(champion, ARCHIVE_FILE)] if archive else list(_files(champion))
    channels = {}
    for channel, files in sources.items():
        folder = remote_channel_folder(prefix, run, channel)
        for path, name in files:
            s3.upload_file(str(path), bucket, folder + name)
        channels[channel] = f"s3://{bucket}/{folder}"
    return channels


def train_remote(
    target: RemoteTarget,
    data: Iterable[Path],
    hyperparameters: Mapping[str, str],
    *,
    champion: Path | None = None,
    instance_type: str = DEFAULT_INSTANCE_TYPE,
    max_runtime_seconds: int = DEFAULT_MAX_RUNTIME_SECONDS,
    logs: bool = True,
) -> RemoteResult:
    """Upload the inputs, run the job through ModelTrainer, wait (streaming its logs) and describe how it ended."""
    from sagemaker.core.resources import TrainingJob
    from sagemaker.core.training.configs import (
        Compute,
        InputData,
        MetricDefinition,
        Networking,
        OutputDataConfig,
        StoppingCondition,
    )
    from sagemaker.core.utils.exceptions import FailedStatusError
    from sagemaker.train import ModelTrainer, Session

    boto_session = _session()
    base_job_name = f"{target.job_prefix}-remote"
    channels = upload_channels(
        boto_session.client("s3"), target, f"{base_job_name}-{uuid.uuid4().hex[:12]}", data, champion
    )
    with _role_checked_by_aws_only():
        trainer = ModelTrainer(
            training_image=target.image_uri,
            role=target.role_arn,
            base_job_name=base_job_name,
            sagemaker_session=Session(boto_session=boto_session),
            compute=Compute(instance_type=instance_type, instance_count=1),
            stopping_condition=StoppingCondition(max_runtime_in_seconds=max_runtime_seconds),
            output_data_config=OutputDataConfig(s3_output_path=target.output_uri),
            # As the workflow runs it: the program reads its channels and writes /opt/ml, nothing else.
            networking=Networking(enable_network_isolation=True),
            hyperparameters=dict(hyperparameters),
        ).with_metric_definitions([MetricDefinition(name=d["Name"], regex=d["Regex"]) for d in METRIC_DEFINITIONS])
    trainer.train(
        input_data_config=[InputData(channel_name=name, data_source=uri) for name, uri in channels.items()],
        wait=False,
    )
    # <output path>/<job name>/output/output.tar.gz: the SDK's public way to the name of the job it started.
    job = TrainingJob.get(training_job_name=trainer.output_data.split("/")[-3], session=boto_session)
    with contextlib.suppress(FailedStatusError):  # described below, with its reason
        job.wait(logs=logs)
    job.refresh()
    return describe(job)


def show_job_logs() -> None:
    """Print the job's log lines as the SDK streams them: it logs them at INFO on a logger with no handler."""
    job_logs = logging.getLogger(SDK_JOB_LOGGER)
    job_logs.setLevel(logging.INFO)
    if not job_logs.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        job_logs.addHandler(handler)


def describe(job: Any) -> RemoteResult:
    """A sagemaker.core TrainingJob as a :class:`RemoteResult` (fields the job lacks are ``Unassigned``: falsy)."""
    metrics = {m.metric_name: float(m.value) for m in job.final_metric_data_list or []}
    artifacts = job.model_artifacts.s3_model_artifacts if job.model_artifacts else None
    return RemoteResult(
        job_name=str(job.training_job_name),
        status=str(job.training_job_status),
        failure_reason=str(job.failure_reason) if job.failure_reason else None,
        metrics=metrics,
        model_uri=str(artifacts) if artifacts else None,
    )


@contextlib.contextmanager
def _role_checked_by_aws_only() -> Iterator[None]:
    """The role may read and write only driftloop's prefixes, which the SDK's generic check of a training role (S3 on
    any bucket, ...) would call missing permissions; AWS still enforces the role when the job runs. The SDK reads
    this switch from the environment only: set it while the trainer is built, unless the caller chose."""
    chosen = os.environ.get(VALIDATE_ROLE)
    os.environ.setdefault(VALIDATE_ROLE, "false")
    try:
        yield
    finally:
        if chosen is None:
            os.environ.pop(VALIDATE_ROLE, None)


def _session() -> Any:
    import boto3

    return boto3.Session()
