"""The training workflow's steps as plain functions: the state machine calls them through ``handlers``.

Each step takes the state the previous steps produced (the shapes below are the contract with the state
machine definition in ``infra``) and returns the part it adds. ``guard`` and ``release`` also get the execution's
id and start time from the state machine's context (``{"execution_id", "started_at", "state"}``), so a failure
path can release the run lock even when Guard's own result is missing.

The version is named in one place, :func:`guard`, when the run acquires the lock: Assemble, Prepare and Register
use ``$.guard.version``.

Every step may run twice with the same input (the state machine retries transient Lambda errors, which may come
after the function did its work) and then returns the same result without writing anything twice: Guard keeps
its lock, Register finds the version it stored, and the decisions a run records (``registered``, ``promoted``,
``rejected``, ``failed``) are looked up by the execution id from ``$.guard`` before one is written.
"""

from __future__ import annotations

import io
import json
import shlex
import tarfile
import tempfile
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from functions.common.bundle import ARCHIVE_FILE
from functions.common.gate import EVALUATION_FILE, Evaluation, Verdict, reassess
from functions.common.registry import (
    Action,
    ChampionPointer,
    Decision,
    PromotionConflict,
    Registry,
    new_version_id,
    utc_now,
)
from functions.workflow.assembly import AssemblyRequest, assemble
from functions.workflow.lock import RunLock
from functions.workflow.settings import APPROVAL_TOPIC_VARIABLE, WorkflowSettings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sns import SNSClient

# SageMaker training job names: at most 63 characters.
MAX_JOB_NAME = 63
OUTPUT_ARCHIVE = "output.tar.gz"
# What an execution's input may set in 'hyperparameters': the estimator, its knobs and the split (names of
# training/hyperparameters.py, which the workflow Lambdas do not carry). Everything else (the target, the gate's
# settings, validation thresholds, serving limits) is pinned by the deployed configuration: whoever may start a
# run must not be able to lower the bar its model has to pass.
OVERRIDABLE_HYPERPARAMETERS = (
    "algorithm",
    "n_estimators",
    "max_depth",
    "min_samples_leaf",
    "learning_rate",
    "max_iter",
    "C",
    "random_seed",
    "test_size",
)
# The errors the approval state's Catch puts at $.approval: an operator's `driftloop deny`, or no answer in time.
APPROVAL_DENIED = "driftloop.ApprovalDenied"
APPROVAL_TIMEOUT = "States.Timeout"
# Step Functions stamps the execution's start with its clock, the Lambdas stamp decisions with theirs: a run's
# decisions are looked up from a little before its start.
CLOCK_SKEW = timedelta(minutes=5)


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
    state = event.get("state") or {}
    trigger = trigger_of(state)
    # Refused before the lock is taken: such a run must not start (RecordFailure records why).
    run_hyperparameters(settings, state)
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
    result["started_at"] = lock.started_at
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
        max_feedback_share=settings.max_feedback_share,
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
    """The configured defaults with the execution input's overrides (all strings, as SageMaker passes them).

    Only :data:`OVERRIDABLE_HYPERPARAMETERS` may be overridden; any other name fails the run.
    """
    overrides = state.get("hyperparameters")
    if overrides is None:
        return dict(settings.hyperparameters)
    if not isinstance(overrides, dict):
        raise WorkflowError(
            f"execution input 'hyperparameters' must be an object of strings or numbers, got {overrides!r}"
        )
    pinned = sorted(name for name in overrides if name not in OVERRIDABLE_HYPERPARAMETERS)
    if pinned:
        raise WorkflowError(
            f"execution input 'hyperparameters' may not set {', '.join(map(repr, pinned))} (pinned by the deployed "
            f"configuration); only {', '.join(OVERRIDABLE_HYPERPARAMETERS)} may be overridden"
        )
    for name, value in overrides.items():
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise WorkflowError(f"execution input hyperparameter {name!r} must be a string or a number, got {value!r}")
    return {**settings.hyperparameters, **{name: str(value) for name, value in overrides.items()}}


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


