"""Run one SageMaker training job on the host, as SageMaker runs a bring-your-own training image.

No LocalStack imports here: the runner gets boto clients (LocalStack's internal ones in production) and a
:class:`TrainingJob` record, and does what SageMaker does for a job with File-mode S3 channels:

1. **Starting**: lays out the contract's directory tree under a per-job base directory
   (``input/config/hyperparameters.json`` with string values, ``resourceconfig.json``, ``inputdataconfig.json``).
2. **Downloading**: stages every channel from S3 into ``input/data/<channel>/`` (``S3Prefix``: every object under
   the prefix, placed relative to the prefix's last ``/``, so a single-object URI such as a champion's
   ``model.tar.gz`` lands as ``input/data/champion/model.tar.gz``).
3. **Training**: runs ``<python> -m training train --base-dir <dir>`` from the repository root (in LocalStack's
   process group), with ``MaxRuntimeInSeconds`` (counted from the start of the download) enforced. Its output goes
   to a log file, to CloudWatch Logs (``/aws/sagemaker/TrainingJobs``, stream ``<job>/algo-1-<epoch>``) and through
   the job's ``MetricDefinitions`` regexes (first capture group; the last value of each becomes
   ``FinalMetricDataList``, every value is put to CloudWatch metrics in ``/aws/sagemaker/TrainingJobs``).
4. **Uploading**: on exit 0, ``model/`` becomes ``<S3OutputPath>/<job>/output/model.tar.gz`` and ``output/data/``
   ``.../output/output.tar.gz`` (files at the archive root). Then **Completed**.

A non-zero exit is **Failed** with ``FailureReason`` ``AlgorithmError: <text of output/failure, or the log
tail>, exit code: <n>`` (SageMaker's wording, at most 1024 characters). A stop request (StopTrainingJob) or the
runtime limit sends SIGTERM to the program, SIGKILL after a grace period, uploads whatever ``model/`` holds
(SageMaker keeps the artifacts of a stopped job) and ends **Stopped** (secondary status ``Stopped`` or
``MaxRuntimeExceeded``). Input problems (no objects under a prefix, unsupported data sources) fail the job with
``ClientError: ...`` before the program runs.

The training image named in the request is not run: there is no container runtime here. The repository's own
training program runs in its place, so the provider accepts only jobs that name driftloop's image and would run its
program as its entry point does (:func:`refusals`); any other job is refused rather than silently run as driftloop.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import tarfile
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

LOG = logging.getLogger(__name__)

IN_PROGRESS = "InProgress"
COMPLETED = "Completed"
FAILED = "Failed"
STOPPING = "Stopping"
STOPPED = "Stopped"
TERMINAL_STATUSES = frozenset({COMPLETED, FAILED, STOPPED})

LOG_GROUP = "/aws/sagemaker/TrainingJobs"
METRIC_NAMESPACE = "/aws/sagemaker/TrainingJobs"
HOST = "algo-1"
FAILURE_REASON_LIMIT = 1024  # DescribeTrainingJob's FailureReason is at most 1024 characters
LOG_TAIL_LINES = 20
DEFAULT_MAX_RUNTIME_SECONDS = 86400  # SageMaker's default when StoppingCondition omits it

# The one image the local SageMaker runs (as the repository's program): an ECR image of this repository, as the local
# stage's cdk.json names it (<account>.dkr.ecr.<region>.amazonaws.com/driftloop-training:local), any tag or digest.
TRAINING_REPOSITORY = "driftloop-training"
_ECR_IMAGE = re.compile(
    r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/(?P<repository>[a-z0-9._/-]+)([:@][\w.:-]+)?$"
)
# training/Dockerfile's ENTRYPOINT, and the argument SageMaker passes it (`docker run <image> train`).
PROGRAM_ENTRYPOINT = ["python", "-m", "training"]
PROGRAM_ARGUMENTS = ["train"]
# The SDK's script mode: the hyperparameters that name a script for a framework image's toolkit to run.
SCRIPT_MODE_HYPERPARAMETERS = ("sagemaker_program", "sagemaker_submit_directory")
# ModelTrainer's source_code channel: its script runs through ModelTrainer's own ContainerEntrypoint.
CODE_CHANNEL = "code"

# What SageMaker shows in SecondaryStatusTransitions[].StatusMessage.
_MESSAGES = {
    "Starting": "Launching requested ML instances",
    "Downloading": "Downloading input data",
    "Training": "Training in progress (the repository's training program runs on the host)",
    "Uploading": "Uploading generated training model",
    "Completed": "Training job completed",
    "Stopping": "Stopping the training job",
    "Stopped": "Training job stopped",
    "MaxRuntimeExceeded": "Training job stopped: it exceeded its MaxRuntimeInSeconds",
}


class S3Client(Protocol):
    def get_paginator(self, operation_name: str) -> Any: ...
    def get_object(self, **kwargs: Any) -> Any: ...
    def put_object(self, **kwargs: Any) -> Any: ...


@dataclass
class AwsClients:
    """The clients a job needs; ``logs`` and ``cloudwatch`` are optional (their services may be disabled)."""

    s3: S3Client
    logs: Any | None = None
    cloudwatch: Any | None = None


@dataclass(frozen=True)
class RunnerSettings:
    """Where the program and its interpreter live, and where jobs keep their files."""

    python: Path
    repo_root: Path
    work_dir: Path
    log_dir: Path
    stop_grace_seconds: float = 10.0

    def command(self, base_dir: Path) -> list[str]:
        # The image's entry point and argument, with the project's interpreter in place of the image's python.
        return [str(self.python), *PROGRAM_ENTRYPOINT[1:], *PROGRAM_ARGUMENTS, "--base-dir", str(base_dir)]


class JobFailure(Exception):
    """Ends the job as Failed with this reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def utcnow() -> datetime:
    return datetime.now(UTC)


