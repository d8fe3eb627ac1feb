"""The one typed configuration of the CDK app, read from the ``cdk.json`` context.

``driftloop`` holds the base settings, ``driftloop:stages`` the per-stage overrides (deep-merged onto the base),
and ``stage`` (``-c stage=NAME``, default ``dev``) picks the stage. Every error names the offending key.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal, cast

CONTEXT_KEY = "driftloop"
STAGES_KEY = "driftloop:stages"
STAGE_KEY = "stage"
DEFAULT_STAGE = "dev"

AuthMode = Literal["iam", "api_key"]
Removal = Literal["retain", "destroy"]

# The values CloudWatch Logs accepts for a retention period.
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# Lowercase because S3 bucket names, SageMaker job names and exports are built from them.
_NAME = re.compile(r"^[a-z][a-z0-9-]*[a-z0-9]$")
_PREFIX = re.compile(r"^[A-Za-z0-9!_.*'()-]+(/[A-Za-z0-9!_.*'()-]+)*/$")
ECR_IMAGE_URI = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(\.cn)?"
    r"/(?P<repository>[a-z0-9._/-]+)([:@][\w.:-]+)?$"
)
# SageMaker training job names are at most 63 characters; the workflow appends a version to the prefix.
MAX_JOB_PREFIX_LENGTH = 30
# API Gateway's REST integration timeout; a longer Lambda timeout would never be used.
MAX_API_TIMEOUT_SECONDS = 29
# Lambda's synchronous request payload limit.
MAX_LAMBDA_PAYLOAD_BYTES = 6 * 1024 * 1024
# CloudWatch alarms evaluate at most 7 days of periods, and 1 day when the period is shorter than an hour.
MAX_ALARM_SPAN_MINUTES = 7 * 24 * 60
MAX_SHORT_PERIOD_ALARM_SPAN_MINUTES = 24 * 60
# Training hyperparameters the workflow derives from serving.memory_mb and serving.timeout_seconds.
SERVING_MEMORY_HYPERPARAMETER = "serving_memory_mb"
SERVING_TIMEOUT_HYPERPARAMETER = "serving_timeout_seconds"
DERIVED_HYPERPARAMETERS = (SERVING_MEMORY_HYPERPARAMETER, SERVING_TIMEOUT_HYPERPARAMETER)


class ConfigError(ValueError):
    """The CDK context does not describe a valid driftloop deployment."""


@dataclass(frozen=True)
class TrainingConfig:
    # An ECR image URI, or None to build training/Dockerfile as a CDK image asset.
    image_uri: str | None
    instance_type: str
    instance_count: int
    volume_size_gb: int
    max_runtime_seconds: int
    # The whole state machine; must leave room for the job and the Lambda steps around it.
    workflow_timeout_seconds: int
    hyperparameters: Mapping[str, str]
    # The workflow Lambdas (guard, assemble, prepare, register, promote, reject, record_failure, release).
    step_memory_mb: int
    step_timeout_seconds: int


@dataclass(frozen=True)
class DataConfig:
    # In the data bucket: labelled data, captured predictions, ground-truth feedback, drift reports, and the
    # data sets the workflow assembles for each run.
    training_data_prefix: str
    capture_prefix: str
    feedback_prefix: str
    report_prefix: str
    assembled_prefix: str
    # In the model bucket: SageMaker outputs and the registry.
    artifact_prefix: str
    registry_prefix: str
    artifact_expiry_days: int
    noncurrent_version_expiry_days: int
    incomplete_upload_expiry_days: int
    access_log_expiry_days: int
    # Captured predictions, feedback and reports expire after this many days; assembled data sets with artifacts.
    capture_expiry_days: int


@dataclass(frozen=True)
class ServingConfig:
    auth_mode: AuthMode
    memory_mb: int
    timeout_seconds: int
    reserved_concurrency: int | None
    max_instances: int
    max_body_bytes: int
    refresh_seconds: int
    throttle_rate_limit: float
    throttle_burst_limit: int
    # POST /feedback has its own, lower limits: labels feed training and the gate, so a flood is costlier.
    feedback_throttle_rate_limit: float
    feedback_throttle_burst_limit: int
    quota_per_day: int
    api_stage_name: str
    # Whether this app sets the region-wide API Gateway CloudWatch role that access and execution logs need.
    manage_api_gateway_account: bool


@dataclass(frozen=True)
class CaptureConfig:
    """Prediction capture and ground-truth feedback, delivered to the data bucket by Kinesis Data Firehose."""

    enabled: bool
    # Fraction of predictions captured, 0 to 1 (feedback is always recorded).
    sample_rate: float
    # Firehose buffering before it writes an S3 object.
    buffer_seconds: int
    buffer_mb: int
    # Feedback for predictions older than this is refused (their captures are no longer joined).
    feedback_max_age_days: int


@dataclass(frozen=True)
class MonitoringConfig:
    """The scheduled monitor and the alarms it feeds."""

    schedule_minutes: int
    # The capture window each run reads, ending at the run's time.
    window_minutes: int
    # How long before the run the window ends, so records still in Firehose's buffer are read by the next run.
    # None: the capture buffer interval plus a delivery margin.
    window_lag_seconds: int | None
    # Fewer captured predictions than this: the window is reported as insufficient, no drift metric is published.
    min_records: int
    # Fewer labelled predictions than this: no live-quality metric is published.
    min_feedback: int
    # Data drift alarm: max per-feature PSI above this for M of N monitor periods.
    drift_threshold: float
    drift_datapoints_to_alarm: int
    drift_evaluation_periods: int
    # Live quality alarm: classification accuracy (or regression RMSE, above) worse than this for M of N periods.
    quality_threshold: float
    regression_quality_threshold: float
    quality_datapoints_to_alarm: int
    quality_evaluation_periods: int
    # Operational alarms (they notify, never retrain).
    api_5xx_rate_percent: float
    api_p99_latency_ms: int
    # Optional e-mail subscription for the operations topic.
    alarm_email: str | None


@dataclass(frozen=True)
class ApprovalConfig:
    """A person approves each promotion the gate passed (``driftloop approve`` / ``driftloop deny``)."""

    enabled: bool
    # Without an answer within this time the version is rejected.
    timeout_hours: int


@dataclass(frozen=True)
class RetrainingConfig:
    """What starts the training workflow, and the guardrails every start obeys."""

    # Drift and quality alarms start a run (the main loop).
    on_alarm: bool
    # A fixed schedule, off by default; an EventBridge schedule expression such as "rate(7 days)".
    schedule_enabled: bool
    schedule_expression: str
    # New objects under the training data prefix start a run, off by default.
    on_new_data: bool
    # No new run within this many minutes of the last run's end (the lock already keeps runs one at a time).
    cooldown_minutes: int
    # Add captured predictions joined with their feedback labels to the base training data.
    include_feedback: bool
    # At most this share of the assembled training set may come from feedback, in (0, 1].
    max_feedback_share: float
    approval: ApprovalConfig


@dataclass(frozen=True)
class DriftloopConfig:
    stage: str
    name_prefix: str
    log_level: str
    log_retention_days: int
    removal: Removal
    # Only with removal=destroy: empty the buckets on delete (needs CDK's Node.js custom resource).
    auto_delete_objects: bool
    training: TrainingConfig
    data: DataConfig
    serving: ServingConfig
    capture: CaptureConfig
    monitoring: MonitoringConfig
    retraining: RetrainingConfig

    @property
    def resource_prefix(self) -> str:
        """``<name_prefix>-<stage>``: stack names, the state machine, training jobs and exports start with it."""
        return f"{self.name_prefix}-{self.stage}"

    @property
    def state_machine_name(self) -> str:
        return f"{self.resource_prefix}-training"

    @property
    def job_prefix(self) -> str:
        return self.resource_prefix

    def service_name(self, component: str) -> str:
        """The ``Service`` dimension of a component's metrics in :data:`METRIC_NAMESPACE` (stages never mix)."""
        return f"{self.resource_prefix}-{component}"

    @property
    def retain(self) -> bool:
        return self.removal == "retain"

    @property
    def workflow_hyperparameters(self) -> dict[str, str]:
        """The configured hyperparameters plus what the serving Lambda can load, so that training refuses a
        bundle that would not fit it."""
        return {
            **self.training.hyperparameters,
            SERVING_MEMORY_HYPERPARAMETER: str(self.serving.memory_mb),
            SERVING_TIMEOUT_HYPERPARAMETER: str(self.serving.timeout_seconds),
        }


