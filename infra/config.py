"""The one typed configuration of the CDK app, read from the ``cdk.json`` context.

``driftloop`` holds the base settings, ``driftloop:stages`` the per-stage overrides (deep-merged onto the base),
and ``stage`` (``-c stage=NAME``, default ``dev``) picks the stage. The settings are frozen pydantic models: each
field's annotation says what its key must be, each model's ``_rules`` how its keys must agree. Every problem is
reported at once as one :class:`ConfigError` that names the full key, as the user wrote it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Annotated, Any, Literal, Self, cast, get_args

from annotated_types import GroupedMetadata, Interval, MinLen
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PrivateAttr,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    model_validator,
)
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError

from functions.inference.id_keys import rotation_days

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
# An IAM role or user ARN (a session of an assumed role is checked as its role's ARN, aws:PrincipalArn).
_PRINCIPAL_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:(role|user)/[\w+=,.@/-]+$")
_PREFIX = re.compile(r"^[A-Za-z0-9!_.*'()-]+(/[A-Za-z0-9!_.*'()-]+)*/$")
# A Glue database Athena names without quoting: lowercase letters, digits and '_' (Glue's limit is 255 characters).
_GLUE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,254}$")
# A SageMaker model package group name (1-63 characters), lowercase: AWS lowercases it in its packages' ARNs, which
# the IAM grants name.
_PACKAGE_GROUP = re.compile(r"^[a-z0-9](-*[a-z0-9]){0,62}$")
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
# The prediction id key rotates every rotation_days(feedback_max_age_days), and Secrets Manager rotates a secret
# at least every 1000 days.
MAX_FEEDBACK_AGE_DAYS = 1000 - rotation_days(0)
# CloudWatch alarms evaluate at most 7 days of periods, and 1 day when the period is shorter than an hour.
MAX_ALARM_SPAN_MINUTES = 7 * 24 * 60
MAX_SHORT_PERIOD_ALARM_SPAN_MINUTES = 24 * 60
# Training hyperparameters the workflow derives from serving.memory_mb and serving.timeout_seconds.
SERVING_MEMORY_HYPERPARAMETER = "serving_memory_mb"
SERVING_TIMEOUT_HYPERPARAMETER = "serving_timeout_seconds"
DERIVED_HYPERPARAMETERS = (SERVING_MEMORY_HYPERPARAMETER, SERVING_TIMEOUT_HYPERPARAMETER)


class ConfigError(ValueError):
    """The CDK context does not describe a valid driftloop deployment; ``problems`` names each broken key."""

    def __init__(self, *problems: str) -> None:
        self.problems = problems
        if len(problems) == 1:
            super().__init__(problems[0])
        else:
            super().__init__(f"{len(problems)} problems in the CDK context:" + "".join(f"\n  {p}" for p in problems))


class _ErrorType:
    """The pydantic error types this module raises."""

    REFUSED = "driftloop_refused"  # a value its field refuses
    BROKEN = "driftloop_broken"  # a rule between keys


@dataclass(frozen=True)
class _MustBe(GroupedMetadata):
    """A field's constraints and, whichever of them a value fails, the one message saying what the key must be."""

    what: str
    constraints: tuple[object, ...] = ()
    # "one of a, b; got c" reads better than "one of a, b, got c".
    separator: str = ","

    def __iter__(self) -> Iterator[object]:
        yield from self.constraints
        yield WrapValidator(self._refuse)

    def _refuse(self, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(value)
        except ValidationError:
            message = f"must be {self.what}{self.separator} got {value!r}"
            raise PydanticCustomError(_ErrorType.REFUSED, "{message}", {"message": message}) from None


def _satisfying(predicate: Callable[[Any], bool]) -> AfterValidator:
    def check(value: Any) -> Any:
        if not predicate(value):
            raise ValueError("refused")  # _MustBe says what the key must be instead
        return value

    return AfterValidator(check)


def _matching(pattern: re.Pattern[str], what: str) -> _MustBe:
    return _MustBe(what, (_satisfying(lambda value: pattern.fullmatch(value) is not None),))


def _integer(low: int, high: int) -> _MustBe:
    return _MustBe(f"an integer from {low} to {high}", (Interval(ge=low, le=high),))


def _number(low: float, high: float) -> _MustBe:
    return _MustBe(f"a number from {low} to {high}", (Interval(ge=low, le=high),))


def _one_of(options: Collection[object]) -> _MustBe:
    return _MustBe(
        f"one of {', '.join(map(str, options))}", (_satisfying(lambda value: value in options),), separator=";"
    )


Flag = Annotated[bool, _MustBe("true or false")]
Text = Annotated[str, _MustBe("a non-empty string", (MinLen(1),))]
Name = Annotated[str, _matching(_NAME, "lowercase letters, digits and '-'")]
Prefix = Annotated[str, _matching(_PREFIX, "an S3 key prefix ending in '/' like 'registry/'")]
# SageMaker passes every hyperparameter to the container as a string; a number here would be rejected.
Hyperparameter = Annotated[str, _MustBe("a string (SageMaker hyperparameters are strings)")]


def _listed(value: Any) -> Any:
    """A JSON list as a tuple: strict validation takes only tuples for a tuple field, and the config is frozen."""
    return tuple(value) if isinstance(value, list) else value


def _loc(key: str) -> tuple[int | str, ...]:
    return tuple(int(part) if part.isdigit() else part for part in key.split("."))


def _broken(key: str, message: str, *refs: str) -> InitErrorDetails:
    """A rule broken at ``key`` (dotted, relative to the model checking it; a digit part is a list index); each
    ``{}`` in ``message`` is filled with the full name of the matching ``refs`` key (relative to the same model)."""
    loc = _loc(key)
    context = {"message": message, "refs": refs, "depth": len(loc)}
    return InitErrorDetails(type=PydanticCustomError(_ErrorType.BROKEN, "{message}", context), loc=loc, input=None)


class _Model(BaseModel):
    # Strict: a bool is not an integer and "5" is not a number. Null and absent are the same for optional keys:
    # context objects crossing into Python through jsii lose their null keys.
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    @model_validator(mode="after")
    def _check_rules(self) -> Self:
        broken = list(self._rules())
        if broken:
            raise ValidationError.from_exception_data(type(self).__name__, broken)
        return self

    def _rules(self) -> Iterator[InitErrorDetails]:
        """The rules between this model's keys, checked once each key is valid on its own."""
        return iter(())


class TrainingConfig(_Model):
    # An ECR image URI, or None to build training/Dockerfile as a CDK image asset.
    image_uri: (
        Annotated[
            str,
            _matching(
                ECR_IMAGE_URI,
                "an ECR image URI (<account>.dkr.ecr.<region>.amazonaws.com/<repository>[:tag|@digest]) or null",
            ),
        ]
        | None
    ) = None
    instance_type: Annotated[
        str, _MustBe("a SageMaker instance type (ml.*)", (_satisfying(lambda value: value.startswith("ml.")),))
    ]
    instance_count: Annotated[int, _integer(1, 100)]
    volume_size_gb: Annotated[int, _integer(1, 16384)]
    max_runtime_seconds: Annotated[int, _integer(60, 28 * 24 * 3600)]
    # The whole state machine; must leave room for the job and the Lambda steps around it.
    workflow_timeout_seconds: Annotated[int, _integer(1, 365 * 24 * 3600)]
    # Read-only: the config is shared by every stack.
    hyperparameters: Annotated[Mapping[str, Hyperparameter], AfterValidator(MappingProxyType)]
    # The workflow Lambdas (guard, assemble, prepare, register, promote, reject, record_failure, release).
    step_memory_mb: Annotated[int, _integer(128, 10240)]
    step_timeout_seconds: Annotated[int, _integer(1, 900)]
    # The share of each run's rows (trusted and feedback alike) the HoldOut step keeps from the training job for
    # the Evaluate step to judge both models on. Pinned here, not a run's hyperparameter: whoever starts a run must
    # not choose how much evidence the gate sees.
    holdout_share: Annotated[float, _MustBe("a number between 0 and 1, both excluded", (Interval(gt=0, lt=1),))]
    # HoldOut and Evaluate read and score the holdout (one Lambda vCPU per 1769 MB; they run up to 15 minutes).
    evaluation_memory_mb: Annotated[int, _integer(512, 10240)]
    # The SageMaker model package group mirroring the registry; None: <name_prefix>-<stage>
    # (DriftloopConfig.model_package_group_name).
    model_package_group: (
        Annotated[
            str,
            _matching(_PACKAGE_GROUP, "lowercase letters, digits and '-' (at most 63, no '-' at either end), or null"),
        ]
        | None
    ) = None

    def _rules(self) -> Iterator[InitErrorDetails]:
        if self.workflow_timeout_seconds <= self.max_runtime_seconds:
            yield _broken(
                "workflow_timeout_seconds",
                "must exceed {} so a job that runs to its limit still ends in RecordFailure, not a state machine "
                "timeout",
                "max_runtime_seconds",
            )
        for name in DERIVED_HYPERPARAMETERS:
            if name in self.hyperparameters:
                yield _broken(f"hyperparameters.{name}", "must not be set: it is derived from the serving config")


DATA_PREFIXES = (
    "training_data_prefix",
    "capture_prefix",
    "feedback_prefix",
    "report_prefix",
    "assembled_prefix",
    "holdout_prefix",
    "athena_results_prefix",
    "artifact_prefix",
    "registry_prefix",
)


class DataConfig(_Model):
    # In the data bucket: labelled data, captured predictions, ground-truth feedback, drift reports, the data
    # sets the workflow assembles for each run, and the results of the deployment's Athena queries.
    training_data_prefix: Prefix
    capture_prefix: Prefix
    feedback_prefix: Prefix
    report_prefix: Prefix
    assembled_prefix: Prefix
    # Each run's holdout (kept from the training job) and the Evaluate step's evaluation on it.
    holdout_prefix: Prefix
    athena_results_prefix: Prefix
    # In the model bucket: SageMaker outputs and the registry.
    artifact_prefix: Prefix
    registry_prefix: Prefix
    artifact_expiry_days: Annotated[int, _integer(1, 3650)]
    noncurrent_version_expiry_days: Annotated[int, _integer(1, 3650)]
    incomplete_upload_expiry_days: Annotated[int, _integer(1, 365)]
    access_log_expiry_days: Annotated[int, _integer(1, 3650)]
    # Captured predictions, feedback and reports expire after this many days; assembled data sets with artifacts.
    capture_expiry_days: Annotated[int, _integer(1, 3650)]

    def _rules(self) -> Iterator[InitErrorDetails]:
        for key in DATA_PREFIXES:
            for other_key in DATA_PREFIXES:
                if key != other_key and getattr(self, other_key).startswith(getattr(self, key)):
                    # Lifecycle rules and IAM grants are per prefix: nesting would leak one into the other.
                    yield _broken(other_key, "must not lie under {}", key)


class AthenaConfig(_Model):
    """The Glue database describing captures and feedback, and the Athena workgroup that queries them."""

    # None: derived from the deployment, <name_prefix>_<stage> (DriftloopConfig.glue_database_name).
    glue_database: (
        Annotated[
            str,
            _matching(_GLUE_NAME, "lowercase letters, digits and '_', starting with a letter (at most 255), or null"),
        ]
        | None
    ) = None
    # The workgroup cancels any query that would scan more than this (Athena bills per byte scanned).
    bytes_scanned_cutoff_gb: Annotated[int, _integer(1, 1_000_000)]
    # Query results (copies of captured data) expire after this many days.
    results_expiry_days: Annotated[int, _integer(1, 3650)]


# What a client may send, per second (rate) and at once (burst): the stage's and each client's throttle.
Rate = Annotated[float, _number(0.1, 10000)]
Burst = Annotated[int, _integer(1, 5000)]
THROTTLE_KINDS = ("rate", "burst")


class ApiClientConfig(_Model):
    """One caller of the API (an application, a team): its own API key and usage plan, so that its requests are
    throttled and counted apart from every other client's. In iam mode the key only identifies the client for
    throttling; SigV4 still authenticates."""

    name: Name
    rate_limit: Rate
    burst_limit: Burst
    # Within the client's limits: POST /feedback trains the next model, so a flood of it is costlier.
    feedback_rate_limit: Rate
    feedback_burst_limit: Burst
    # Requests per UTC day; None: no quota.
    quota_per_day: Annotated[int, _integer(1, 1_000_000_000)] | None = None

    def _rules(self) -> Iterator[InitErrorDetails]:
        for kind in THROTTLE_KINDS:
            feedback, overall = f"feedback_{kind}_limit", f"{kind}_limit"
            if getattr(self, feedback) > getattr(self, overall):
                yield _broken(feedback, "must not exceed {}", overall)


class ServingConfig(_Model):
    auth_mode: Annotated[AuthMode, _one_of(get_args(AuthMode))]
    memory_mb: Annotated[int, _integer(128, 10240)]
    timeout_seconds: Annotated[int, _integer(1, MAX_API_TIMEOUT_SECONDS)]
    reserved_concurrency: Annotated[int, _integer(1, 10000)] | None = None
    max_instances: Annotated[int, _integer(1, 100_000)]
    max_body_bytes: Annotated[int, _integer(1, MAX_LAMBDA_PAYLOAD_BYTES)]
    refresh_seconds: Annotated[int, _integer(1, 24 * 3600)]
    # The stage's throttle caps all clients together; the clients' limits must fit in it (the rules below).
    throttle_rate_limit: Rate
    throttle_burst_limit: Burst
    # POST /feedback has its own, lower limits: labels feed training and the gate, so a flood is costlier.
    feedback_throttle_rate_limit: Rate
    feedback_throttle_burst_limit: Burst
    # Every caller sends its client's API key, in both auth modes; at least one client.
    clients: Annotated[tuple[ApiClientConfig, ...], BeforeValidator(_listed)]
    # Optional: only these IAM roles and users may call the IAM-authorised routes (besides the account restriction);
    # empty: any principal of the account holding an invoke policy.
    allowed_principals: Annotated[
        tuple[Annotated[str, _matching(_PRINCIPAL_ARN, "an IAM role or user ARN")], ...], BeforeValidator(_listed)
    ] = ()
    api_stage_name: Name
    # Whether this app sets the region-wide API Gateway CloudWatch role that access and execution logs need.
    manage_api_gateway_account: Flag

    def _rules(self) -> Iterator[InitErrorDetails]:
        for kind in THROTTLE_KINDS:
            feedback, stage = f"feedback_throttle_{kind}_limit", f"throttle_{kind}_limit"
            if getattr(self, feedback) > getattr(self, stage):
                yield _broken(feedback, "must not exceed {}", stage)
        if not self.clients:
            yield _broken("clients", "must list at least one client: every request carries a client's API key")
        seen: dict[str, int] = {}
        for index, client in enumerate(self.clients):
            if client.name in seen:
                yield _broken(
                    f"clients.{index}.name",
                    f"must be unique: {{}} is also {client.name!r}",
                    f"clients.{seen[client.name]}.name",
                )
            seen.setdefault(client.name, index)
        # Each client at its limits together must still fit in the stage's: else one client's flood hits the
        # stage throttle and the others are refused with it.
        for prefix in ("", "feedback_"):
            for kind in THROTTLE_KINDS:
                total = sum(getattr(client, f"{prefix}{kind}_limit") for client in self.clients)
                stage = f"{prefix}throttle_{kind}_limit"
                if total > getattr(self, stage):
                    yield _broken(
                        "clients",
                        f"{prefix}{kind}_limit adds up to {total:g} over the clients, more than {{}}: a client at "
                        "its limit would take the others' share of the stage",
                        stage,
                    )

    @property
    def client_rate_total(self) -> float:
        """Requests per second the clients may send together."""
        return sum(client.rate_limit for client in self.clients)


class CaptureConfig(_Model):
    """Prediction capture and ground-truth feedback, delivered to the data bucket by Kinesis Data Firehose."""

    enabled: Flag
    # Fraction of predictions captured, 0 to 1 (feedback is always recorded).
    sample_rate: Annotated[float, _number(0.0, 1.0)]
    # Firehose buffering before it writes an S3 object.
    buffer_seconds: Annotated[int, _integer(60, 900)]
    # Firehose's dynamic partitioning (by model version) needs a buffer of at least 64 MiB.
    buffer_mb: Annotated[int, _integer(64, 128)]
    # Feedback for predictions older than this is refused (their captures are no longer joined, and their ids'
    # key may be rotated away).
    feedback_max_age_days: Annotated[int, _integer(1, MAX_FEEDBACK_AGE_DAYS)]


class MonitoringConfig(_Model):
    """The scheduled monitor and the alarms it feeds."""

    schedule_minutes: Annotated[int, _integer(1, 24 * 60)]
    # The capture window each run reads, ending at the run's time.
    window_minutes: Annotated[int, _integer(1, 7 * 24 * 60)]
    # How long before the run the window ends, so records still in Firehose's buffer are read by the next run.
    # None: the capture buffer interval plus a delivery margin.
    window_lag_seconds: Annotated[int, _integer(0, 24 * 3600)] | None = None
    # The monitor Lambda's timeout: its three Athena queries each wait seconds to minutes in Athena's queue and
    # scan, and the run has to outlast them (the queries are stopped this close to it, and the run reported failed).
    timeout_seconds: Annotated[int, _integer(60, 900)]
    # Fewer captured predictions than this: the window is reported as insufficient, no drift metric is published.
    min_records: Annotated[int, _integer(1, 10_000_000)]
    # Fewer labelled predictions than this: no live-quality metric is published.
    min_feedback: Annotated[int, _integer(1, 10_000_000)]
    # Data drift alarm: max per-feature PSI above this for M of N monitor periods.
    drift_threshold: Annotated[float, _number(0.0, 100.0)]
    drift_datapoints_to_alarm: Annotated[int, _integer(1, 100)]
    drift_evaluation_periods: Annotated[int, _integer(1, 100)]
    # Live quality alarm: classification accuracy (or regression RMSE, above) worse than this for M of N periods.
    quality_threshold: Annotated[float, _number(0.0, 1.0)]
    regression_quality_threshold: Annotated[float, _number(0.0, 1e12)]
    quality_datapoints_to_alarm: Annotated[int, _integer(1, 100)]
    quality_evaluation_periods: Annotated[int, _integer(1, 100)]
    # Operational alarms (they notify, never retrain).
    api_5xx_rate_percent: Annotated[float, _number(0.0, 100.0)]
    api_p99_latency_ms: Annotated[int, _integer(1, 30_000)]
    # Optional e-mail subscription for the operations topic.
    alarm_email: Text | None = None

    def _rules(self) -> Iterator[InitErrorDetails]:
        for kind in ("drift", "quality"):
            datapoints, periods = f"{kind}_datapoints_to_alarm", f"{kind}_evaluation_periods"
            if getattr(self, datapoints) > getattr(self, periods):
                yield _broken(datapoints, "must not exceed {}", periods)
            # The alarm's period is the monitor's schedule; CloudWatch limits how far back an alarm may look.
            span = self.schedule_minutes * getattr(self, periods)
            limit = MAX_ALARM_SPAN_MINUTES if self.schedule_minutes >= 60 else MAX_SHORT_PERIOD_ALARM_SPAN_MINUTES
            if span > limit:
                yield _broken(
                    periods,
                    f"times {{}} must stay within {limit} minutes (CloudWatch's limit on what an alarm evaluates), "
                    f"got {span}",
                    "schedule_minutes",
                )
        if self.window_minutes < self.schedule_minutes:
            yield _broken(
                "window_minutes",
                "must be at least {}: otherwise captured predictions between two runs are never looked at",
                "schedule_minutes",
            )


class ApprovalConfig(_Model):
    """A person approves each promotion the gate passed (``driftloop approve`` / ``driftloop deny``)."""

    enabled: Flag
    # Without an answer within this time the version is rejected. Step Functions ends an execution after a year.
    timeout_hours: Annotated[int, _integer(1, 365 * 24)]


class RetrainingConfig(_Model):
    """What starts the training workflow, and the guardrails every start obeys."""

    # Drift and quality alarms start a run (the main loop).
    on_alarm: Flag
    # A fixed schedule, off by default; an EventBridge schedule expression such as "rate(7 days)".
    schedule_enabled: Flag
    schedule_expression: Annotated[str, _matching(re.compile(r"(rate|cron)\(.+\)"), "rate(...) or cron(...)")]
    # New objects under the training data prefix start a run, off by default.
    on_new_data: Flag
    # No new run within this many minutes of the last run's end (the lock already keeps runs one at a time).
    cooldown_minutes: Annotated[int, _integer(0, 30 * 24 * 60)]
    # Add captured predictions joined with their feedback labels to the base training data.
    include_feedback: Flag
    # At most this share of the assembled training set may come from feedback, in (0, 1].
    max_feedback_share: Annotated[float, _number(0.0, 1.0)]
    # A feedback row with a category or a number the champion was never trained on enters training only when at
    # least this many distinct callers (roles, not sessions) used that value; else it is held out and counted.
    new_value_min_callers: Annotated[int, _integer(1, 1000)]
    approval: ApprovalConfig

    def _rules(self) -> Iterator[InitErrorDetails]:
        if self.max_feedback_share == 0:
            yield _broken(
                "max_feedback_share", "must be greater than 0 (turn feedback off with {})", "include_feedback"
            )


class DriftloopConfig(_Model):
    name_prefix: Name
    log_level: Annotated[str, _one_of(LOG_LEVELS)]
    log_retention_days: Annotated[int, _one_of(LOG_RETENTION_DAYS)]
    removal: Annotated[Removal, _one_of(get_args(Removal))]
    # Only with removal=destroy: empty the buckets on delete (needs CDK's Node.js custom resource).
    auto_delete_objects: Flag
    training: TrainingConfig
    data: DataConfig
    athena: AthenaConfig
    serving: ServingConfig
    capture: CaptureConfig
    monitoring: MonitoringConfig
    retraining: RetrainingConfig
    # Picked with `-c stage=NAME`, not written under `driftloop`: load_config passes it as the validation context.
    _stage: str = PrivateAttr()

    def model_post_init(self, context: Any, /) -> None:
        self._stage = context[STAGE_KEY]

    def _rules(self) -> Iterator[InitErrorDetails]:
        if self.auto_delete_objects and self.removal != "destroy":
            yield _broken("auto_delete_objects", "requires {} = 'destroy'", "removal")
        if len(self.resource_prefix) > MAX_JOB_PREFIX_LENGTH:
            yield _broken(
                "name_prefix",
                f"and the stage together must stay within {MAX_JOB_PREFIX_LENGTH} characters: training job names "
                "are built from them",
            )
        approval, training = self.retraining.approval, self.training
        if (
            approval.enabled
            and training.workflow_timeout_seconds <= training.max_runtime_seconds + approval.timeout_hours * 3600
        ):
            yield _broken(
                "training.workflow_timeout_seconds",
                "must exceed {} plus {} when approval is enabled: the run waits for the approval inside the state "
                "machine's timeout",
                "training.max_runtime_seconds",
                "retraining.approval.timeout_hours",
            )
        serving = self.serving
        if serving.reserved_concurrency is not None:
            # Little's law: requests in flight = rate x latency, at the latency the p99 alarm still accepts.
            needed = serving.client_rate_total * self.monitoring.api_p99_latency_ms / 1000
            if needed > serving.reserved_concurrency:
                yield _broken(
                    "serving.clients",
                    f"rate_limit adds up to {serving.client_rate_total:g} requests/s over the clients: at {{}} "
                    f"that needs {needed:g} concurrent invocations, more than {{}} (lower the rates or raise it)",
                    "monitoring.api_p99_latency_ms",
                    "serving.reserved_concurrency",
                )

    @property
    def stage(self) -> str:
        return self._stage

    @property
    def resource_prefix(self) -> str:
        """``<name_prefix>-<stage>``: stack names, the state machine, training jobs and exports start with it."""
        return f"{self.name_prefix}-{self.stage}"

    @property
    def state_machine_name(self) -> str:
        return f"{self.resource_prefix}-training"

    @property
    def glue_database_name(self) -> str:
        """The deployment's Glue database: ``athena.glue_database``, else ``<name_prefix>_<stage>`` ('-' is not
        valid in a name Athena reads unquoted)."""
        return self.athena.glue_database or self.resource_prefix.replace("-", "_")

    @property
    def athena_workgroup_name(self) -> str:
        """The deployment's Athena workgroup, ``<name_prefix>-<stage>``."""
        return self.resource_prefix

    @property
    def model_package_group_name(self) -> str:
        """The deployment's SageMaker model package group: ``training.model_package_group``, else
        ``<name_prefix>-<stage>``."""
        return self.training.model_package_group or self.resource_prefix

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
    def approval_timeout_seconds(self) -> int:
        """How long the Approval state waits: ``retraining.approval.timeout_hours``, which the rules fit in the
        workflow's timeout when approval is enabled. With it off only a held version waits, for at most what the
        workflow's timeout leaves after the training job: unanswered, it is then rejected rather than cut off."""
        configured = self.retraining.approval.timeout_hours * 3600
        if self.retraining.approval.enabled:
            return configured
        return min(configured, self.training.workflow_timeout_seconds - self.training.max_runtime_seconds)

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
    if not isinstance(base, Mapping):
        raise ConfigError(f"{CONTEXT_KEY} must be an object, got {type(base).__name__}")
    override, override_key = stages[stage], f"{STAGES_KEY}.{stage}"
    if not isinstance(override, Mapping):
        raise ConfigError(f"{override_key} must be an object, got {type(override).__name__}")
    try:
        return DriftloopConfig.model_validate(_deep_merge(base, override), context={STAGE_KEY: stage})
    except ValidationError as exc:
        name = _KeyNames(override, override_key)
        raise ConfigError(*(_describe(error, name) for error in exc.errors())) from exc


def _deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


Loc = Sequence[int | str]


@dataclass(frozen=True)
class _KeyNames:
    """The full name of a key of the merged settings: under the stage's overrides if they set it, else the base."""

    override: Mapping[str, Any]
    override_key: str

    def __call__(self, loc: Loc) -> str:
        node: Any = self.override
        for part in loc:
            if isinstance(node, Mapping):
                present = part in node
            else:  # a list of sections, such as serving.clients
                present = isinstance(node, list) and isinstance(part, int) and part < len(node)
            if not present:
                return ".".join(map(str, (CONTEXT_KEY, *loc)))
            node = node[part]
        return ".".join(map(str, (self.override_key, *loc)))


def _describe(error: ErrorDetails, name: _KeyNames) -> str:
    """One line per problem, starting with (or naming) the full key."""
    loc, context = error["loc"], error.get("ctx", {})
    match error["type"]:
        case "missing":
            return f"{name(loc)} is required"
        case "extra_forbidden":
            return f"unknown key {name(loc)} (known: {', '.join(sorted(_model_at(loc[:-1]).model_fields))})"
        case "model_type" | "dict_type":
            return f"{name(loc)} must be an object, got {type(error['input']).__name__}"
        case "tuple_type":
            return f"{name(loc)} must be a list, got {type(error['input']).__name__}"
        case _ErrorType.REFUSED:
            return f"{name(loc)} {context['message']}"
        case _ErrorType.BROKEN:
            model_loc = loc[: len(loc) - context["depth"]]
            refs = (name((*model_loc, *_loc(ref))) for ref in context["refs"])
            return f"{name(loc)} {context['message'].format(*refs)}"
        case _:
            return f"{name(loc)}: {error['msg']}"


def _model_at(loc: Loc) -> type[BaseModel]:
    model: Any = DriftloopConfig
    for part in loc:
        # A list index: the list's item model (a tuple[Model, ...] field); else a section: a model.
        model = get_args(model)[0] if isinstance(part, int) else model.model_fields[str(part)].annotation
    return cast(type[BaseModel], model)
