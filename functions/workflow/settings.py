"""The workflow Lambdas' configuration, read once from the environment the CDK stack sets."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass

from functions.common.registry import DEFAULT_PREFIX


class SettingsError(ValueError):
    """A required environment variable is missing or malformed."""


@dataclass(frozen=True)
class WorkflowSettings:
    model_bucket: str
    registry_prefix: str
    data_bucket: str
    training_data_prefix: str
    artifact_prefix: str
    job_prefix: str
    hyperparameters: dict[str, str]
    # Data assembly (Assemble): the run's training set lands under <assembled_prefix><version>/.
    assembled_prefix: str = "assembled/"
    capture_prefix: str = "captures/"
    feedback_prefix: str = "feedback/"
    include_feedback: bool = False
    feedback_max_age_days: int = 30
    # Guardrails (Guard): no run starts within cooldown_minutes of the previous run's end, and a run lock older
    # than the state machine's timeout belongs to an execution that can no longer be running.
    cooldown_minutes: int = 0
    lock_timeout_seconds: int = 7200

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> WorkflowSettings:
        def required(name: str) -> str:
            value = env.get(name, "").strip()
            if not value:
                raise SettingsError(f"environment variable {name} is required")
            return value

        def integer(name: str, low: int) -> int:
            value = required(name)
            try:
                number = int(value)
            except ValueError:
                raise SettingsError(f"{name} must be an integer, got {value!r}") from None
            if number < low:
                raise SettingsError(f"{name} must be at least {low}, got {number}")
            return number

        def boolean(name: str) -> bool:
            value = required(name).lower()
            if value not in ("true", "false"):
                raise SettingsError(f"{name} must be 'true' or 'false', got {value!r}")
            return value == "true"

        raw = env.get("DRIFTLOOP_HYPERPARAMETERS", "{}")
        try:
            hyperparameters = json.loads(raw)
        except ValueError as exc:
            raise SettingsError(f"DRIFTLOOP_HYPERPARAMETERS is not JSON: {exc}") from exc
        if not isinstance(hyperparameters, dict):
            raise SettingsError("DRIFTLOOP_HYPERPARAMETERS must be a JSON object")
        return cls(
            model_bucket=required("DRIFTLOOP_MODEL_BUCKET"),
            registry_prefix=env.get("DRIFTLOOP_REGISTRY_PREFIX", DEFAULT_PREFIX),
            data_bucket=required("DRIFTLOOP_DATA_BUCKET"),
            training_data_prefix=required("DRIFTLOOP_TRAINING_DATA_PREFIX"),
            artifact_prefix=required("DRIFTLOOP_ARTIFACT_PREFIX"),
            job_prefix=required("DRIFTLOOP_JOB_PREFIX"),
            hyperparameters={str(k): str(v) for k, v in hyperparameters.items()},
            assembled_prefix=required("DRIFTLOOP_ASSEMBLED_PREFIX"),
            capture_prefix=required("DRIFTLOOP_CAPTURE_PREFIX"),
            feedback_prefix=required("DRIFTLOOP_FEEDBACK_PREFIX"),
            include_feedback=boolean("DRIFTLOOP_INCLUDE_FEEDBACK"),
            feedback_max_age_days=integer("DRIFTLOOP_FEEDBACK_MAX_AGE_DAYS", 1),
            cooldown_minutes=integer("DRIFTLOOP_COOLDOWN_MINUTES", 0),
            lock_timeout_seconds=integer("DRIFTLOOP_LOCK_TIMEOUT_SECONDS", 1),
        )