def load_config(context: Callable[[str], Any]) -> DriftloopConfig:
    """Build the config from a context lookup such as ``app.node.try_get_context``."""
    base = context(CONTEXT_KEY)
    if base is None:
        raise ConfigError(
            f"context key {CONTEXT_KEY!r} is missing: run the app through the CDK CLI (npx cdk synth), "
            "which loads cdk.json, or pass the context explicitly"
        )
    stages = context(STAGES_KEY) or {}
    stage = context(STAGE_KEY) or DEFAULT_STAGE
    if not isinstance(stage, str) or not _NAME.fullmatch(stage):
        raise ConfigError(f"context key {STAGE_KEY!r} must be a lowercase name like 'dev', got {stage!r}")
    if not isinstance(stages, Mapping):
        raise ConfigError(f"context key {STAGES_KEY!r} must be an object of per-stage overrides")
    if stage not in stages:
        raise ConfigError(
            f"unknown stage {stage!r}: add it under context key {STAGES_KEY!r} (known: {', '.join(sorted(stages))})"
        )
    merged = _deep_merge(_Reader(base, CONTEXT_KEY).mapping_value(), stages[stage], f"{STAGES_KEY}.{stage}")
    return _parse(_Reader(merged, CONTEXT_KEY), stage)


def _parse(root: _Reader, stage: str) -> DriftloopConfig:
    removal = cast(Removal, root.choice("removal", ("retain", "destroy")))
    auto_delete = root.boolean("auto_delete_objects")
    if auto_delete and removal != "destroy":
        raise ConfigError(f"{root.key('auto_delete_objects')} requires {root.key('removal')} = 'destroy'")
    name_prefix = root.name("name_prefix")
    if len(f"{name_prefix}-{stage}") > MAX_JOB_PREFIX_LENGTH:
        raise ConfigError(
            f"{root.key('name_prefix')} and the stage together must stay within {MAX_JOB_PREFIX_LENGTH} "
            "characters: training job names are built from them"
        )
    config = DriftloopConfig(
        stage=stage,
        name_prefix=name_prefix,
        log_level=root.choice("log_level", LOG_LEVELS),
        log_retention_days=root.integer_in("log_retention_days", LOG_RETENTION_DAYS),
        removal=removal,
        auto_delete_objects=auto_delete,
        training=_training(root.section("training")),
        data=_data(root.section("data")),
        serving=_serving(root.section("serving")),
        capture=_capture(root.section("capture")),
        monitoring=_monitoring(root.section("monitoring")),
        retraining=_retraining(root.section("retraining")),
    )
    root.reject_unknown()
    _check_approval_fits_the_workflow(root, config)
    return config