def parse_s3_uri(uri: str) -> tuple[str, str]:
    match = re.fullmatch(r"s3://([^/]+)/?(.*)", uri or "")
    if not match:
        raise JobFailure(f"ClientError: {uri!r} is not an S3 URI (s3://bucket/key)")
    return match.group(1), match.group(2)


def refusals(algorithm: dict[str, Any], hyperparameters: dict[str, Any], channels: Collection[str]) -> list[str]:
    """Why AWS would not run driftloop's training program for this job (empty: it would), each naming the field.

    The local SageMaker runs that program whatever the request says, so a job that names another image, algorithm,
    entry point or script must be refused: running driftloop's program instead would hide the mistake.
    """
    problems: list[str] = []
    image = algorithm.get("TrainingImage")
    if algorithm.get("AlgorithmName"):
        problems.append(f"AlgorithmSpecification.AlgorithmName {algorithm['AlgorithmName']!r} names an algorithm")
    if image:
        match = _ECR_IMAGE.fullmatch(str(image))
        if match is None or match["repository"] != TRAINING_REPOSITORY:
            problems.append(
                f"AlgorithmSpecification.TrainingImage {image!r} is not driftloop's training image (an ECR image of "
                f"repository {TRAINING_REPOSITORY})"
            )
    entrypoint, arguments = algorithm.get("ContainerEntrypoint"), algorithm.get("ContainerArguments")
    if entrypoint not in (None, PROGRAM_ENTRYPOINT) or arguments not in (None, PROGRAM_ARGUMENTS):
        runs = f"ContainerEntrypoint {entrypoint} with ContainerArguments {arguments} runs another command"
        if CODE_CHANNEL in channels:
            runs += f" (the {CODE_CHANNEL!r} channel's script: the SDK's source_code)"
        problems.append(f"{runs}, not driftloop's {PROGRAM_ENTRYPOINT + PROGRAM_ARGUMENTS}")
    problems += [
        f"HyperParameters.{name} {hyperparameters[name]!r} asks script mode to run a script"
        for name in SCRIPT_MODE_HYPERPARAMETERS
        if name in hyperparameters
    ]
    return problems


