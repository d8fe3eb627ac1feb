"""Register: the trained bundle becomes a new version, with its evaluation and lineage."""

from __future__ import annotations

import io
import json
import tarfile
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from functions.common.bundle import ARCHIVE_FILE
from functions.common.gate import EVALUATION_FILE, Evaluation, Verdict, reassess
from functions.common.layout import holdout_evaluation_key, split_s3_uri
from functions.common.registry import Registry
from functions.workflow.assembly import held_out, held_out_feedback
from functions.workflow.errors import WorkflowError
from functions.workflow.model_packages import DETAIL, Lineage, ModelPackages
from functions.workflow.settings import WorkflowSettings
from functions.workflow.state import (
    AssemblyResult,
    ChampionRef,
    PrepareResult,
    RegistrationResult,
    RunState,
    TrainingResult,
)
from functions.workflow.steps.decisions import record_for_run, run_of

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

OUTPUT_ARCHIVE = "output.tar.gz"
# Where the stored evaluation keeps the training job's own (informational) evaluation.
JOB_EVALUATION = "training_job"
# Where it keeps the feedback rows Assemble held out as values new to the champion (functions.workflow.assembly).
FEEDBACK_HELD_OUT = "feedback_held_out"


def register(
    settings: WorkflowSettings,
    s3: S3Client,
    registry: Registry,
    state: RunState,
    packages: ModelPackages | None = None,
) -> RegistrationResult:
    """With ``packages``, the version is mirrored as a model package (PendingManualApproval) and the registered
    decision records its ARN, or why the mirror failed (the registration stands either way).

    The verdict rests on the Evaluate step's scores (the workflow's holdout, which the job never read),
    recomputed under the pinned gate settings (``settings.hyperparameters``). The job's own evaluation is kept
    beside it, informational, with its verdict when that differs; a job that did not compare with the champion
    Prepare named still fails the gate: its output is not to be trusted.
    """
    prepared, training = state.prepare, state.training
    if prepared is None or not prepared.version or training is None:
        raise WorkflowError(
            f"Register needs {PrepareResult.path('version')} and {TrainingResult.path()} in the state: "
            "Prepare and Train must run first"
        )
    version = prepared.version
    bucket, model_key = split_s3_uri(training.model_artifacts)
    output_key = model_key.rsplit("/", 1)[0] + "/" + OUTPUT_ARCHIVE
    with tempfile.TemporaryDirectory(prefix="driftloop-register-") as work:
        archive = Path(work) / ARCHIVE_FILE
        s3.download_file(bucket, model_key, str(archive))
        job_evaluation = _read_evaluation(s3, bucket, output_key)
        evaluation = _workflow_evaluation(s3, settings, version)
        verdict = _against_named_champion(
            reassess(evaluation, settings.hyperparameters), prepared.champion, job_evaluation
        )
        job_verdict = None if job_evaluation.verdict == verdict else _verdict_dict(job_evaluation.verdict)
        stored_evaluation = replace(evaluation, verdict=verdict).to_dict()
        stored_evaluation[JOB_EVALUATION] = job_evaluation.to_dict()
        if job_verdict is not None:
            stored_evaluation["job_verdict"] = job_verdict
        assembly = state.assembly or AssemblyResult(prefix=None)
        if held_feedback := held_out_feedback(assembly.counts or {}):  # beside the scores: what training left out
            stored_evaluation[FEEDBACK_HELD_OUT] = held_feedback
        lineage = {
            "training_job_name": training.training_job_name,
            "model_artifacts": training.model_artifacts,
            "hyperparameters": prepared.hyperparameters,
            "champion_at_training": None if prepared.champion is None else prepared.champion.to_json(),
            "trigger": None if prepared.trigger is None else prepared.trigger.to_json(),
            "execution": state.execution_id,
            "data": {
                "uri": assembly.uri,
                "manifest": assembly.manifest,
                "fingerprint": assembly.fingerprint,
                "objects": assembly.object_count,
                "counts": assembly.counts,
            },
            "final_metrics": training.final_metrics,
        }
        # A retry finds the version its first attempt stored (same archive) and gets that record back.
        record = registry.register(version, archive, evaluation=stored_evaluation, lineage=lineage)
    reasons = list(verdict.reasons)
    details: dict[str, Any] = {
        "sha256": record.sha256,
        "training_job_name": training.training_job_name,
        "metrics": record.metrics,
        "passed": verdict.passed,
        "held": verdict.held,
    }
    if held := held_out(assembly.counts or {}):
        reasons.append(held)  # the run's record says what its training set left out, beside the verdict
    if job_verdict is not None:
        reasons.append(
            f"the training job's own verdict ({'passed' if job_evaluation.verdict.passed else 'not passed'}: "
            f"{'; '.join(job_evaluation.verdict.reasons) or 'no reasons'}) differs from the verdict recomputed under "
            "the pinned gate settings, which decides"
        )
        details["job_verdict"] = job_verdict
    if packages is not None and not _registered_before(registry, state, version):
        evaluation_key = holdout_evaluation_key(settings.holdout_prefix, version)
        mirrored = packages.create(
            settings.model_package_group,
            record,
            model_data_url=f"s3://{registry.bucket}/{record.archive_key}",
            evaluation_url=f"s3://{settings.data_bucket}/{evaluation_key}",
            lineage=Lineage(
                training_job=training.training_job_name,
                data_manifest=assembly.manifest,
                trigger=None if prepared.trigger is None else prepared.trigger.label,
                execution=state.execution_id,
                champion_at_training=None if prepared.champion is None else prepared.champion.version,
            ),
        )
        details[DETAIL] = mirrored.to_json()
    decision = record_for_run(registry, state, "registered", record.version, reasons, details)
    return RegistrationResult(
        version=record.version,
        passed=verdict.passed,
        reasons=tuple(verdict.reasons),
        held=verdict.held,
        job_verdict_differs=job_verdict is not None,
        **gate_scores(evaluation),
        champion_version=None if prepared.champion is None else prepared.champion.version,
        decision_id=decision.id,
    )