def _check_approval_fits_the_workflow(root: _Reader, config: DriftloopConfig) -> None:
    approval, training = config.retraining.approval, config.training
    if (
        approval.enabled
        and training.workflow_timeout_seconds <= training.max_runtime_seconds + approval.timeout_hours * 3600
    ):
        raise ConfigError(
            f"{root.key('training.workflow_timeout_seconds')} must exceed {root.key('training.max_runtime_seconds')} "
            f"plus {root.key('retraining.approval.timeout_hours')} when approval is enabled: the run waits for the "
            "approval inside the state machine's timeout"
        )


def _training(section: _Reader) -> TrainingConfig:
    image_uri = section.optional_string("image_uri")
    if image_uri is not None and not ECR_IMAGE_URI.fullmatch(image_uri):
        raise ConfigError(
            f"{section.key('image_uri')} must be an ECR image URI "
            f"(<account>.dkr.ecr.<region>.amazonaws.com/<repository>[:tag|@digest]) or null, got {image_uri!r}"
        )
    instance_type = section.string("instance_type")
    if not instance_type.startswith("ml."):
        raise ConfigError(f"{section.key('instance_type')} must be a SageMaker instance type (ml.*)")
    max_runtime = section.integer("max_runtime_seconds", 60, 28 * 24 * 3600)
    workflow_timeout = section.integer("workflow_timeout_seconds", 1, 365 * 24 * 3600)
    if workflow_timeout <= max_runtime:
        raise ConfigError(
            f"{section.key('workflow_timeout_seconds')} must exceed {section.key('max_runtime_seconds')} "
            "so a job that runs to its limit still ends in RecordFailure, not a state machine timeout"
        )
    training = TrainingConfig(
        image_uri=image_uri,
        instance_type=instance_type,
        instance_count=section.integer("instance_count", 1, 100),
        volume_size_gb=section.integer("volume_size_gb", 1, 16384),
        max_runtime_seconds=max_runtime,
        workflow_timeout_seconds=workflow_timeout,
        hyperparameters=MappingProxyType(section.string_map("hyperparameters")),
        step_memory_mb=section.integer("step_memory_mb", 128, 10240),
        step_timeout_seconds=section.integer("step_timeout_seconds", 1, 900),
    )
    for name in DERIVED_HYPERPARAMETERS:
        if name in training.hyperparameters:
            raise ConfigError(
                f"{section.key('hyperparameters')}.{name} must not be set: it is derived from the serving config"
            )
    section.reject_unknown()
    return training


