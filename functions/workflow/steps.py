"""The training workflow's steps as plain functions: the state machine calls them through ``handlers``.

Each step takes the state the previous steps produced (the shapes below are the contract with the state
machine definition in ``infra``) and returns the part it adds. ``guard`` and ``release`` also get the execution's
id and start time from the state machine's context (``{"execution_id", "started_at", "state"}``), so a failure
path can release the run lock even when Guard's own result is missing.

The version is named in one place, :func:`guard`, when the run acquires the lock: Assemble, Prepare and Register
use ``$.guard.version``.
"""

from __future__ import annotations

import io
import json
import tarfile
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from functions.common.bundle import ARCHIVE_FILE
from functions.common.gate import EVALUATION_FILE, Evaluation
from functions.common.registry import PromotionConflict, Registry, RegistryError, new_version_id, utc_now
from functions.workflow.assembly import AssemblyRequest, assemble
from functions.workflow.lock import RunLock
from functions.workflow.settings import WorkflowSettings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# SageMaker training job names: at most 63 characters.
MAX_JOB_NAME = 63
OUTPUT_ARCHIVE = "output.tar.gz"


class WorkflowError(Exception):
    """A step cannot go on; the message says why and ends up in the decision record."""


def split_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise WorkflowError(f"not an s3://bucket/key URI: {uri!r}")
    bucket, key = uri[5:].split("/", 1)
    return bucket, key


def run_lock(settings: WorkflowSettings, s3: S3Client) -> RunLock:
    return RunLock(
        s3, settings.model_bucket, settings.registry_prefix, timeout=timedelta(seconds=settings.lock_timeout_seconds)
    )


