"""``driftloop batch``: score every CSV object under an S3 prefix with the champion (or a named version) through the
batch scoring state machine, wait for it, and print its counts and failures (README, "Batch scoring").

Exit status: 0 when every CSV object was scored (bad rows do not count: they are reported), 1 when any object
failed, the run did, or the prefix held nothing.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from cli.command import CommandError, Commands
from functions.batch.job import DEFAULT_TOLERATED_FAILURE_PERCENT
from functions.batch.layout import BATCH

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient

DEFAULT_STATE_MACHINE = "driftloop-dev-batch"
POLL_SECONDS = 2.0


def add_commands(commands: Commands) -> None:
    command = commands.add_parser(
        "batch",
        help="score every CSV object under an S3 prefix, predictions written beside each",
        description="Starts the batch scoring state machine (the serving stack's BatchStateMachineArn output) on "
        f"a prefix under s3://<data bucket>/{BATCH.input_prefix}, waits for it and prints its counts and failures. "
        f"Predictions of <input>/<path>.csv go to s3://<data bucket>/{BATCH.output_prefix}<path>.csv"
        ".predictions.jsonl, one JSON line per row. Exits 1 when any object or the run failed.",
    )
    command.add_argument("--input", required=True, help=f"s3://<data bucket>/{BATCH.input_prefix}<name>/")
    command.add_argument("--version", help="the registry version to score with (default: the champion)")
    command.add_argument(
        "--capture", action="store_true", help="capture every prediction like the API's (monitoring, feedback)"
    )
    command.add_argument(
        "--tolerate",
        type=float,
        default=DEFAULT_TOLERATED_FAILURE_PERCENT,
        metavar="PERCENT",
        help="stop the run once more than this share of objects failed (default %(default)g)",
    )
    command.add_argument(
        "--state-machine",
        default=DEFAULT_STATE_MACHINE,
        help="its ARN, or its name in the current account and region (default %(default)s)",
    )
    command.add_argument("--no-wait", action="store_true", help="print the execution ARN and return")
    command.set_defaults(run=_batch)


def _batch(args: argparse.Namespace) -> int:
    import boto3

    sfn = boto3.client("stepfunctions")
    arn = args.state_machine if args.state_machine.startswith("arn:") else _arn_of(args.state_machine)
    request = {"input": args.input, "capture": args.capture, "tolerated_failure_percent": args.tolerate}
    if args.version:
        request["version"] = args.version
    execution = start(sfn, arn, request)
    print(f"started {execution}")
    if args.no_wait:
        return 0
    return report(wait(sfn, execution))


def _arn_of(name: str) -> str:
    import boto3

    session = boto3.session.Session()
    account = session.client("sts").get_caller_identity()["Account"]
    return f"arn:aws:states:{session.region_name}:{account}:stateMachine:{name}"


def start(sfn: SFNClient, state_machine: str, request: Mapping[str, Any]) -> str:
    name = f"batch-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:8]}"
    try:
        return sfn.start_execution(stateMachineArn=state_machine, name=name, input=json.dumps(request))["executionArn"]
    except sfn.exceptions.StateMachineDoesNotExist as exc:
        raise CommandError(
            f"no batch state machine {state_machine}: pass --state-machine (the serving stack's "
            "BatchStateMachineArn output)"
        ) from exc


def wait(
    sfn: SFNClient, execution: str, *, sleep: Callable[[float], None] = time.sleep, poll: float = POLL_SECONDS
) -> Mapping[str, Any]:
    while (described := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
        sleep(poll)
    return described


def report(execution: Mapping[str, Any]) -> int:
    """Print what the run did; the exit status."""
    status = execution["status"]
    if status != "SUCCEEDED":
        print(f"batch run {status}: {execution.get('error', '')}: {execution.get('cause', '')}")
        run = str(execution["executionArn"]).rsplit(":", 1)[-1]
        print(f"  its summary, when it got that far: s3://<data bucket>/{BATCH.summary_key(run)}")
        return 1
    summary = json.loads(execution["output"])
    if not summary["objects"]:
        print(f"nothing to score: no object under {summary['input']}")
        return 1
    print(summary["message"])
    print(f"model version {summary['model_version']}; predictions under {summary['output']}")
    for failure in summary["failures"]:
        print(f"  failed: {failure['key']}: {failure['error']}")
    if summary["failed_objects"] > len(summary["failures"]):
        print(f"  ... every failure is listed in {BATCH.summary_key(summary['run'])}")
    return 1 if summary["failed_objects"] else 0