def truncate(text: str, limit: int = FAILURE_REASON_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass
class MetricSeries:
    """Every value one MetricDefinition matched, in log order."""

    name: str
    pattern: re.Pattern[str]
    values: list[tuple[datetime, float]] = field(default_factory=list)


def compile_metric_definitions(definitions: Iterable[dict[str, str]]) -> list[MetricSeries]:
    """Raises ``re.error`` for an invalid regex (the provider turns it into a ValidationException)."""
    return [MetricSeries(d["Name"], re.compile(d["Regex"])) for d in definitions]


def match_metrics(series: list[MetricSeries], line: str, at: datetime) -> None:
    for metric in series:
        found = metric.pattern.search(line)
        if not found:
            continue
        text = found.group(1) if found.groups() else found.group(0)
        try:
            value = float(text)
        except (TypeError, ValueError):
            continue
        metric.values.append((at, value))


class TrainingJob:
    """One training job: its DescribeTrainingJob document, guarded by a lock, plus its runtime handles."""

    def __init__(self, description: dict[str, Any], tags: list[dict[str, str]]) -> None:
        self.lock = threading.RLock()
        self.description = description
        self.tags = tags
        self.stop_reason: str | None = None  # "Stopped" (StopTrainingJob) or "MaxRuntimeExceeded"
        self.process: subprocess.Popen[bytes] | None = None
        self.thread: threading.Thread | None = None
        self.finished = threading.Event()

    @property
    def name(self) -> str:
        return str(self.description["TrainingJobName"])

    @property
    def arn(self) -> str:
        return str(self.description["TrainingJobArn"])

    @property
    def status(self) -> str:
        with self.lock:
            return str(self.description["TrainingJobStatus"])

    def describe(self) -> dict[str, Any]:
        with self.lock:
            return copy.deepcopy(self.description)

    def summary(self) -> dict[str, Any]:
        with self.lock:
            keys = ("TrainingJobName", "TrainingJobArn", "CreationTime", "TrainingEndTime", "LastModifiedTime")
            found = {key: self.description[key] for key in keys if key in self.description}
            found["TrainingJobStatus"] = self.description["TrainingJobStatus"]
            found["SecondaryStatus"] = self.description["SecondaryStatus"]
            return copy.deepcopy(found)

    def transition(self, status: str, secondary: str, message: str | None = None) -> None:
        """Move to ``status``/``secondary``, closing the previous secondary status as SageMaker records it."""
        with self.lock:
            now = utcnow()
            transitions: list[dict[str, Any]] = self.description.setdefault("SecondaryStatusTransitions", [])
            if transitions and "EndTime" not in transitions[-1]:
                transitions[-1]["EndTime"] = now
            entry: dict[str, Any] = {"Status": secondary, "StartTime": now}
            entry["StatusMessage"] = message or _MESSAGES.get(secondary, secondary)
            if status in TERMINAL_STATUSES:
                entry["EndTime"] = now
            transitions.append(entry)
            self.description["TrainingJobStatus"] = status
            self.description["SecondaryStatus"] = secondary
            self.description["LastModifiedTime"] = now
            if status in TERMINAL_STATUSES:
                self.description["TrainingEndTime"] = now
                start = self.description.get("TrainingStartTime")
                if isinstance(start, datetime):
                    seconds = max(1, round((now - start).total_seconds()))
                    self.description["TrainingTimeInSeconds"] = seconds
                    self.description["BillableTimeInSeconds"] = seconds


class CloudWatchLogSink:
    """Ships a job's log lines to CloudWatch Logs in batches; gives up quietly if the Logs service is absent."""

    def __init__(self, client: Any | None, job_name: str) -> None:
        self._client = client
        self._stream = f"{job_name}/{HOST}-{int(time.time())}"
        self._buffer: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._last_flush = time.monotonic()

    def open(self) -> None:
        if self._client is None:
            return
        try:
            with contextlib.suppress(self._client.exceptions.ResourceAlreadyExistsException):
                self._client.create_log_group(logGroupName=LOG_GROUP)
            self._client.create_log_stream(logGroupName=LOG_GROUP, logStreamName=self._stream)
        except Exception as exc:  # the Logs service may be disabled in this instance
            LOG.info("CloudWatch Logs unavailable for %s, logging to file only: %s", self._stream, exc)
            self._client = None

    def add(self, line: str, at: datetime) -> None:
        if self._client is None:
            return
        with self._lock:
            self._buffer.append({"timestamp": int(at.timestamp() * 1000), "message": line or " "})
        if len(self._buffer) >= 500 or time.monotonic() - self._last_flush >= 1.0:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            batch, self._buffer = self._buffer, []
            self._last_flush = time.monotonic()
            if not batch or self._client is None:
                return
            try:
                self._client.put_log_events(logGroupName=LOG_GROUP, logStreamName=self._stream, logEvents=batch)
            except Exception as exc:
                LOG.info("CloudWatch Logs put failed for %s, logging to file only: %s", self._stream, exc)
                self._client = None


def write_json(path: Path, document: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2))