def guard(
    settings: WorkflowSettings,
    s3: S3Client,
    registry: Registry,
    event: Mapping[str, Any],
    *,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Take the run lock and name the version, or record why this run is skipped.

    Every trigger goes through here: a run starts only when no other run holds the lock (or its holder is past the
    state machine's timeout) and the previous run ended at least ``cooldown_minutes`` ago. Either way the decision
    record shows the trigger: ``triggered`` with the version, or ``skipped`` with the reason.
    """
    now = now or utc_now()
    execution = str(event.get("execution_id") or "")
    if not execution:
        raise WorkflowError("Guard needs the execution id ($$.Execution.Id) as 'execution_id'")
    trigger = trigger_of(event.get("state") or {})
    started_at = _timestamp(event.get("started_at")) or now
    acquisition = run_lock(settings, s3).acquire(
        execution,
        started_at=started_at,
        now=now,
        trigger=trigger,
        version=new_version_id(now),
        cooldown=timedelta(minutes=settings.cooldown_minutes),
    )
    result: dict[str, Any] = {"acquired": acquisition.acquired, "execution_id": execution, "trigger": trigger}
    details: dict[str, Any] = {"trigger": trigger, "execution": execution}
    lock, previous = acquisition.lock, acquisition.previous
    if not acquisition.acquired or lock is None:
        reason = acquisition.reason or "the run lock is not available"
        decision = registry.record("skipped", None, [reason], details)
        return {**result, "reason": reason, "decision_id": decision.id}
    if previous is not None and previous.state == "held" and previous.execution == execution:
        # A retried Guard invocation: the lock (and the version it names) are this execution's already.
        return {**result, "trigger": lock.trigger, "version": lock.version, "decision_id": None}
    reasons = [f"run started by trigger {describe_trigger(trigger)}"]
    if previous is not None and previous.state == "held":
        reasons.append(f"took over the stale run lock of {previous.describe()}: past the workflow timeout")
        details["stale_lock"] = previous.to_dict()
    decision = registry.record("triggered", lock.version, reasons, details)
    return {**result, "version": lock.version, "decision_id": decision.id}


def assemble_data(
    settings: WorkflowSettings, s3: S3Client, state: Mapping[str, Any], *, now: datetime | None = None
) -> dict[str, Any]:
    """Build the run's training set (base data, plus labelled captures when feedback is included)."""
    request = AssemblyRequest(
        data_bucket=settings.data_bucket,
        training_data_prefix=settings.training_data_prefix,
        assembled_prefix=settings.assembled_prefix,
        capture_prefix=settings.capture_prefix,
        feedback_prefix=settings.feedback_prefix,
        version=run_version(state),
        target=run_hyperparameters(settings, state).get("target"),
        include_feedback=settings.include_feedback,
        feedback_max_age_days=settings.feedback_max_age_days,
        now=now or utc_now(),
    )
    return assemble(s3, request)


def prepare(settings: WorkflowSettings, registry: Registry, state: Mapping[str, Any]) -> dict[str, Any]:
    """Name the training job and build its channels and hyperparameters; ``train`` is the assembled data."""
    version = run_version(state)
    job_name = f"{settings.job_prefix}-{version}"
    if len(job_name) > MAX_JOB_NAME:
        raise WorkflowError(f"training job name {job_name!r} exceeds {MAX_JOB_NAME} characters: shorten the job prefix")
    assembly = state.get("assembly") or {}
    if not assembly.get("prefix"):
        raise WorkflowError("no assembled training data in the state ($.assembly.prefix): Assemble must run first")
    hyperparameters = run_hyperparameters(settings, state)
    channels = [_s3_channel("train", f"s3://{settings.data_bucket}/{assembly['prefix']}")]
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
        "trigger": trigger_of(state),
    }


def run_version(state: Mapping[str, Any]) -> str:
    version = (state.get("guard") or {}).get("version")
    if not isinstance(version, str) or not version:
        raise WorkflowError("no version in the state ($.guard.version): Guard names it when the run takes the lock")
    return version


def run_hyperparameters(settings: WorkflowSettings, state: Mapping[str, Any]) -> dict[str, str]:
    """The configured defaults with the execution input's overrides (all strings, as SageMaker passes them)."""
    overrides = state.get("hyperparameters") or {}
    if not isinstance(overrides, dict):
        raise WorkflowError("execution input 'hyperparameters' must be an object of strings")
    return {**settings.hyperparameters, **{str(k): str(v) for k, v in overrides.items()}}


def trigger_of(state: Mapping[str, Any]) -> dict[str, Any]:
    """The run's trigger: Guard's normalised copy, else the execution input's, else a manual start."""
    guarded = (state.get("guard") or {}).get("trigger")
    if isinstance(guarded, dict):
        return guarded
    trigger = state.get("trigger")
    if trigger is None:
        return {"source": "manual"}
    if not isinstance(trigger, dict) or not isinstance(trigger.get("source"), str) or not trigger["source"]:
        raise WorkflowError(
            "execution input 'trigger' must be an object with a 'source' (alarm, schedule, new_data or manual), "
            f"got {trigger!r}"
        )
    return dict(trigger)


def describe_trigger(trigger: Mapping[str, Any]) -> str:
    """``alarm driftloop-dev-drift`` / ``schedule`` / ``manual (reason)``: one short phrase for decisions."""
    words = [str(trigger.get("source", "unknown"))]
    for name in ("alarm_name", "reason", "key"):
        if trigger.get(name):
            words.append(str(trigger[name]))
    return " ".join(words[:1]) + (f" ({'; '.join(words[1:])})" if len(words) > 1 else "")


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
        assembly = state.get("assembly") or {}
        lineage = {
            "training_job_name": training["TrainingJobName"],
            "model_artifacts": model_uri,
            "hyperparameters": prepared["hyperparameters"],
            "champion_at_training": prepared.get("champion"),
            "trigger": prepared.get("trigger"),
            "execution": (state.get("guard") or {}).get("execution_id"),
            "data": {
                "uri": assembly.get("uri"),
                "manifest": assembly.get("manifest"),
                "fingerprint": assembly.get("fingerprint"),
                "objects": assembly.get("object_count"),
                "counts": assembly.get("counts"),
            },
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
    """Make the gated version the champion, unless the champion it was compared with has since changed.

    A champion that changed during training (another run, a manual promotion or a rollback) supersedes this run:
    the version is recorded as ``rejected`` with the reason and the run ends cleanly (``promoted: false``), with
    that one decision.
    """
    registration = state["registration"]
    version = registration["version"]
    compared_with = registration.get("champion_version")
    current = registry.champion()
    current_version = current.version if current else None
    if current_version != compared_with:
        return _superseded(registry, version, compared_with, current_version)
    try:
        pointer = registry.promote(
            version,
            expected=current,
            reasons=tuple(registration.get("reasons", ())),
            details={
                "metric": registration.get("metric"),
                "challenger": registration.get("challenger"),
                "champion": registration.get("champion"),
                "previous_version": current_version,
            },
        )
    except PromotionConflict:
        live = registry.champion()
        return _superseded(registry, version, compared_with, live.version if live else None)
    return {
        "promoted": True,
        "version": pointer.version,
        "previous_version": pointer.previous_version,
        "decision_id": pointer.decision_id,
    }


def _superseded(registry: Registry, version: str, compared_with: str | None, live: str | None) -> dict[str, Any]:
    reason = (
        f"champion changed during training (gate compared with {compared_with or 'no champion'}, "
        f"live is now {live or 'no champion'}); {version} was not promoted"
    )
    decision = registry.record("rejected", version, [reason], {"superseded_by": live, "compared_with": compared_with})
    return {
        "promoted": False,
        "superseded": True,
        "version": version,
        "live_version": live,
        "reason": reason,
        "decision_id": decision.id,
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
    guarded = state.get("guard") or {}
    version = prepared.get("version") or guarded.get("version")
    reasons = [f"{error.get('Error', 'Unknown error')}: {cause}"]
    try:
        trigger = trigger_of(state)
    except WorkflowError:
        trigger = {"source": "invalid", "input": state.get("trigger")}
    decision = registry.record(
        "failed",
        version,
        reasons,
        {
            "training_job_name": prepared.get("training_job_name"),
            "trigger": trigger,
            "execution": guarded.get("execution_id"),
        },
    )
    return {
        "decision_id": decision.id,
        "version": version,
        "message": f"driftloop training run failed (version {version or 'not assigned'}): {reasons[0]}",
    }


def release(
    settings: WorkflowSettings, s3: S3Client, event: Mapping[str, Any], *, now: datetime | None = None
) -> dict[str, Any]:
    """Release the run lock if this execution holds it, stamping the run's end and outcome (cooldown starts)."""
    execution = str(event.get("execution_id") or "")
    if not execution:
        raise WorkflowError("Release needs the execution id ($$.Execution.Id) as 'execution_id'")
    outcome = run_outcome(event.get("state") or {})
    released, message = run_lock(settings, s3).release(execution, now=now or utc_now(), outcome=outcome)
    return {"released": released, "outcome": outcome, "message": message}


def run_outcome(state: Mapping[str, Any]) -> str:
    """How the run ended, from what its steps left in the state."""
    if state.get("error"):
        return "failed"
    promotion = state.get("promotion")
    if isinstance(promotion, dict):
        return "promoted" if promotion.get("promoted") else "superseded"
    if state.get("rejection"):
        return "rejected"
    return "unknown"


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


def _timestamp(value: Any) -> datetime | None:
    """The context object's ``$$.Execution.StartTime`` (ISO 8601, ``Z``) as an aware datetime."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


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
