"""The drift monitor Lambda: its bundle, settings, least-privilege role and schedule.

The bundle is ``functions/`` (common + monitor) and the ``monitor`` extra's wheels (numpy, matplotlib), pinned in
``functions/monitor/requirements.txt``, both named in :data:`infra.bundling.MONITOR`.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.bundling import MONITOR
from infra.config import METRIC_NAMESPACE, DriftloopConfig
from infra.constructs.event_dead_letters import EventDeadLetters
from infra.constructs.python_function import PythonFunction, bundled_code
from infra.grants import grant_missing_key_lookups, grant_prefix

MONITOR_HANDLER = "functions.monitor.handler.handler"
# matplotlib and numpy load in about a second; a window of a few hundred thousand records fits in memory.
MEMORY_MB = 1024
TIMEOUT = Duration.minutes(5)
# EventBridge retries a failed asynchronous invocation; a retried run reads the same window (the event's time).
RETRY_ATTEMPTS = 2
# The monitor's window ends this long after the capture stream's buffer interval before the run, so that records
# still buffered when it runs are counted by the next run rather than never.
DELIVERY_MARGIN_SECONDS = 60


def window_lag_seconds(config: DriftloopConfig) -> int:
    configured = config.monitoring.window_lag_seconds
    return configured if configured is not None else config.capture.buffer_seconds + DELIVERY_MARGIN_SECONDS


class MonitorFunction(Construct):
    """The monitor, run every ``monitoring.schedule_minutes``. It reads the champion from the registry and the
    captures and feedback prefixes, writes under the report prefix, and publishes metrics in the driftloop
    namespace only."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DriftloopConfig,
        data_bucket: s3.IBucket,
        model_bucket: s3.IBucket,
        removal_policy: RemovalPolicy,
        dead_letters: EventDeadLetters,
    ) -> None:
        super().__init__(scope, construct_id)
        data, monitoring = config.data, config.monitoring
        self.service = config.service_name("monitor")
        self.monitor = PythonFunction(
            self,
            "Function",
            code=bundled_code(MONITOR),
            handler=MONITOR_HANDLER,
            description="driftloop monitor: drift and live quality of the champion, as metrics and a report",
            environment={
                "DRIFTLOOP_DATA_BUCKET": data_bucket.bucket_name,
                "DRIFTLOOP_CAPTURE_PREFIX": data.capture_prefix,
                "DRIFTLOOP_FEEDBACK_PREFIX": data.feedback_prefix,
                "DRIFTLOOP_REPORT_PREFIX": data.report_prefix,
                "DRIFTLOOP_MODEL_BUCKET": model_bucket.bucket_name,
                "DRIFTLOOP_REGISTRY_PREFIX": data.registry_prefix,
                "DRIFTLOOP_WINDOW_MINUTES": str(monitoring.window_minutes),
                "DRIFTLOOP_WINDOW_LAG_SECONDS": str(window_lag_seconds(config)),
                "DRIFTLOOP_MIN_RECORDS": str(monitoring.min_records),
                "DRIFTLOOP_MIN_FEEDBACK": str(monitoring.min_feedback),
                "DRIFTLOOP_FEEDBACK_MAX_AGE_DAYS": str(config.capture.feedback_max_age_days),
                "DRIFTLOOP_DRIFT_THRESHOLD": repr(monitoring.drift_threshold),
                "DRIFTLOOP_METRIC_NAMESPACE": METRIC_NAMESPACE,
                "DRIFTLOOP_SERVICE": self.service,
                "MPLCONFIGDIR": "/tmp/matplotlib",  # noqa: S108 - the only writable place in Lambda
                "LOG_LEVEL": config.log_level,
            },
            memory_mb=MEMORY_MB,
            timeout=TIMEOUT,
            log_retention_days=config.log_retention_days,
            removal_policy=removal_policy,
        )
        self.function = self.monitor.function
        self.role = self.monitor.role
        grant_prefix(self.role, data_bucket, data.capture_prefix, "read")
        grant_prefix(self.role, data_bucket, data.feedback_prefix, "read")
        grant_prefix(self.role, data_bucket, data.report_prefix, "write")
        grant_prefix(self.role, model_bucket, data.registry_prefix, "read")
        # No champion yet reads as a 404 on champion.json, not a 403.
        grant_missing_key_lookups(self.role, model_bucket)
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": METRIC_NAMESPACE}},
            )
        )
        self.schedule = events.Rule(
            self,
            "Schedule",
            description=f"Runs the driftloop monitor every {monitoring.schedule_minutes} minutes",
            schedule=events.Schedule.rate(Duration.minutes(monitoring.schedule_minutes)),
            targets=[
                targets.LambdaFunction(
                    self.function,
                    # A run older than one period is superseded by the next one: give up on it and keep it.
                    **dead_letters.target_options(
                        retry_attempts=RETRY_ATTEMPTS, max_event_age=Duration.minutes(monitoring.schedule_minutes)
                    ),
                )
            ],
        )