def register(settings: WorkflowSettings, s3: S3Client, registry: Registry, state: Mapping[str, Any]) -> dict[str, Any]:
    """Register the trained bundle as a new version, with its evaluation and lineage.

    The verdict is recomputed from the evaluation's metrics and counts under the pinned gate settings
    (``settings.hyperparameters``), not taken from the job: the recomputed one decides, and a job verdict that
    differs is recorded beside it.
    """
    prepared = state["prepare"]
    training = state["training"]
    model_uri = training["ModelArtifacts"]["S3ModelArtifacts"]
    bucket, model_key = split_s3_uri(model_uri)
    output_key = model_key.rsplit("/", 1)[0] + "/" + OUTPUT_ARCHIVE
    with tempfile.TemporaryDirectory(prefix="driftloop-register-") as work:
        archive = Path(work) / ARCHIVE_FILE
        s3.download_file(bucket, model_key, str(archive))
        evaluation = _read_evaluation(s3, bucket, output_key)
        verdict = reassess(evaluation, settings.hyperparameters)
        job_verdict = None if evaluation.verdict == verdict else _verdict_dict(evaluation.verdict)
        stored_evaluation = replace(evaluation, verdict=verdict).to_dict()
        if job_verdict is not None:
            stored_evaluation["job_verdict"] = job_verdict
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
        # A retry finds the version its first attempt stored (same archive) and gets that record back.
        record = registry.register(prepared["version"], archive, evaluation=stored_evaluation, lineage=lineage)
    reasons = list(verdict.reasons)
    details: dict[str, Any] = {
        "sha256": record.sha256,
        "training_job_name": training["TrainingJobName"],
        "metrics": record.metrics,
        "passed": verdict.passed,
    }
    if job_verdict is not None:
        reasons.append(
            f"the training job's own verdict ({'passed' if evaluation.verdict.passed else 'not passed'}: "
            f"{'; '.join(evaluation.verdict.reasons) or 'no reasons'}) differs from the verdict recomputed under "
            "the pinned gate settings, which decides"
        )
        details["job_verdict"] = job_verdict
    decision = _record_for_run(registry, state, "registered", record.version, reasons, details)
    metric, scores = evaluation.settings.metric, evaluation.scores
    return {
        "version": record.version,
        "passed": verdict.passed,
        "reasons": list(verdict.reasons),
        "job_verdict_differs": job_verdict is not None,
        "metric": metric,
        "challenger": None if scores.challenger is None else scores.challenger.get(metric),
        "champion": None if scores.champion is None else scores.champion.get(metric),
        "champion_version": evaluation.champion_version,
        "decision_id": decision.id,
    }


def promote(registry: Registry, state: Mapping[str, Any]) -> dict[str, Any]:
    """Make the gated version the champion, unless the champion it was compared with has since changed.

    A champion that changed during training (another run, a manual promotion or a rollback) supersedes this run:
    the version is recorded as ``rejected`` with the reason and the run ends cleanly (``promoted: false``), with
    that one decision. With manual approval on, ``$.approval`` (the operator's answer) goes into the decision.
    A retried Promote returns its first attempt's result.
    """
    registration = state["registration"]
    version = registration["version"]
    compared_with = registration.get("champion_version")
    approval = _approval(state)
    run = _run(state)
    if run is not None:
        earlier = registry.run_decision(run[0], version, ("promoted", "rejected"), since=run[1])
        if earlier is not None:
            return _promotion_result(earlier)
    reasons = tuple(registration.get("reasons", ()))
    details: dict[str, Any] = {
        "metric": registration.get("metric"),
        "challenger": registration.get("challenger"),
        "champion": registration.get("champion"),
        "previous_version": compared_with,
        "execution": (state.get("guard") or {}).get("execution_id"),
    }
    if approval is not None:
        details["approval"] = approval

    def promotion(pointer: ChampionPointer) -> Decision:
        """The decision recorded with ``pointer`` (it names the decision's id and time)."""
        return Decision(pointer.decision_id, pointer.promoted_at, "promoted", version, reasons, details)

    current = registry.champion()
    if current is not None and current.version == version and current.previous_version == compared_with:
        # The first attempt moved the pointer but may not have recorded its decision.
        decision = promotion(current)
        if registry.find_decision(decision.id, decision.time) is None:
            registry.append(decision)
        return _promotion_result(decision)
    current_version = current.version if current else None
    if current_version != compared_with:
        return _superseded(registry, state, version, compared_with, current_version)
    try:
        pointer = registry.promote(version, expected=current, reasons=reasons, details=details)
    except PromotionConflict:
        live = registry.champion()
        return _superseded(registry, state, version, compared_with, live.version if live else None)
    return _promotion_result(promotion(pointer))


