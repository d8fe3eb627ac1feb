"""The approval request (a held version, or with retraining.approval every passed one): what an operator reads,
published with the task token."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, Any

from functions.workflow.errors import WorkflowError
from functions.workflow.state import ApprovalEvent, GuardResult, RegistrationResult, RunState

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient


def approval_message(state: RunState, token: str) -> dict[str, str]:
    """The SNS subject and message: what the gate saw (for a held version, why it held it), and how to answer."""
    registration = state.registration
    if registration is None:
        raise WorkflowError(f"no registration in the state ({RegistrationResult.path()}): nothing to approve")
    version = registration.version
    # What the answer's proof is signed for: this run and this version (functions.workflow.approver.Answer).
    execution = state.execution_id
    if not execution:
        raise WorkflowError(
            f"no execution id in the state ({GuardResult.path('execution_id')}): nothing to bind an answer to"
        )
    request = " ".join(shlex.quote(word) for word in ("--token", token, "--execution", execution, "--version", version))
    # The gate puts its hold reason last (functions.common.gate.decide).
    why = registration.reasons[-1] if registration.held and registration.reasons else "it passed the gate"
    lines = [
        f"driftloop asks for approval to promote {version}: {why}.",
        "",
        f"Gate metric: {registration.metric}",
        f"Challenger {version}: {_number(registration.challenger)}",
        f"Champion {registration.champion_version or '(none yet)'}: {_number(registration.champion)}",
        "Gate reasons:",
        *(f"- {reason}" for reason in registration.reasons),
        "",
        f"Trigger: {state.trigger().describe()}",
        f"Training job: {None if state.prepare is None else state.prepare.training_job_name}",
        f"Execution: {execution}",
        "",
        "Approve (promotes it):",
        f'  driftloop approve {request} --note "..."',
        "Deny (rejects it, with your reason in the decision record):",
        f'  driftloop deny {request} --reason "..."',
        "Either answer is good for this run and this version only, and records who sent it as STS vouches for it.",
        "Without an answer within the approval timeout the version is rejected.",
    ]
    return {"subject": f"driftloop: approve promoting {version}?", "message": "\n".join(lines)}


def request_approval(topic_arn: str, sns: SNSClient, event: ApprovalEvent) -> str:
    """Publish the approval request; returns the SNS message id.

    The task waits for the token: the operator's ``driftloop approve`` or ``deny`` completes it.
    """
    message = approval_message(event.state, event.token)
    response = sns.publish(TopicArn=topic_arn, Subject=message["subject"], Message=message["message"])
    return response["MessageId"]


def _number(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, (int, float)) else "n/a"