DATA_PREFIXES = (
    "training_data_prefix",
    "capture_prefix",
    "feedback_prefix",
    "report_prefix",
    "assembled_prefix",
    "artifact_prefix",
    "registry_prefix",
)


def _data(section: _Reader) -> DataConfig:
    prefixes = {key: section.prefix(key) for key in DATA_PREFIXES}
    for key, prefix in prefixes.items():
        for other_key, other in prefixes.items():
            if key != other_key and other.startswith(prefix):
                # Lifecycle rules and IAM grants are per prefix: nesting would leak one into the other.
                raise ConfigError(f"{section.key(other_key)} must not lie under {section.key(key)}")
    data = DataConfig(
        **prefixes,
        artifact_expiry_days=section.integer("artifact_expiry_days", 1, 3650),
        noncurrent_version_expiry_days=section.integer("noncurrent_version_expiry_days", 1, 3650),
        incomplete_upload_expiry_days=section.integer("incomplete_upload_expiry_days", 1, 365),
        access_log_expiry_days=section.integer("access_log_expiry_days", 1, 3650),
        capture_expiry_days=section.integer("capture_expiry_days", 1, 3650),
    )
    section.reject_unknown()
    return data


def _serving(section: _Reader) -> ServingConfig:
    serving = ServingConfig(
        auth_mode=cast(AuthMode, section.choice("auth_mode", ("iam", "api_key"))),
        memory_mb=section.integer("memory_mb", 128, 10240),
        timeout_seconds=section.integer("timeout_seconds", 1, MAX_API_TIMEOUT_SECONDS),
        reserved_concurrency=section.optional_integer("reserved_concurrency", 1, 10000),
        max_instances=section.integer("max_instances", 1, 100_000),
        max_body_bytes=section.integer("max_body_bytes", 1, MAX_LAMBDA_PAYLOAD_BYTES),
        refresh_seconds=section.integer("refresh_seconds", 1, 24 * 3600),
        throttle_rate_limit=section.number("throttle_rate_limit", 0.1, 10000),
        throttle_burst_limit=section.integer("throttle_burst_limit", 1, 5000),
        feedback_throttle_rate_limit=section.number("feedback_throttle_rate_limit", 0.1, 10000),
        feedback_throttle_burst_limit=section.integer("feedback_throttle_burst_limit", 1, 5000),
        quota_per_day=section.integer("quota_per_day", 1, 1_000_000_000),
        api_stage_name=section.name("api_stage_name"),
        manage_api_gateway_account=section.boolean("manage_api_gateway_account"),
    )
    for kind in ("rate", "burst"):
        feedback, stage = f"feedback_throttle_{kind}_limit", f"throttle_{kind}_limit"
        if getattr(serving, feedback) > getattr(serving, stage):
            raise ConfigError(f"{section.key(feedback)} must not exceed {section.key(stage)}")
    section.reject_unknown()
    return serving


