"""The training workflow's steps as plain functions: the state machine calls them through ``handlers``.

Each step takes the state the previous steps produced (the shapes below are the contract with the state
machine definition in ``infra``) and returns the part it adds.
"""

from __future__ import annotations

import io
import json
import tarfile
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from functions.common.bundle import ARCHIVE_FILE
from functions.common.gate import EVALUATION_FILE, Evaluation
from functions.common.registry import Registry, RegistryError, new_version_id
from functions.workflow.settings import WorkflowSettings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# SageMaker training job names: at most 63 characters.
MAX_JOB_NAME = 63
OUTPUT_ARCHIVE = "output.tar.gz"


class WorkflowError(Exception):
    """A step cannot go on; the message says why and ends up in the decision record."""


class NoTrainingData(WorkflowError):
    pass


class ChampionChanged(WorkflowError):
    pass


def split_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise WorkflowError(f"not an s3://bucket/key URI: {uri!r}")
    bucket, key = uri[5:].split("/", 1)
    return bucket, key


def prepare(settings: WorkflowSettings, s3: S3Client, registry: Registry, request: Mapping[str, Any]) -> dict[str, Any]:
    """Name the new version and its training job, and build the job's channels and hyperparameters."""
    listing = s3.list_objects_v2(Bucket=settings.data_bucket, Prefix=settings.training_data_prefix, MaxKeys=1)
    if not listing.get("KeyCount"):
        raise NoTrainingData(
            f"no training data under s3://{settings.data_bucket}/{settings.training_data_prefix}: upload CSV or "
            "Parquet files there first"
        )
    version = new_version_id()
    job_name = f"{settings.job_prefix}-{version}"
    if len(job_name) > MAX_JOB_NAME:
        raise WorkflowError(f"training job name {job_name!r} exceeds {MAX_JOB_NAME} characters: shorten the job prefix")
    overrides = request.get("hyperparameters") or {}
    if not isinstance(overrides, dict):
        raise WorkflowError("execution input 'hyperparameters' must be an object of strings")
    hyperparameters = {**settings.hyperparameters, **{str(k): str(v) for k, v in overrides.items()}}
    channels = [_s3_channel("train", f"s3://{settings.data_bucket}/{settings.training_data_prefix}")]
    champion = registry.champion()
    if champion is not None:
        channels.append(_s3_channel("champion", f"s3://{registry.bucket}/{champion.archive_key}"))
        hyperparameters["champion_version"] = champion.version
    return {
        "version": version,
        "training_job_name": job_name,
        "hyperparameters": hyperparameters,
        "input_data_config": channels,
        "output_path": f"s3://{settings.model_bucket}/{settings.artifact_prefix}",
        "champion": None if champion is None else {"version": champion.version, "sha256": champion.sha256},
        "trigger": request.get("trigger") or {"source": "manual"},
    }


def register(s3: S3Client, registry: Registry, state: Mapping[str, Any]) -> dict[str, Any]:
    """Register the trained bundle as a new version, with its evaluation and lineage."""
    prepared = state["prepare"]
    training = state["training"]
    model_uri = training["ModelArtifacts"]["S3ModelArtifacts"]
    bucket, model_key = split_s3_uri(model_uri)
    output_key = model_key.rsplit("/", 1)[0] + "/" + OUTPUT_ARCHIVE
    with tempfile.TemporaryDirectory(prefix="driftloop-register-") as work:
        archive = Path(work) / ARCHIVE_FILE
        s3.download_file(bucket, model_key, str(archive))
        evaluation = _read_evaluation(s3, bucket, output_key)
        lineage = {
            "training_job_name": training["TrainingJobName"],
            "model_artifacts": model_uri,
            "hyperparameters": prepared["hyperparameters"],
            "champion_at_training": prepared.get("champion"),
            "trigger": prepared.get("trigger"),
            "final_metrics": training.get("FinalMetricDataList", []),
        }
        try:
            record = registry.register(prepared["version"], archive, evaluation=evaluation.to_dict(), lineage=lineage)
        except RegistryError as exc:
            registry.record(
                "failed", prepared["version"], [str(exc)], {"training_job_name": training["TrainingJobName"]}
            )
            raise
    registry.record(
        "registered",
        record.version,
        evaluation.verdict.reasons,
        {"sha256": record.sha256, "training_job_name": training["TrainingJobName"], "metrics": record.metrics},
    )
    return {
        "version": record.version,
        "passed": evaluation.verdict.passed,
        "reasons": list(evaluation.verdict.reasons),
        "metric": evaluation.settings.metric,
        "challenger": evaluation.challenger.get(evaluation.settings.metric),
        "champion": None if evaluation.champion is None else evaluation.champion.get(evaluation.settings.metric),
        "champion_version": evaluation.champion_version,
    }


