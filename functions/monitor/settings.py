"""The monitor Lambda's configuration, read once from the environment the monitoring stack sets."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from functions.common.env import Env, EnvError
from functions.common.registry import DEFAULT_PREFIX

SettingsError = EnvError


@dataclass(frozen=True)
class MonitorSettings:
    data_bucket: str
    capture_prefix: str
    feedback_prefix: str
    report_prefix: str
    model_bucket: str
    registry_prefix: str
    # The window a run reads: window_minutes ending window_lag_seconds before the run, so that records still in
    # the capture stream's buffer when the run starts are read by the next run instead of being missed.
    window_minutes: int
    window_lag_seconds: int
    min_records: int
    min_feedback: int
    # Feedback about predictions older than this is not joined (the API refuses it anyway).
    feedback_max_age_days: int
    drift_threshold: float
    namespace: str
    service: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> MonitorSettings:
        read = Env(env)
        return cls(
            data_bucket=read.required("DRIFTLOOP_DATA_BUCKET"),
            capture_prefix=read.required("DRIFTLOOP_CAPTURE_PREFIX"),
            feedback_prefix=read.required("DRIFTLOOP_FEEDBACK_PREFIX"),
            report_prefix=read.required("DRIFTLOOP_REPORT_PREFIX"),
            model_bucket=read.required("DRIFTLOOP_MODEL_BUCKET"),
            registry_prefix=read.optional("DRIFTLOOP_REGISTRY_PREFIX", DEFAULT_PREFIX),
            window_minutes=read.integer("DRIFTLOOP_WINDOW_MINUTES", 1),
            window_lag_seconds=read.integer("DRIFTLOOP_WINDOW_LAG_SECONDS", 0),
            min_records=read.integer("DRIFTLOOP_MIN_RECORDS", 1),
            min_feedback=read.integer("DRIFTLOOP_MIN_FEEDBACK", 1),
            feedback_max_age_days=read.integer("DRIFTLOOP_FEEDBACK_MAX_AGE_DAYS", 1),
            drift_threshold=read.number("DRIFTLOOP_DRIFT_THRESHOLD"),
            namespace=read.required("DRIFTLOOP_METRIC_NAMESPACE"),
            service=read.required("DRIFTLOOP_SERVICE"),
        )
