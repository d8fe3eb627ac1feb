"""The workflow Lambdas' environment contracts: the training stack renders them, the handlers read them back."""

from __future__ import annotations

from dataclasses import dataclass

from functions.common import env
from functions.common.env import EnvContract, variable


@dataclass(frozen=True, kw_only=True)
class WorkflowSettings(EnvContract):
    """The steps of a run (Guard to Release): where the registry and the data are, and the run's guardrails."""

    description = "training workflow"

    model_bucket: str = variable("DRIFTLOOP_MODEL_BUCKET")
    registry_prefix: str = variable("DRIFTLOOP_REGISTRY_PREFIX")
    data_bucket: str = variable("DRIFTLOOP_DATA_BUCKET")
    training_data_prefix: str = variable("DRIFTLOOP_TRAINING_DATA_PREFIX")
    artifact_prefix: str = variable("DRIFTLOOP_ARTIFACT_PREFIX")
    job_prefix: str = variable("DRIFTLOOP_JOB_PREFIX")
    # The configured defaults; an execution input may override only some (steps/hyperparameters.py).
    hyperparameters: dict[str, str] = variable("DRIFTLOOP_HYPERPARAMETERS", env.STRING_MAP)
    # Data assembly (Assemble): the run's training set lands under <assembled_prefix><version>/.
    assembled_prefix: str = variable("DRIFTLOOP_ASSEMBLED_PREFIX")
    capture_prefix: str = variable("DRIFTLOOP_CAPTURE_PREFIX")
    # HoldOut moves this share of the run's rows under <holdout_prefix><version>/, where Evaluate scores them.
    holdout_prefix: str = variable("DRIFTLOOP_HOLDOUT_PREFIX")
    holdout_share: float = variable("DRIFTLOOP_HOLDOUT_SHARE", env.FRACTION)
    include_feedback: bool = variable("DRIFTLOOP_INCLUDE_FEEDBACK", env.BOOLEAN)
    feedback_max_age_days: int = variable("DRIFTLOOP_FEEDBACK_MAX_AGE_DAYS", env.POSITIVE_INT)
    # At most this share of the training set's rows is feedback (API callers' labels are not trusted data).
    max_feedback_share: float = variable("DRIFTLOOP_MAX_FEEDBACK_SHARE", env.FRACTION)
    # A feedback row with a category or a number the champion was never trained on enters training only when at
    # least this many distinct callers (roles, not sessions) used that value.
    new_value_min_callers: int = variable("DRIFTLOOP_NEW_VALUE_MIN_CALLERS", env.POSITIVE_INT)
    # Where Assemble's queries run: the Glue database of the capture and feedback tables, and the Athena workgroup
    # (which sets where query results go).
    glue_database: str = variable("GLUE_DATABASE")
    athena_workgroup: str = variable("ATHENA_WORKGROUP")
    # Guardrails (Guard): no run starts within cooldown_minutes of the previous run's end, and a run lock older
    # than the state machine's timeout belongs to an execution that can no longer be running.
    cooldown_minutes: int = variable("DRIFTLOOP_COOLDOWN_MINUTES", env.NON_NEGATIVE_INT)
    lock_timeout_seconds: int = variable("DRIFTLOOP_LOCK_TIMEOUT_SECONDS", env.POSITIVE_INT)
    # The SageMaker model package group mirroring the registry (functions/workflow/model_packages.py).
    model_package_group: str = variable("DRIFTLOOP_MODEL_PACKAGE_GROUP")

    def validate(self) -> None:
        if self.max_feedback_share == 0:
            # The codec allows 0, which would silently drop all feedback: that is include_feedback=false.
            raise ValueError(
                f"DRIFTLOOP_MAX_FEEDBACK_SHARE must be a fraction in (0, 1], got {self.max_feedback_share!r}"
            )


@dataclass(frozen=True, kw_only=True)
class ApprovalSettings(EnvContract):
    """The request_approval function (retraining.approval) only publishes the request to the approvals topic."""

    description = "approval request"

    topic_arn: str = variable("DRIFTLOOP_APPROVAL_TOPIC_ARN")
