"""A local SageMaker provider for LocalStack's open-source runtime: training jobs that really run.

LocalStack 2026.3.0 has no SageMaker provider at all (its API answers "not included in your license plan"); its
moto fork has a SageMaker backend that records training jobs as Completed at once and writes no artifacts.

This module registers a provider plugin (entry point ``sagemaker:default`` in the ``localstack.aws.provider``
namespace) whose dispatch table answers

- ``CreateTrainingJob``, ``DescribeTrainingJob``, ``StopTrainingJob``, ``ListTrainingJobs``: with jobs run by
  :mod:`driftloop_localstack.sagemaker_runner` (staging from LocalStack's own S3, the repository's training program
  as a host process, artifacts back to S3);
- ``AddTags``, ``ListTags``, ``DeleteTags`` on training-job ARNs (any other ARN goes to moto);
- every other SageMaker operation: moto, as LocalStack's own providers fall back to it (``call_moto``), so the
  model registry, models and endpoints keep moto's behaviour.

**The training image is not run.** The job runs the repository's ``training/`` program with the project's Python
3.12 interpreter in its place; that is what the ``local`` stage is for. Both come from the environment LocalStack
starts with (see :func:`runner_settings`). So CreateTrainingJob accepts only jobs that AWS would run as that program:
driftloop's image (ECR repository ``driftloop-training``) with its own entry point and no script; any other image,
algorithm, ContainerEntrypoint/ContainerArguments or script-mode hyperparameter is a ValidationException saying why
(``sagemaker_runner.refusals``).

Only File-mode ``S3Prefix`` channels are supported; other data sources fail the job with a ``ClientError`` reason.
Jobs live in memory: they are lost when LocalStack stops (running ones are terminated) or its state is reset.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from localstack.aws.api import CommonServiceException, RequestContext, handler
from localstack.aws.skeleton import DispatchTable, create_dispatch_table
from localstack.aws.spec import load_service
from localstack.services.plugins import Service, ServiceLifecycleHook, aws_provider

from driftloop_localstack import pagination
from driftloop_localstack.sagemaker_runner import (
    IN_PROGRESS,
    STOPPED,
    TERMINAL_STATUSES,
    TRAINING_REPOSITORY,
    AwsClients,
    JobFailure,
    RunnerSettings,
    TrainingJob,
    TrainingJobRunner,
    compile_metric_definitions,
    parse_s3_uri,
    refusals,
    utcnow,
)

LOG = logging.getLogger(__name__)

SERVICE = "sagemaker"

# Optional settings from LocalStack's environment (localcloud/cloud.py passes on only the DRIFTLOOP_* variables it
# sets itself); the defaults suit the extension's editable install in a checkout of the repository.
ENV_REPO_ROOT = "DRIFTLOOP_REPO_ROOT"  # the repository whose training/ package runs
ENV_TRAINING_PYTHON = "DRIFTLOOP_TRAINING_PYTHON"  # default: <repo>/.venv/bin/python
ENV_WORK_DIR = "DRIFTLOOP_SAGEMAKER_WORK_DIR"  # per-job base dirs; default: <LocalStack tmp>/sagemaker/jobs
ENV_LOG_DIR = "DRIFTLOOP_SAGEMAKER_LOG_DIR"  # <job>.log files; default: <LocalStack tmp>/sagemaker/logs
ENV_STOP_GRACE = "DRIFTLOOP_SAGEMAKER_STOP_GRACE_SECONDS"  # SIGTERM -> SIGKILL; SageMaker's is 120 s

_JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
_TRAINING_JOB_ARN = re.compile(r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:training-job/.+$")
_NOT_FOUND = "Requested resource not found."


def _validation(message: str) -> CommonServiceException:
    return CommonServiceException("ValidationException", message, status_code=400, sender_fault=True)


def _find_repo_root() -> Path:
    """The repository with ``training/__main__.py``: from the environment, else above this file or the venv."""
    configured = os.environ.get(ENV_REPO_ROOT)
    if configured:
        return Path(configured).resolve()
    for start in (Path(__file__).resolve(), Path(sys.prefix).resolve()):
        for candidate in (start, *start.parents):
            if (candidate / "training" / "__main__.py").is_file():
                return candidate
    raise RuntimeError(f"cannot find the repository's training/ program: set {ENV_REPO_ROOT}")


def runner_settings() -> RunnerSettings:
    from localstack import config

    root = _find_repo_root()
    python = Path(os.environ.get(ENV_TRAINING_PYTHON) or root / ".venv" / "bin" / "python")
    if not python.is_absolute():
        python = root / python
    # config.dirs.tmp follows TMPDIR, which is per instance; config.dirs.logs is shared when LocalStack believes
    # it runs in a container (it does on these machines), so logs default to the instance's tmp as well.
    own = Path(config.dirs.tmp) / "sagemaker"
    work_dir = Path(os.environ.get(ENV_WORK_DIR) or own / "jobs")
    log_dir = Path(os.environ.get(ENV_LOG_DIR) or own / "logs")
    grace = float(os.environ.get(ENV_STOP_GRACE) or 10)
    return RunnerSettings(python=python, repo_root=root, work_dir=work_dir, log_dir=log_dir, stop_grace_seconds=grace)


def _internal_clients(account_id: str, region: str) -> AwsClients:
    from localstack.aws.connect import connect_to

    factory = connect_to(aws_access_key_id=account_id, region_name=region)
    return AwsClients(s3=factory.s3, logs=factory.logs, cloudwatch=factory.cloudwatch)


def _string_map(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _validation(f"{what} must be a map of strings")
    # SageMaker passes every value as a string; Step Functions may hand us numbers or booleans.
    return {
        str(k): ("true" if v is True else "false" if v is False else str(v)) for k, v in value.items() if v is not None
    }


class SageMakerProvider(ServiceLifecycleHook):
    """Training jobs per (account, region), each with a runner thread and possibly a training process."""

    service = SERVICE

    def __init__(self, settings_factory: Callable[[], RunnerSettings] = runner_settings) -> None:
        self._settings_factory = settings_factory
        self._settings: RunnerSettings | None = None
        self._jobs: dict[tuple[str, str], dict[str, TrainingJob]] = {}
        self._runners: dict[str, TrainingJobRunner] = {}
        self._lock = threading.RLock()
        self._describe_members = set(load_service(SERVICE).operation_model("DescribeTrainingJob").output_shape.members)

    # -- lifecycle ----------------------------------------------------------------------------------------

    @property
    def settings(self) -> RunnerSettings:
        if self._settings is None:
            self._settings = self._settings_factory()
            LOG.info(
                "local SageMaker: training jobs run %s -m training in %s",
                self._settings.python,
                self._settings.repo_root,
            )
        return self._settings

    def on_before_stop(self) -> None:
        self._stop_all()

    def on_before_state_reset(self) -> None:
        self._stop_all()
        with self._lock:
            self._jobs.clear()
            self._runners.clear()

    def _stop_all(self) -> None:
        with self._lock:
            runners = list(self._runners.values())
        for runner in runners:
            runner.request_stop()
        for runner in runners:
            runner.job.finished.wait(timeout=self.settings.stop_grace_seconds + 5)

    def _region_jobs(self, context: RequestContext) -> dict[str, TrainingJob]:
        with self._lock:
            return self._jobs.setdefault((context.account_id, context.region), {})

    def _get(self, context: RequestContext, name: Any) -> TrainingJob:
        job = self._region_jobs(context).get(str(name or ""))
        if job is None:
            raise _validation(_NOT_FOUND)
        return job

    # -- training jobs ------------------------------------------------------------------------------------

    @handler("CreateTrainingJob", expand=False)
    def create_training_job(self, context: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
        name = str(request.get("TrainingJobName") or "")
        if not _JOB_NAME.match(name):
            raise _validation(
                f"1 validation error detected: Value '{name}' at 'trainingJobName' failed to satisfy constraint: "
                "Member must satisfy regular expression pattern: ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"
            )
        description = self._initial_description(context, name, request)
        tags = [dict(tag) for tag in request.get("Tags") or []]
        job = TrainingJob(description, tags)
        with self._lock:
            jobs = self._region_jobs(context)
            if name in jobs:
                raise CommonServiceException(
                    "ResourceInUse",
                    "Training job names must be unique within an AWS account and region, and a training job with "
                    f"this name already exists ({jobs[name].arn})",
                    status_code=400,
                    sender_fault=True,
                )
            runner = TrainingJobRunner(job, self.settings, _internal_clients(context.account_id, context.region))
            jobs[name] = job
            self._runners[job.arn] = runner
        runner.start()
        return {"TrainingJobArn": job.arn}

    def _initial_description(self, context: RequestContext, name: str, request: dict[str, Any]) -> dict[str, Any]:
        algorithm = dict(request.get("AlgorithmSpecification") or {})
        if not algorithm.get("TrainingImage") and not algorithm.get("AlgorithmName"):
            raise _validation("AlgorithmSpecification must name a TrainingImage or an AlgorithmName")
        algorithm.setdefault("TrainingInputMode", "File")
        try:
            compile_metric_definitions(algorithm.get("MetricDefinitions") or [])
        except (re.error, KeyError, TypeError) as exc:
            raise _validation(f"invalid MetricDefinitions: {exc}") from exc
        if not request.get("RoleArn"):
            raise _validation("RoleArn is required")
        if not request.get("ResourceConfig"):
            raise _validation("ResourceConfig is required")
        output = request.get("OutputDataConfig") or {}
        try:
            parse_s3_uri(str(output.get("S3OutputPath") or ""))
        except JobFailure as exc:
            raise _validation(f"OutputDataConfig.S3OutputPath: {exc.reason.removeprefix('ClientError: ')}") from exc
        channels = list(request.get("InputDataConfig") or [])
        names = [channel.get("ChannelName") for channel in channels]
        if any(not channel_name for channel_name in names) or len(set(names)) != len(names):
            raise _validation("every InputDataConfig channel needs a unique ChannelName")
        hyperparameters = _string_map(request.get("HyperParameters"), "HyperParameters")
        refused = refusals(algorithm, hyperparameters, names)
        if refused:
            raise _validation(
                f"the local SageMaker runs only driftloop's training program, as its image (ECR repository "
                f"{TRAINING_REPOSITORY}, e.g. the training stack's TrainingImageUri output) runs it with its own entry "
                f"point and no script; this job would run something else on AWS: {'; '.join(refused)}"
            )

        now = utcnow()
        description = {key: value for key, value in request.items() if key in self._describe_members}
        description.update(
            {
                "TrainingJobName": name,
                "TrainingJobArn": (
                    f"arn:aws:sagemaker:{context.region}:{context.account_id}:training-job/{name.lower()}"
                ),
                "AlgorithmSpecification": algorithm,
                # SageMaker describes an output without a key with an empty KmsKeyId (the SDK's attach reads it).
                "OutputDataConfig": {"KmsKeyId": "", **output},
                "HyperParameters": hyperparameters,
                "Environment": _string_map(request.get("Environment"), "Environment"),
                "StoppingCondition": dict(request.get("StoppingCondition") or {"MaxRuntimeInSeconds": 86400}),
                "TrainingJobStatus": IN_PROGRESS,
                "SecondaryStatus": "Starting",
                "CreationTime": now,
                "LastModifiedTime": now,
                "SecondaryStatusTransitions": [
                    {"Status": "Starting", "StartTime": now, "StatusMessage": "Launching requested ML instances"}
                ],
                "EnableNetworkIsolation": bool(request.get("EnableNetworkIsolation", False)),
                "EnableInterContainerTrafficEncryption": bool(
                    request.get("EnableInterContainerTrafficEncryption", False)
                ),
                "EnableManagedSpotTraining": bool(request.get("EnableManagedSpotTraining", False)),
            }
        )
        if not description["Environment"]:
            description.pop("Environment")
        return description

    @handler("DescribeTrainingJob", expand=False)
    def describe_training_job(self, context: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
        return self._get(context, request.get("TrainingJobName")).describe()

    @handler("StopTrainingJob", expand=False)
    def stop_training_job(self, context: RequestContext, request: dict[str, Any]) -> None:
        job = self._get(context, request.get("TrainingJobName"))
        with self._lock:
            runner = self._runners[job.arn]
        status = job.status
        if status in TERMINAL_STATUSES:
            raise _validation(f"The request was rejected because the training job is in status {status}.")
        runner.request_stop(STOPPED)

    @handler("ListTrainingJobs", expand=False)
    def list_training_jobs(self, context: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            jobs = list(self._region_jobs(context).values())
        summaries = [job.summary() for job in jobs]

        def within(key: str, after: str, before: str) -> Callable[[dict[str, Any]], bool]:
            low, high = _aware(request.get(after)), _aware(request.get(before))
            return lambda s: (low is None or s[key] > low) and (high is None or s[key] < high)

        contains = request.get("NameContains")
        status = request.get("StatusEquals")
        created = within("CreationTime", "CreationTimeAfter", "CreationTimeBefore")
        modified = within("LastModifiedTime", "LastModifiedTimeAfter", "LastModifiedTimeBefore")
        summaries = [
            s
            for s in summaries
            if (not contains or contains.lower() in s["TrainingJobName"].lower())
            and (not status or s["TrainingJobStatus"] == status)
            and created(s)
            and modified(s)
        ]
        sort_key: dict[str, Callable[[dict[str, Any]], Any]] = {
            "Name": lambda s: s["TrainingJobName"],
            "CreationTime": lambda s: s["CreationTime"],
            "Status": lambda s: s["TrainingJobStatus"],
        }
        summaries.sort(
            key=sort_key.get(request.get("SortBy") or "CreationTime", sort_key["CreationTime"]),
            reverse=request.get("SortOrder") == "Descending",
        )
        try:
            start = pagination.offset_of(request.get("NextToken"))
        except pagination.InvalidToken as exc:
            raise _validation(str(exc)) from exc
        size = max(1, min(int(request.get("MaxResults") or 10), 100))
        page = summaries[start : start + size]
        response: dict[str, Any] = {"TrainingJobSummaries": page}
        if start + size < len(summaries):
            response["NextToken"] = pagination.next_token(start + size)
        return response

    # -- tags of training jobs (other resources: moto) ----------------------------------------------------

    def _job_by_arn(self, context: RequestContext, arn: Any) -> TrainingJob:
        if not isinstance(arn, str) or not _TRAINING_JOB_ARN.match(arn):
            raise NotImplementedError  # not a training job: the moto fallback answers
        with self._lock:
            runner = self._runners.get(arn)
        if runner is None:
            raise _validation(_NOT_FOUND)
        return runner.job

    @handler("AddTags", expand=False)
    def add_tags(self, context: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
        job = self._job_by_arn(context, request.get("ResourceArn"))
        new = {tag["Key"]: tag.get("Value", "") for tag in request.get("Tags") or []}
        with job.lock:
            job.tags = [tag for tag in job.tags if tag["Key"] not in new]
            job.tags += [{"Key": key, "Value": value} for key, value in new.items()]
            return {"Tags": [dict(tag) for tag in job.tags]}

    @handler("ListTags", expand=False)
    def list_tags(self, context: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
        job = self._job_by_arn(context, request.get("ResourceArn"))
        with job.lock:
            return {"Tags": [dict(tag) for tag in job.tags]}

    @handler("DeleteTags", expand=False)
    def delete_tags(self, context: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
        job = self._job_by_arn(context, request.get("ResourceArn"))
        keys = set(request.get("TagKeys") or [])
        with job.lock:
            job.tags = [tag for tag in job.tags if tag["Key"] not in keys]
        return {}


def _aware(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    raise _validation(f"invalid timestamp {value!r}")


def dispatch_table(provider: SageMakerProvider) -> DispatchTable:
    """The provider's operations (falling through to moto when one raises NotImplementedError), moto for the rest."""
    from localstack.services.moto import call_moto

    def moto(context: RequestContext, request: Any) -> Any:
        return call_moto(context)

    def with_fallback(own: Callable[[RequestContext, Any], Any]) -> Callable[[RequestContext, Any], Any]:
        def dispatch(context: RequestContext, request: Any) -> Any:
            try:
                return own(context, request)
            except NotImplementedError:
                return call_moto(context)

        return dispatch

    table: DispatchTable = {op: with_fallback(fn) for op, fn in create_dispatch_table(provider).items()}
    for operation in load_service(SERVICE).operation_names:
        table.setdefault(operation, moto)
    return table


@aws_provider(api=SERVICE)
def sagemaker() -> Service:
    provider = SageMakerProvider()
    return Service.for_provider(provider, dispatch_table_factory=dispatch_table)
