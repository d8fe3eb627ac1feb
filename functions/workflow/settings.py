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

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> WorkflowSettings:
        def required(name: str) -> str:
            value = env.get(name, "").strip()
            if not value:
                raise SettingsError(f"environment variable {name} is required")
            return value

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
        )