def promote(registry: Registry, state: Mapping[str, Any]) -> dict[str, Any]:
    """Make the gated version the champion, unless the champion it was compared with has since changed."""
    registration = state["registration"]
    compared_with = registration.get("champion_version")
    current = registry.champion()
    current_version = current.version if current else None
    if current_version != compared_with:
        reason = (
            f"champion changed during training (gate compared with {compared_with or 'no champion'}, "
            f"live is now {current_version or 'no champion'}); {registration['version']} was not promoted"
        )
        registry.record("rejected", registration["version"], [reason])
        raise ChampionChanged(reason)
    pointer = registry.promote(
        registration["version"],
        expected=current,
        reasons=tuple(registration.get("reasons", ())),
        details={
            "metric": registration.get("metric"),
            "challenger": registration.get("challenger"),
            "champion": registration.get("champion"),
        },
    )
    return {
        "version": pointer.version,
        "previous_version": pointer.previous_version,
        "decision_id": pointer.decision_id,
    }


def reject(registry: Registry, state: Mapping[str, Any]) -> dict[str, Any]:
    registration = state["registration"]
    decision = registry.record(
        "rejected",
        registration["version"],
        registration.get("reasons", []),
        {
            "metric": registration.get("metric"),
            "challenger": registration.get("challenger"),
            "champion": registration.get("champion"),
        },
    )
    return {"version": registration["version"], "decision_id": decision.id, "reasons": list(decision.reasons)}


def record_failure(registry: Registry, state: Mapping[str, Any]) -> dict[str, Any]:
    """Record a failed run with the error Step Functions caught; returns a message for the notification."""
    error = state.get("error") or {}
    cause = _readable_cause(error.get("Cause"))
    prepared = state.get("prepare") or {}
    version = prepared.get("version")
    reasons = [f"{error.get('Error', 'Unknown error')}: {cause}"]
    decision = registry.record(
        "failed",
        version,
        reasons,
        {"training_job_name": prepared.get("training_job_name"), "trigger": prepared.get("trigger")},
    )
    return {
        "decision_id": decision.id,
        "version": version,
        "message": f"driftloop training run failed (version {version or 'not assigned'}): {reasons[0]}",
    }


def _s3_channel(name: str, uri: str) -> dict[str, Any]:
    return {
        "ChannelName": name,
        "DataSource": {
            "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri, "S3DataDistributionType": "FullyReplicated"}
        },
        "InputMode": "File",
    }


def _read_evaluation(s3: S3Client, bucket: str, key: str) -> Evaluation:
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except s3.exceptions.NoSuchKey as exc:
        raise WorkflowError(f"the training job left no s3://{bucket}/{key}: it holds {EVALUATION_FILE}") from exc
    try:
        with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as archive:
            # SageMaker tars output/data/ itself; members may be named "evaluation.json" or "./evaluation.json".
            info = next(m for m in archive.getmembers() if m.isfile() and Path(m.name).name == EVALUATION_FILE)
            member = archive.extractfile(info)
            if member is None:
                raise KeyError(EVALUATION_FILE)
            return Evaluation.from_dict(json.load(member))
    except (StopIteration, KeyError, tarfile.TarError, ValueError) as exc:
        raise WorkflowError(f"s3://{bucket}/{key} holds no readable {EVALUATION_FILE}: {exc}") from exc


def _readable_cause(cause: Any) -> str:
    """Step Functions passes the cause as a JSON string for Lambda errors; keep the message."""
    if isinstance(cause, str):
        try:
            parsed = json.loads(cause)
        except ValueError:
            return cause
        if isinstance(parsed, dict):
            return str(parsed.get("errorMessage") or parsed.get("FailureReason") or parsed)
    return str(cause) if cause is not None else "no cause given"