def _superseded(
    registry: Registry, state: Mapping[str, Any], version: str, compared_with: str | None, live: str | None
) -> dict[str, Any]:
    reason = (
        f"champion changed during training (gate compared with {compared_with or 'no champion'}, "
        f"live is now {live or 'no champion'}); {version} was not promoted"
    )
    details = {"superseded_by": live, "compared_with": compared_with}
    return _promotion_result(_record_for_run(registry, state, "rejected", version, [reason], details))


def _promotion_result(decision: Decision) -> dict[str, Any]:
    """Promote's result, from its decision: ``promoted``, or ``rejected`` when superseded."""
    if decision.action == "promoted":
        return {
            "promoted": True,
            "version": decision.version,
            "previous_version": decision.details.get("previous_version"),
            "decision_id": decision.id,
        }
    return {
        "promoted": False,
        "superseded": True,
        "version": decision.version,
        "live_version": decision.details.get("superseded_by"),
        "reason": decision.reasons[0],
        "decision_id": decision.id,
    }


def reject(registry: Registry, state: Mapping[str, Any]) -> dict[str, Any]:
    """Record the version as rejected: by the gate, or by the approval (denied, or no answer in time)."""
    registration = state["registration"]
    approval = state.get("approval")
    reasons = [*_approval_refusal(approval), *registration.get("reasons", [])]
    details: dict[str, Any] = {
        "metric": registration.get("metric"),
        "challenger": registration.get("challenger"),
        "champion": registration.get("champion"),
    }
    if approval is not None:
        details["approval"] = approval
    decision = _record_for_run(registry, state, "rejected", registration["version"], reasons, details)
    return {"version": registration["version"], "decision_id": decision.id, "reasons": list(decision.reasons)}


def record_failure(registry: Registry, state: Mapping[str, Any], execution_id: str | None = None) -> dict[str, Any]:
    """Record a failed run with the error Step Functions caught; returns a message for the notification.

    ``execution_id`` (from the context object) names the run even when Guard itself failed and left no result.
    """
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
    details = {"training_job_name": prepared.get("training_job_name"), "trigger": trigger}
    decision = _record_for_run(registry, state, "failed", version, reasons, details, execution_id)
    return {
        "decision_id": decision.id,
        "version": version,
        "message": f"driftloop training run failed (version {version or 'not assigned'}): {decision.reasons[0]}",
    }


