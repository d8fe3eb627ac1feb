"""The monitor Lambda's configuration, read once from the environment the monitoring stack sets."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from functions.common.registry import DEFAULT_PREFIX


class SettingsError(ValueError):
    """A required environment variable is missing or malformed."""


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
        def required(name: str) -> str:
            value = env.get(name, "").strip()
            if not value:
                raise SettingsError(f"environment variable {name} is required")
            return value

        def integer(name: str, minimum: int) -> int:
            raw = required(name)
            try:
                value = int(raw)
            except ValueError:
                raise SettingsError(f"environment variable {name} must be an integer, got {raw!r}") from None
            if value < minimum:
                raise SettingsError(f"environment variable {name} must be at least {minimum}, got {value}")
            return value

        def number(name: str) -> float:
            raw = required(name)
            try:
                return float(raw)
            except ValueError:
                raise SettingsError(f"environment variable {name} must be a number, got {raw!r}") from None

        return cls(
            data_bucket=required("DRIFTLOOP_DATA_BUCKET"),
            capture_prefix=required("DRIFTLOOP_CAPTURE_PREFIX"),
            feedback_prefix=required("DRIFTLOOP_FEEDBACK_PREFIX"),
            report_prefix=required("DRIFTLOOP_REPORT_PREFIX"),
            model_bucket=required("DRIFTLOOP_MODEL_BUCKET"),
            registry_prefix=env.get("DRIFTLOOP_REGISTRY_PREFIX", DEFAULT_PREFIX),
            window_minutes=integer("DRIFTLOOP_WINDOW_MINUTES", 1),
            window_lag_seconds=integer("DRIFTLOOP_WINDOW_LAG_SECONDS", 0),
            min_records=integer("DRIFTLOOP_MIN_RECORDS", 1),
            min_feedback=integer("DRIFTLOOP_MIN_FEEDBACK", 1),
            feedback_max_age_days=integer("DRIFTLOOP_FEEDBACK_MAX_AGE_DAYS", 1),
            drift_threshold=number("DRIFTLOOP_DRIFT_THRESHOLD"),
            namespace=required("DRIFTLOOP_METRIC_NAMESPACE"),
            service=required("DRIFTLOOP_SERVICE"),
        )