def _capture(section: _Reader) -> CaptureConfig:
    capture = CaptureConfig(
        enabled=section.boolean("enabled"),
        sample_rate=section.number("sample_rate", 0.0, 1.0),
        buffer_seconds=section.integer("buffer_seconds", 60, 900),
        # Firehose's dynamic partitioning (by model version) needs a buffer of at least 64 MiB.
        buffer_mb=section.integer("buffer_mb", 64, 128),
        feedback_max_age_days=section.integer("feedback_max_age_days", 1, 3650),
    )
    section.reject_unknown()
    return capture


def _monitoring(section: _Reader) -> MonitoringConfig:
    monitoring = MonitoringConfig(
        schedule_minutes=section.integer("schedule_minutes", 1, 24 * 60),
        window_minutes=section.integer("window_minutes", 1, 7 * 24 * 60),
        window_lag_seconds=section.optional_integer("window_lag_seconds", 0, 24 * 3600),
        min_records=section.integer("min_records", 1, 10_000_000),
        min_feedback=section.integer("min_feedback", 1, 10_000_000),
        drift_threshold=section.number("drift_threshold", 0.0, 100.0),
        drift_datapoints_to_alarm=section.integer("drift_datapoints_to_alarm", 1, 100),
        drift_evaluation_periods=section.integer("drift_evaluation_periods", 1, 100),
        quality_threshold=section.number("quality_threshold", 0.0, 1.0),
        regression_quality_threshold=section.number("regression_quality_threshold", 0.0, 1e12),
        quality_datapoints_to_alarm=section.integer("quality_datapoints_to_alarm", 1, 100),
        quality_evaluation_periods=section.integer("quality_evaluation_periods", 1, 100),
        api_5xx_rate_percent=section.number("api_5xx_rate_percent", 0.0, 100.0),
        api_p99_latency_ms=section.integer("api_p99_latency_ms", 1, 30_000),
        alarm_email=section.optional_string("alarm_email"),
    )
    for kind in ("drift", "quality"):
        datapoints, periods = f"{kind}_datapoints_to_alarm", f"{kind}_evaluation_periods"
        if getattr(monitoring, datapoints) > getattr(monitoring, periods):
            raise ConfigError(f"{section.key(datapoints)} must not exceed {section.key(periods)}")
        # The alarm's period is the monitor's schedule; CloudWatch limits how far back an alarm may look.
        span = monitoring.schedule_minutes * getattr(monitoring, periods)
        limit = MAX_ALARM_SPAN_MINUTES if monitoring.schedule_minutes >= 60 else MAX_SHORT_PERIOD_ALARM_SPAN_MINUTES
        if span > limit:
            raise ConfigError(
                f"{section.key(periods)} times {section.key('schedule_minutes')} must stay within {limit} minutes "
                f"(CloudWatch's limit on what an alarm evaluates), got {span}"
            )
    if monitoring.window_minutes < monitoring.schedule_minutes:
        raise ConfigError(
            f"{section.key('window_minutes')} must be at least {section.key('schedule_minutes')}: "
            "otherwise captured predictions between two runs are never looked at"
        )
    section.reject_unknown()
    return monitoring


def _retraining(section: _Reader) -> RetrainingConfig:
    expression = section.string("schedule_expression")
    if not re.fullmatch(r"(rate|cron)\(.+\)", expression):
        raise ConfigError(f"{section.key('schedule_expression')} must be rate(...) or cron(...), got {expression!r}")
    retraining = RetrainingConfig(
        on_alarm=section.boolean("on_alarm"),
        schedule_enabled=section.boolean("schedule_enabled"),
        schedule_expression=expression,
        on_new_data=section.boolean("on_new_data"),
        cooldown_minutes=section.integer("cooldown_minutes", 0, 30 * 24 * 60),
        include_feedback=section.boolean("include_feedback"),
        max_feedback_share=section.number("max_feedback_share", 0.0, 1.0),
        approval=_approval(section.section("approval")),
    )
    if retraining.max_feedback_share == 0:
        raise ConfigError(
            f"{section.key('max_feedback_share')} must be greater than 0 (turn feedback off with "
            f"{section.key('include_feedback')})"
        )
    section.reject_unknown()
    return retraining