def approval_message(state: Mapping[str, Any], token: str) -> dict[str, str]:
    """The approval request an operator reads (SNS subject and message): what the gate saw, and how to answer."""
    registration = state["registration"]
    version = registration["version"]
    champion_version = registration.get("champion_version")
    quoted = shlex.quote(token)
    lines = [
        f"driftloop asks for approval to promote {version}: it passed the gate.",
        "",
        f"Gate metric: {registration.get('metric')}",
        f"Challenger {version}: {_number(registration.get('challenger'))}",
        f"Champion {champion_version or '(none yet)'}: {_number(registration.get('champion'))}",
        "Gate reasons:",
        *(f"- {reason}" for reason in registration.get("reasons", ())),
        "",
        f"Trigger: {describe_trigger(trigger_of(state))}",
        f"Training job: {(state.get('prepare') or {}).get('training_job_name')}",
        f"Execution: {(state.get('guard') or {}).get('execution_id')}",
        "",
        "Approve (promotes it):",
        f'  driftloop approve --token {quoted} --note "..."',
        "Deny (rejects it, with your reason in the decision record):",
        f'  driftloop deny --token {quoted} --reason "..."',
        "Without an answer within the approval timeout the version is rejected.",
    ]
    return {"subject": f"driftloop: approve promoting {version}?", "message": "\n".join(lines)}


def request_approval(topic_arn: str, sns: SNSClient, event: Mapping[str, Any]) -> str:
    """Publish the approval request of ``{"token": $$.Task.Token, "state": $}``; returns the SNS message id.

    The task waits for the token: the operator's ``driftloop approve`` or ``deny`` completes it.
    """
    token = event.get("token")
    if not isinstance(token, str) or not token:
        raise WorkflowError("RequestApproval needs the task token ($$.Task.Token) as 'token'")
    if not topic_arn:
        raise WorkflowError(f"RequestApproval needs the approvals topic: {APPROVAL_TOPIC_VARIABLE} is not set")
    message = approval_message(event.get("state") or {}, token)
    response = sns.publish(TopicArn=topic_arn, Subject=message["subject"], Message=message["message"])
    return response["MessageId"]


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


def _run(state: Mapping[str, Any]) -> tuple[str, datetime] | None:
    """This run's execution id and the earliest time its decisions can carry, from Guard's result."""
    guarded = state.get("guard") or {}
    execution = guarded.get("execution_id")
    started_at = _timestamp(guarded.get("started_at"))
    if not isinstance(execution, str) or not execution or started_at is None:
        return None
    return execution, started_at - CLOCK_SKEW


def _record_for_run(
    registry: Registry,
    state: Mapping[str, Any],
    action: Action,
    version: str | None,
    reasons: list[str],
    details: Mapping[str, Any],
    execution_id: str | None = None,
) -> Decision:
    """Record this run's decision once: a retried step gets its first attempt's decision back.

    Without Guard's result (Guard itself failed) there is no run to look up: the decision is simply recorded,
    under ``execution_id`` when the caller knows it.
    """
    run = _run(state)
    if run is None:
        execution = (state.get("guard") or {}).get("execution_id") or execution_id
        return registry.record(action, version, reasons, {**details, "execution": execution})
    return registry.record_once(action, version, reasons, details, execution=run[0], since=run[1])


def _approval(state: Mapping[str, Any]) -> dict[str, Any] | None:
    """The operator's approval at ``$.approval``, if the run waited for one; Promote refuses anything else."""
    approval = state.get("approval")
    if approval is None:
        return None
    if not isinstance(approval, dict) or approval.get("approved") is not True:
        raise WorkflowError(f"Promote runs only after an approval ($.approval.approved = true), got {approval!r}")
    return approval


def _approval_refusal(approval: Any) -> list[str]:
    """Why the approval state sent the run to Reject (its Catch put the error at ``$.approval``), if it did."""
    if not isinstance(approval, dict) or "Error" not in approval:
        return []
    if approval["Error"] == APPROVAL_DENIED:
        return [f"denied by an operator: {_readable_cause(approval.get('Cause'))}"]
    if approval["Error"] == APPROVAL_TIMEOUT:
        return ["no approval within the approval timeout"]
    return [f"not approved: {approval['Error']}: {_readable_cause(approval.get('Cause'))}"]


def _verdict_dict(verdict: Verdict) -> dict[str, Any]:
    return {"passed": verdict.passed, "reasons": list(verdict.reasons)}


def _number(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, (int, float)) else "n/a"


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