def lay_out(base: Path, description: dict[str, Any]) -> None:
    """The ``input/config`` files SageMaker writes, and the empty output directories."""
    hyperparameters = description.get("HyperParameters") or {}
    write_json(base / "input" / "config" / "hyperparameters.json", {k: str(v) for k, v in hyperparameters.items()})
    resources = description.get("ResourceConfig") or {}
    count = int(resources.get("InstanceCount") or 1)
    hosts = [f"algo-{index}" for index in range(1, count + 1)]
    write_json(
        base / "input" / "config" / "resourceconfig.json",
        {
            "current_host": HOST,
            "current_instance_type": resources.get("InstanceType", "local"),
            "current_group_name": "homogeneousCluster",
            "hosts": hosts,
            "instance_groups": [
                {
                    "instance_group_name": "homogeneousCluster",
                    "instance_type": resources.get("InstanceType", "local"),
                    "hosts": hosts,
                }
            ],
            "network_interface_name": "eth0",
        },
    )
    default_mode = (description.get("AlgorithmSpecification") or {}).get("TrainingInputMode", "File")
    channels: dict[str, dict[str, Any]] = {}
    for channel in description.get("InputDataConfig") or []:
        s3_source = (channel.get("DataSource") or {}).get("S3DataSource") or {}
        entry = {
            "TrainingInputMode": channel.get("InputMode") or default_mode,
            "S3DistributionType": s3_source.get("S3DataDistributionType", "FullyReplicated"),
            "RecordWrapperType": channel.get("RecordWrapperType", "None"),
        }
        if "ContentType" in channel:
            entry["ContentType"] = channel["ContentType"]
        if "CompressionType" in channel:
            entry["CompressionType"] = channel["CompressionType"]
        channels[channel["ChannelName"]] = entry
    write_json(base / "input" / "config" / "inputdataconfig.json", channels)
    for directory in ("input/data", "model", "output/data"):
        (base / directory).mkdir(parents=True, exist_ok=True)


def _local_path(channel_dir: Path, relative_key: str) -> Path:
    parts = PurePosixPath(relative_key).parts
    if not parts or any(part in ("..", "") for part in parts) or relative_key.startswith("/"):
        raise JobFailure(f"ClientError: S3 key {relative_key!r} cannot be placed under {channel_dir.name}/")
    return channel_dir.joinpath(*parts)


def stage_channel(s3: S3Client, channel: dict[str, Any], channel_dir: Path, cancelled: Callable[[], bool]) -> int:
    """Copy a channel's S3 objects into ``channel_dir``; returns how many were copied."""
    name = channel.get("ChannelName", "?")
    source = (channel.get("DataSource") or {}).get("S3DataSource")
    if source is None:
        raise JobFailure(f"ClientError: channel {name!r}: only S3DataSource channels are supported locally")
    data_type = source.get("S3DataType", "S3Prefix")
    if data_type != "S3Prefix":
        raise JobFailure(f"ClientError: channel {name!r}: S3DataType {data_type} is not supported locally")
    uri = source["S3Uri"]
    bucket, prefix = parse_s3_uri(uri)
    # Keys are placed relative to the prefix's last "/": "data/" keeps sub-folders, "data/x.csv" is x.csv.
    root = prefix[: prefix.rfind("/") + 1]
    channel_dir.mkdir(parents=True, exist_ok=True)
    copied = 0
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                key = item["Key"]
                if key.endswith("/"):
                    continue
                if cancelled():
                    return copied
                target = _local_path(channel_dir, key[len(root) :])
                target.parent.mkdir(parents=True, exist_ok=True)
                body = s3.get_object(Bucket=bucket, Key=key)["Body"]
                with target.open("wb") as out:
                    shutil.copyfileobj(body, out, 1024 * 1024)
                copied += 1
    except JobFailure:
        raise
    except Exception as exc:
        raise JobFailure(f"ClientError: Data download failed for channel {name!r} from {uri}: {exc}") from exc
    if copied == 0:
        raise JobFailure(
            f'ClientError: No S3 objects found under S3 URL "{uri}" given in input data source for channel {name!r}.'
        )
    return copied


