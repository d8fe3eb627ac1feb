"""The monitor Lambda's environment contract: the monitor function construct renders it, the handler reads it."""

from __future__ import annotations

from dataclasses import dataclass

from functions.common.env import NON_NEGATIVE_INT, NUMBER, POSITIVE_INT, EnvContract, variable
from functions.common.registry import DEFAULT_PREFIX


@dataclass(frozen=True, kw_only=True)
class MonitorSettings(EnvContract):
    """Where the monitor reads and writes, and the window it evaluates. ``service`` is the ``Service`` dimension of
    its metrics and the service of its log lines."""

    description = "monitor"

    data_bucket: str = variable("DRIFTLOOP_DATA_BUCKET")
    report_prefix: str = variable("DRIFTLOOP_REPORT_PREFIX")
    model_bucket: str = variable("DRIFTLOOP_MODEL_BUCKET")
    registry_prefix: str = variable("DRIFTLOOP_REGISTRY_PREFIX", default=DEFAULT_PREFIX)
    # The window a run reads: window_minutes ending window_lag_seconds before the run, so that records still in
    # the capture stream's buffer when the run starts are read by the next run instead of being missed.
    window_minutes: int = variable("DRIFTLOOP_WINDOW_MINUTES", POSITIVE_INT)
    window_lag_seconds: int = variable("DRIFTLOOP_WINDOW_LAG_SECONDS", NON_NEGATIVE_INT)
    min_records: int = variable("DRIFTLOOP_MIN_RECORDS", POSITIVE_INT)
    min_feedback: int = variable("DRIFTLOOP_MIN_FEEDBACK", POSITIVE_INT)
    # Feedback about predictions older than this is not joined (the API refuses it anyway).
    feedback_max_age_days: int = variable("DRIFTLOOP_FEEDBACK_MAX_AGE_DAYS", POSITIVE_INT)
    drift_threshold: float = variable("DRIFTLOOP_DRIFT_THRESHOLD", NUMBER)
    # Where the window's counts are queried: the deployment's Glue database (functions.common.catalog's tables)
    # and Athena workgroup (which holds the results location).
    glue_database: str = variable("GLUE_DATABASE")
    athena_workgroup: str = variable("ATHENA_WORKGROUP")
