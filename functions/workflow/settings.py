"""The workflow Lambdas' configuration, read once from the environment the CDK stack sets."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass

from functions.common.env import Env, EnvError
from functions.common.registry import DEFAULT_PREFIX

SettingsError = EnvError

DEFAULT_MAX_FEEDBACK_SHARE = 0.3
# The one setting of the request_approval function, which only publishes to this topic.
APPROVAL_TOPIC_VARIABLE = "DRIFTLOOP_APPROVAL_TOPIC_ARN"


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
    # At most this share of the training set's rows is feedback (API callers' labels are not trusted data).
    max_feedback_share: float = DEFAULT_MAX_FEEDBACK_SHARE
    # Guardrails (Guard): no run starts within cooldown_minutes of the previous run's end, and a run lock older
    # than the state machine's timeout belongs to an execution that can no longer be running.
    cooldown_minutes: int = 0
    lock_timeout_seconds: int = 7200
    # Manual approval (RequestApproval): the SNS topic operators hear approval requests on.

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> WorkflowSettings:
        read = Env(env)
        raw = env.get("DRIFTLOOP_HYPERPARAMETERS", "{}")
        try:
            hyperparameters = json.loads(raw)
        except ValueError as exc:
            raise SettingsError(f"DRIFTLOOP_HYPERPARAMETERS is not JSON: {exc}") from exc
        if not isinstance(hyperparameters, dict):
            raise SettingsError("DRIFTLOOP_HYPERPARAMETERS must be a JSON object")
        return cls(
            model_bucket=read.required("DRIFTLOOP_MODEL_BUCKET"),
            registry_prefix=read.optional("DRIFTLOOP_REGISTRY_PREFIX", DEFAULT_PREFIX),
            data_bucket=read.required("DRIFTLOOP_DATA_BUCKET"),
            training_data_prefix=read.required("DRIFTLOOP_TRAINING_DATA_PREFIX"),
            artifact_prefix=read.required("DRIFTLOOP_ARTIFACT_PREFIX"),
            job_prefix=read.required("DRIFTLOOP_JOB_PREFIX"),
            hyperparameters={str(k): str(v) for k, v in hyperparameters.items()},
            assembled_prefix=read.required("DRIFTLOOP_ASSEMBLED_PREFIX"),
            capture_prefix=read.required("DRIFTLOOP_CAPTURE_PREFIX"),
            feedback_prefix=read.required("DRIFTLOOP_FEEDBACK_PREFIX"),
            include_feedback=read.boolean("DRIFTLOOP_INCLUDE_FEEDBACK"),
            feedback_max_age_days=read.integer("DRIFTLOOP_FEEDBACK_MAX_AGE_DAYS", 1),
            max_feedback_share=_share(read, "DRIFTLOOP_MAX_FEEDBACK_SHARE"),
            cooldown_minutes=read.integer("DRIFTLOOP_COOLDOWN_MINUTES", 0),
            lock_timeout_seconds=read.integer("DRIFTLOOP_LOCK_TIMEOUT_SECONDS", 1),
        )


def _share(read: Env, name: str) -> float:
    value = read.number(name) if read.optional(name, "") else DEFAULT_MAX_FEEDBACK_SHARE
    if not 0 < value <= 1:
        raise SettingsError(f"environment variable {name} must be a fraction in (0, 1], got {value}")
    return value