def tar_directory(source: Path, archive: Path) -> None:
    """A gzipped tar of ``source``'s contents, files at the archive root (as SageMaker packs model/)."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(source.rglob("*")):
            tar.add(path, arcname=path.relative_to(source).as_posix(), recursive=False)


def output_location(description: dict[str, Any], file_name: str) -> tuple[str, str]:
    bucket, prefix = parse_s3_uri(description["OutputDataConfig"]["S3OutputPath"])
    key = "/".join(part for part in (prefix.strip("/"), description["TrainingJobName"], "output", file_name) if part)
    return bucket, key


class TrainingJobRunner:
    """Runs a :class:`TrainingJob` in a background thread; ``request_stop`` ends it early."""

    def __init__(self, job: TrainingJob, settings: RunnerSettings, clients: AwsClients) -> None:
        self.job = job
        self.settings = settings
        self.clients = clients
        self.base = settings.work_dir / job.name
        self.log_file = settings.log_dir / f"{job.name}.log"
        self._tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)
        self._metrics = compile_metric_definitions(
            (job.description.get("AlgorithmSpecification") or {}).get("MetricDefinitions") or []
        )
        self._sink = CloudWatchLogSink(clients.logs, job.name)
        self._log_lock = threading.Lock()
        self._log_handle: Any = None

    # -- control ------------------------------------------------------------------------------------------

    def start(self) -> None:
        thread = threading.Thread(target=self._run, name=f"sagemaker-job-{self.job.name}", daemon=True)
        self.job.thread = thread
        thread.start()

    def request_stop(self, reason: str = STOPPED) -> bool:
        """Ask the job to stop; False if it already ended. The job reaches Stopped in the background."""
        job = self.job
        with job.lock:
            if job.status in TERMINAL_STATUSES or job.stop_reason is not None:
                return job.status not in TERMINAL_STATUSES
            job.stop_reason = reason
            if reason == STOPPED:
                job.transition(STOPPING, STOPPING)
            process = job.process
        if process is not None:
            self._terminate(process)
        return True

    def _terminate(self, process: subprocess.Popen[bytes]) -> None:
        """SIGTERM, then SIGKILL after the grace period, as SageMaker stops a container."""

        def send(sig: int) -> None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                process.send_signal(sig)

        send(signal.SIGTERM)

        def kill_later() -> None:
            try:
                process.wait(timeout=self.settings.stop_grace_seconds)
            except subprocess.TimeoutExpired:
                send(signal.SIGKILL)

        threading.Thread(target=kill_later, name=f"sagemaker-kill-{self.job.name}", daemon=True).start()

    # -- the job ------------------------------------------------------------------------------------------

    def _run(self) -> None:
        job = self.job
        try:
            self.settings.log_dir.mkdir(parents=True, exist_ok=True)
            self._log_handle = self.log_file.open("a", encoding="utf-8")
            self._sink.open()
            self._execute()
        except JobFailure as failure:
            self._finish_failed(failure.reason)
        except Exception as exc:  # never leave a job InProgress forever
            LOG.exception("training job %s crashed in the local runner", job.name)
            self._finish_failed(f"InternalServerError: the local SageMaker runner failed: {exc!r}")
        finally:
            self._sink.flush()
            with self._log_lock:
                handle, self._log_handle = self._log_handle, None
            if handle is not None:
                handle.close()
            shutil.rmtree(self.base / "input" / "data", ignore_errors=True)
            job.finished.set()

    def _execute(self) -> None:
        job = self.job
        description = job.describe()
        self._say(f"local SageMaker: job {job.name}, base dir {self.base}")
        if self.base.exists():
            shutil.rmtree(self.base)
        lay_out(self.base, description)
        max_runtime = float(
            (description.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds") or DEFAULT_MAX_RUNTIME_SECONDS
        )
        with job.lock:
            job.description["TrainingStartTime"] = utcnow()
            deadline = time.monotonic() + max_runtime
            if job.stop_reason is None:
                job.transition(IN_PROGRESS, "Downloading")
        for channel in description.get("InputDataConfig") or []:
            count = stage_channel(
                self.clients.s3,
                channel,
                self.base / "input" / "data" / channel["ChannelName"],
                lambda: job.stop_reason is not None or time.monotonic() > deadline,
            )
            self._say(f"local SageMaker: channel {channel['ChannelName']}: {count} object(s)")
        if time.monotonic() > deadline:
            self.request_stop("MaxRuntimeExceeded")
        if job.stop_reason is not None:
            self._finish_stopped()
            return

        returncode = self._train(deadline)

        if job.stop_reason is not None:
            self._finish_stopped()
        elif returncode == 0:
            with job.lock:
                job.transition(IN_PROGRESS, "Uploading")
            self._upload(model=True, output=True)
            # Before the job ends: the SDK stops streaming the logs once it sees a terminal status.
            self._sink.flush()
            with job.lock:
                self._final_metrics()
                job.transition(COMPLETED, COMPLETED)
            self._publish_metrics()
        else:
            raise JobFailure(self._failure_reason(returncode))

    def _train(self, deadline: float) -> int:
        job = self.job
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")
        }
        env.update({str(k): str(v) for k, v in (job.description.get("Environment") or {}).items()})
        env.update(
            {
                "PYTHONPATH": str(self.settings.repo_root),
                "PYTHONUNBUFFERED": "1",
                "TRAINING_JOB_NAME": job.name,
                "TRAINING_JOB_ARN": job.arn,
            }
        )
        command = self.settings.command(self.base)
        self._say(f"local SageMaker: running {' '.join(command)} (the training image is not run locally)")
        with job.lock:
            if job.stop_reason is not None:
                return -1
            try:
                process = subprocess.Popen(
                    command,
                    cwd=self.settings.repo_root,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    # Stays in LocalStack's process group: whoever kills that group (localcloud/cloud.py after
                    # its grace period) kills running jobs too, none outlives the instance.
                )
            except OSError as exc:
                raise JobFailure(f"InternalServerError: cannot start the training program {command[0]}: {exc}") from exc
            job.process = process
            job.transition(IN_PROGRESS, "Training")
        reader = threading.Thread(target=self._pump, args=(process,), name=f"sagemaker-log-{job.name}", daemon=True)
        reader.start()
        while True:
            try:
                returncode = process.wait(timeout=max(0.0, min(1.0, deadline - time.monotonic())))
                break
            except subprocess.TimeoutExpired:
                self._sink.flush()
                if time.monotonic() >= deadline and job.stop_reason is None:
                    self._say("local SageMaker: MaxRuntimeInSeconds exceeded, stopping the job")
                    self.request_stop("MaxRuntimeExceeded")
        reader.join(timeout=30)
        self._say(f"local SageMaker: training program exited with code {returncode}")
        return returncode

    def _pump(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            self._say(raw.decode("utf-8", errors="replace").rstrip("\r\n"), program=True)

    def _say(self, line: str, *, program: bool = False) -> None:
        at = utcnow()
        with self._log_lock:
            if self._log_handle is not None:
                self._log_handle.write(line + "\n")
                self._log_handle.flush()
            if program:
                self._tail.append(line)
                match_metrics(self._metrics, line, at)
        self._sink.add(line, at)

    # -- endings ------------------------------------------------------------------------------------------

    def _upload(self, *, model: bool, output: bool) -> None:
        s3 = self.clients.s3
        description = self.job.describe()
        archives = self.base / "archives"
        uploads: list[tuple[str, Path]] = []
        if model:
            tar_directory(self.base / "model", archives / "model.tar.gz")
            uploads.append(("model.tar.gz", archives / "model.tar.gz"))
        if output:
            tar_directory(self.base / "output" / "data", archives / "output.tar.gz")
            uploads.append(("output.tar.gz", archives / "output.tar.gz"))
        for file_name, path in uploads:
            bucket, key = output_location(description, file_name)
            try:
                with path.open("rb") as body:
                    s3.put_object(Bucket=bucket, Key=key, Body=body)
            except Exception as exc:
                raise JobFailure(f"ClientError: cannot upload {file_name} to s3://{bucket}/{key}: {exc}") from exc
            self._say(f"local SageMaker: uploaded s3://{bucket}/{key}")
            if file_name == "model.tar.gz":
                with self.job.lock:
                    self.job.description["ModelArtifacts"] = {"S3ModelArtifacts": f"s3://{bucket}/{key}"}

    def _final_metrics(self) -> None:
        """FinalMetricDataList: the last value of each metric (call with the job's lock held)."""
        with self._log_lock:
            final = [
                {"MetricName": metric.name, "Value": metric.values[-1][1], "Timestamp": metric.values[-1][0]}
                for metric in self._metrics
                if metric.values
            ]
        if final:
            self.job.description["FinalMetricDataList"] = final

    def _publish_metrics(self) -> None:
        """Every matched value to CloudWatch metrics, as SageMaker does (namespace /aws/sagemaker/TrainingJobs), by
        host and by training job: the SDK's ``training_job_analytics`` asks by ``TrainingJobName``."""
        client = self.clients.cloudwatch
        if client is None:
            return
        dimensions = (
            {"Name": "Host", "Value": f"{self.job.name}/{HOST}"},
            {"Name": "TrainingJobName", "Value": self.job.name},
        )
        data = [
            {"MetricName": metric.name, "Dimensions": [dimension], "Timestamp": at, "Value": value}
            for metric in self._metrics
            for at, value in metric.values
            for dimension in dimensions
        ]
        try:
            for start in range(0, len(data), 500):
                client.put_metric_data(Namespace=METRIC_NAMESPACE, MetricData=data[start : start + 500])
        except Exception as exc:
            LOG.info("CloudWatch metrics unavailable for %s: %s", self.job.name, exc)

    def _failure_reason(self, returncode: int) -> str:
        failure = self.base / "output" / "failure"
        text = ""
        if failure.is_file():
            text = failure.read_text(encoding="utf-8", errors="replace").strip()
        if not text:
            text = "\n".join(self._tail).strip() or "the training program failed without output"
        return truncate(f"AlgorithmError: {text}, exit code: {returncode}")

    def _finish_failed(self, reason: str) -> None:
        job = self.job
        self._sink.flush()
        with job.lock:
            if job.status in TERMINAL_STATUSES:
                return
            self._final_metrics()
            job.description["FailureReason"] = truncate(reason)
            job.transition(FAILED, FAILED, truncate(reason))
        self._publish_metrics()
        self._say(f"local SageMaker: job failed: {reason}")

    def _finish_stopped(self) -> None:
        job = self.job
        reason = job.stop_reason or STOPPED
        try:
            # SageMaker keeps what the program saved before it was stopped.
            if any((self.base / "model").iterdir()):
                with job.lock:
                    job.transition(STOPPING, "Uploading")
                self._upload(model=True, output=True)
        except (JobFailure, OSError) as exc:
            self._say(f"local SageMaker: artifacts of the stopped job not uploaded: {exc}")
        self._sink.flush()  # as for the other endings: the SDK stops streaming logs at the final status
        with job.lock:
            self._final_metrics()
            job.transition(STOPPED, reason)
        self._publish_metrics()
        self._say(f"local SageMaker: job stopped ({reason})")
