"""The drift monitor Lambda: its bundle, settings, least-privilege role and schedule.

Its environment is :class:`functions.monitor.settings.MonitorSettings`. The bundle is ``functions/`` (common +
monitor) and the ``monitor`` extra's wheels (numpy, matplotlib), pinned in ``functions/monitor/requirements.txt``,
both named in :data:`infra.bundling.MONITOR`.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_s3 as s3
from constructs import Construct

from functions.monitor.settings import MonitorSettings
from infra.bundling import MONITOR
from infra.config import DriftloopConfig
from infra.constructs.capture_catalog import SharedCatalog
from infra.constructs.event_dead_letters import EventDeadLetters
from infra.constructs.python_function import PythonFunction, bundled_code
from infra.grants import grant_missing_key_lookups, grant_prefix

MONITOR_HANDLER = "functions.monitor.handler.handler"
# matplotlib and numpy load in about a second; Athena counts the window, so memory does not grow with traffic.
MEMORY_MB = 1024
# EventBridge retries a failed asynchronous invocation; a retried run reads the same window (the event's time).
RETRY_ATTEMPTS = 2
# The monitor's window ends this long after the capture stream's buffer interval before the run, so that records
# still buffered when it runs are counted by the next run rather than never.
DELIVERY_MARGIN_SECONDS = 60


def window_lag_seconds(config: DriftloopConfig) -> int:
    configured = config.monitoring.window_lag_seconds
    return configured if configured is not None else config.capture.buffer_seconds + DELIVERY_MARGIN_SECONDS


class MonitorFunction(Construct):
    """The monitor, run every ``monitoring.schedule_minutes``. It reads the champion from the registry, queries the
    captures and feedback tables of ``catalog`` with Athena, writes under the report prefix, and publishes its
    metrics through its logs."""

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
        catalog: SharedCatalog,
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
            environment=MonitorSettings(
                service=self.service,
                log_level=config.log_level,
                data_bucket=data_bucket.bucket_name,
                report_prefix=data.report_prefix,
                model_bucket=model_bucket.bucket_name,
                registry_prefix=data.registry_prefix,
                window_minutes=monitoring.window_minutes,
                window_lag_seconds=window_lag_seconds(config),
                min_records=monitoring.min_records,
                min_feedback=monitoring.min_feedback,
                feedback_max_age_days=config.capture.feedback_max_age_days,
                drift_threshold=monitoring.drift_threshold,
                glue_database=catalog.database_name,
                athena_workgroup=catalog.workgroup_name,
            ).to_env(),
            memory_mb=MEMORY_MB,
            timeout=Duration.seconds(monitoring.timeout_seconds),
            log_retention_days=config.log_retention_days,
            removal_policy=removal_policy,
        )
        self.function = self.monitor.function
        self.role = self.monitor.role
        # Athena reads the tables' objects and writes the query results with the caller's permissions.
        catalog.grant_query(self.role, data_bucket)
        grant_prefix(self.role, data_bucket, data.report_prefix, "write")
        grant_prefix(self.role, model_bucket, data.registry_prefix, "read")
        # No champion yet reads as a 404 on champion.json, not a 403.
        grant_missing_key_lookups(self.role, model_bucket)
        # No CloudWatch permission: the monitor's metrics are embedded metric format lines in its own log group.
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