def _approval(section: _Reader) -> ApprovalConfig:
    approval = ApprovalConfig(
        enabled=section.boolean("enabled"),
        # Step Functions ends an execution after a year at most.
        timeout_hours=section.integer("timeout_hours", 1, 365 * 24),
    )
    section.reject_unknown()
    return approval


def _deep_merge(base: Mapping[str, Any], override: Any, path: str) -> dict[str, Any]:
    if not isinstance(override, Mapping):
        raise ConfigError(f"{path} must be an object, got {type(override).__name__}")
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(merged[key], value, f"{path}.{key}")
        else:
            merged[key] = value
    return merged


class _Reader:
    """Typed access to one object of the context that names the full key in every error."""

    def __init__(self, value: Any, path: str) -> None:
        self._value = value
        self._path = path
        self._seen: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self._path}.{name}"

    def mapping_value(self) -> Mapping[str, Any]:
        if not isinstance(self._value, Mapping):
            raise ConfigError(f"{self._path} must be an object, got {type(self._value).__name__}")
        return self._value

    def _get(self, name: str) -> Any:
        values = self.mapping_value()
        if name not in values:
            raise ConfigError(f"{self.key(name)} is required")
        self._seen.add(name)
        return values[name]

    def section(self, name: str) -> _Reader:
        return _Reader(self._get(name), self.key(name))

    def reject_unknown(self) -> None:
        unknown = sorted(set(self.mapping_value()) - self._seen)
        if unknown:
            raise ConfigError(f"unknown key {self.key(unknown[0])} (known: {', '.join(sorted(self._seen))})")

    def string(self, name: str) -> str:
        value = self._get(name)
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{self.key(name)} must be a non-empty string, got {value!r}")
        return value

    def _is_null(self, name: str) -> bool:
        # Null and absent are the same: context objects crossing into Python through jsii lose their null keys.
        self._seen.add(name)
        return self.mapping_value().get(name) is None

    def optional_string(self, name: str) -> str | None:
        return None if self._is_null(name) else self.string(name)

    def name(self, name: str) -> str:
        value = self.string(name)
        if not _NAME.fullmatch(value):
            raise ConfigError(f"{self.key(name)} must be lowercase letters, digits and '-', got {value!r}")
        return value

    def prefix(self, name: str) -> str:
        value = self.string(name)
        if not _PREFIX.fullmatch(value):
            raise ConfigError(
                f"{self.key(name)} must be an S3 key prefix ending in '/' like 'registry/', got {value!r}"
            )
        return value

    def choice(self, name: str, options: tuple[str, ...]) -> str:
        value = self._get(name)
        if value not in options:
            raise ConfigError(f"{self.key(name)} must be one of {', '.join(options)}; got {value!r}")
        return cast(str, value)

    def boolean(self, name: str) -> bool:
        value = self._get(name)
        if not isinstance(value, bool):
            raise ConfigError(f"{self.key(name)} must be true or false, got {value!r}")
        return value

    def integer(self, name: str, low: int, high: int) -> int:
        value = self._get(name)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ConfigError(f"{self.key(name)} must be an integer from {low} to {high}, got {value!r}")
        return value

    def optional_integer(self, name: str, low: int, high: int) -> int | None:
        return None if self._is_null(name) else self.integer(name, low, high)

    def integer_in(self, name: str, allowed: tuple[int, ...]) -> int:
        value = self._get(name)
        if isinstance(value, bool) or value not in allowed:
            raise ConfigError(f"{self.key(name)} must be one of {', '.join(map(str, allowed))}; got {value!r}")
        return cast(int, value)

    def number(self, name: str, low: float, high: float) -> float:
        value = self._get(name)
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
            raise ConfigError(f"{self.key(name)} must be a number from {low} to {high}, got {value!r}")
        return float(value)

    def string_map(self, name: str) -> dict[str, str]:
        values = self.section(name).mapping_value()
        for key, value in values.items():
            # SageMaker passes every hyperparameter to the container as a string; a number here would be rejected.
            if not isinstance(value, str):
                raise ConfigError(f"{self.key(name)}.{key} must be a string (SageMaker hyperparameters are strings)")
        return dict(values)
