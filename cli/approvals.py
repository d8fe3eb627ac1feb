"""``driftloop approve`` and ``deny``: answer the approval request a training run waits for (a held version,
or with retraining.approval every passed one)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import TYPE_CHECKING

from cli.command import CommandError, Commands

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient


def add_commands(commands: Commands) -> None:
    approve = _approval_command(
        commands,
        "approve",
        _approve,
        help="approve the promotion a training run is waiting for",
        description="Answers the approval request of a training run (a held version, or with retraining.approval "
        "every passed one): the run promotes its version, recording the note and who approved, as STS finds it "
        "from a GetCallerIdentity request the command presigns with your credentials for this run, this version "
        "and an approval (it writes no identity of its own).",
    )
    approve.add_argument("--note", help="recorded with the promotion")
    deny = _approval_command(
        commands,
        "deny",
        _deny,
        help="deny the promotion a training run is waiting for",
        description="Answers the approval request of a training run: the run records the version as rejected, "
        "with the reason and who denied, as STS finds it from a request presigned as for approve.",
    )
    deny.add_argument("--reason", required=True, help="recorded with the rejection")


def _approval_command(
    commands: Commands,
    name: str,
    run: Callable[[argparse.Namespace], int],
    *,
    help: str,
    description: str,
) -> argparse.ArgumentParser:
    command = commands.add_parser(name, help=help, description=description)
    command.add_argument("--token", required=True, help="the task token from the approval message")
    # The proof is signed for these two: a proof for another run or version fails when the run verifies it.
    command.add_argument("--execution", required=True, help="the run's execution ARN, from the approval message")
    command.add_argument("--version", required=True, help="the version the message asks about")
    command.set_defaults(run=run)
    return command


def _approve(args: argparse.Namespace) -> int:
    from functions.workflow.state import Approval

    proof = _proof(args, approved=True, words=args.note)
    output = Approval.approving(args.note, proof)
    _answer_approval(lambda sfn: sfn.send_task_success(taskToken=args.token, output=json.dumps(output)))
    print("approved: the run verifies who signed the answer with STS, records it and promotes its version")
    return 0


def _deny(args: argparse.Namespace) -> int:
    from functions.workflow.state import APPROVAL_DENIED, Approval

    if not args.reason.strip():
        raise CommandError("--reason must say why: it is recorded with the rejection")
    cause = Approval.denying(args.reason, _proof(args, approved=False, words=args.reason))
    _answer_approval(lambda sfn: sfn.send_task_failure(taskToken=args.token, error=APPROVAL_DENIED, cause=cause))
    print("denied: the run verifies who signed the answer with STS, records it and rejects the version")
    return 0


def _proof(args: argparse.Namespace, *, approved: bool, words: str | None) -> str:
    """A proof of who answers, signed with these credentials for this answer only: no name of ours goes into the
    answer, and the run records the identity STS finds in the proof."""
    import os

    import boto3

    from functions.workflow import approver
    from functions.workflow.errors import WorkflowError

    try:
        endpoint = approver.sts_endpoint(os.environ, boto3.session.Session().region_name)
    except WorkflowError as exc:
        raise CommandError(f"{exc}: set AWS_REGION to the deployment's region") from exc
    answer = approver.Answer(args.execution, args.version, approved, words)
    return approver.sign(boto3.client("sts", endpoint_url=endpoint), answer)


def _answer_approval(send: Callable[[SFNClient], object]) -> None:
    """Send the answer; a token that is unknown, already answered or timed out is the user's to know about."""
    import boto3
    from botocore.exceptions import ClientError

    try:
        send(boto3.client("stepfunctions"))
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in ("InvalidToken", "TaskDoesNotExist", "TaskTimedOut"):
            raise CommandError(
                f"the approval request is no longer waiting ({code}): it was answered already, timed out, or the "
                "token is not one of an approval message"
            ) from exc
        raise