def _registered_before(registry: Registry, state: RunState, version: str) -> bool:
    """Whether a first attempt of this run's Register recorded its decision (with the mirror's outcome): a retry
    then creates no second package (moto, unlike AWS, ignores the create's client token)."""
    run = run_of(state)
    return run is not None and registry.run_decision(run[0], version, ("registered",), since=run[1]) is not None


def gate_scores(evaluation: Evaluation) -> dict[str, Any]:
    """The gate's metric and both models' values of it: what the registration and the decisions show."""
    metric, scores = evaluation.settings.metric, evaluation.scores
    return {
        "metric": metric,
        "challenger": None if scores.challenger is None else scores.challenger.get(metric),
        "champion": None if scores.champion is None else scores.champion.get(metric),
    }


def _against_named_champion(verdict: Verdict, named: ChampionRef | None, evaluation: Evaluation) -> Verdict:
    """The verdict, failed when the job did not compare with the champion Prepare named: a job that scored no
    champion, or another one, judged against something else than the live model."""
    given, seen = evaluation.scores.champion_given, evaluation.champion_version
    expected = None if named is None else named.version
    if given == (named is not None) and seen == expected:
        return verdict
    saw = f"champion {seen}" if given else "no champion"
    return Verdict(
        False,
        (
            f"the training job compared with {saw} (champion_given: {str(given).lower()}, champion_version: "
            f"{seen}) but Prepare named {'champion ' + expected if expected else 'no champion'}: its scores do not "
            "judge the challenger against the live model",
            *verdict.reasons,
        ),
    )


def _workflow_evaluation(s3: S3Client, settings: WorkflowSettings, version: str) -> Evaluation:
    """Evaluate's evaluation."""
    key = holdout_evaluation_key(settings.holdout_prefix, version)
    try:
        body = s3.get_object(Bucket=settings.data_bucket, Key=key)["Body"].read()
    except s3.exceptions.NoSuchKey as exc:
        raise WorkflowError(f"Evaluate left no s3://{settings.data_bucket}/{key}: Evaluate must run first") from exc
    try:
        return Evaluation.from_dict(json.loads(body))
    except ValueError as exc:  # bad JSON, or a GateError
        raise WorkflowError(f"s3://{settings.data_bucket}/{key} is not a readable evaluation: {exc}") from exc


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


def _verdict_dict(verdict: Verdict) -> dict[str, Any]:
    return {"passed": verdict.passed, "reasons": list(verdict.reasons)}
