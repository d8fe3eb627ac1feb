"""`driftloop`: the command line for people who run the loop.

Local work (generate data, train, serve, predict) needs no AWS account. The registry commands talk to the
model bucket through boto3's usual configuration (profile, region, ``AWS_ENDPOINT_URL`` for a local cloud).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient

    from functions.common.registry import Decision

DESCRIPTION = """\
driftloop: train, gate, promote and serve tabular models, and keep them healthy.

Local (no AWS account needed):
  driftloop data --rows 5000 --out data/train.csv        generate a synthetic churn data set
  driftloop train --data data/train.csv --out runs/v1    train like SageMaker would, locally
  driftloop serve --model-dir runs/v1/model              serve the bundle over HTTP (same app as Lambda)
  driftloop predict --url http://127.0.0.1:8080 --json '{"instances": [...]}'

Registry (the model bucket in S3; honours AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL):
  driftloop versions --bucket B      every registered version with its metrics
  driftloop champion --bucket B      the live version
  driftloop history --bucket B       every decision: triggered, skipped, registered, promoted, rejected, failed,
                                     rolled_back (with what triggered the run)
  driftloop register / promote       register a bundle archive, promote a version (compare-and-swap)
  driftloop rollback [--to V]        put the previous champion (or V) back live (compare-and-swap)
  driftloop unlock --execution ARN   release the run lock of an execution stopped by hand

Approval (retraining.approval; the token is in the approval message; needs states:SendTaskSuccess/Failure):
  driftloop approve --token T [--note N]     let the waiting run promote its version
  driftloop deny --token T --reason R        reject it instead

Local AWS (LocalStack without Docker, after `make local-setup`):
  driftloop local up / down / status / logs / env    start, stop and inspect it; `env` prints its variables
  driftloop local deploy                             deploy the CDK app (stage local) into it with cdklocal
  driftloop demo [--keep]                            the closed loop on its own local AWS, narrated (make demo)
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except CommandError as exc:
        print(f"driftloop: {exc}", file=sys.stderr)
        return 1


class CommandError(Exception):
    """A user-facing failure: printed without a traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="driftloop", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    data = commands.add_parser("data", help="generate a synthetic churn data set (CSV)")
    data.add_argument("--rows", type=int, default=5000, help="number of rows (default 5000)")
    data.add_argument("--out", type=Path, required=True, help="CSV file to write")
    data.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    data.add_argument("--covariate-drift", type=float, default=0.0, help="0 (none) to 1 (strong) feature shift")
    data.add_argument("--concept-drift", type=float, default=0.0, help="0 (none) to 1 (strong) change of the rule")
    data.set_defaults(run=_data)

    train = commands.add_parser(
        "train",
        help="train locally with the SageMaker container contract",
        description="Lays out a SageMaker-style base directory under --out and runs the training program on it. "
        "The bundle lands in OUT/model, metrics and the gate verdict in OUT/output/data/evaluation.json.",
    )
    train.add_argument("--data", type=Path, required=True, action="append", help="CSV/Parquet file or folder")
    train.add_argument("--out", type=Path, required=True, help="base directory to create (like /opt/ml)")
    train.add_argument("--champion", type=Path, help="the live model: a bundle folder or model.tar.gz")
    train.add_argument(
        "--hp",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="a hyperparameter (repeatable), e.g. --hp target=churned --hp algorithm=random_forest",
    )
    train.set_defaults(run=_train)

    serve = commands.add_parser("serve", help="serve a model over HTTP with the inference app")
    source = serve.add_mutually_exclusive_group(required=True)
    source.add_argument("--model-dir", type=Path, help="an extracted bundle folder")
    source.add_argument("--bucket", help="serve the registry's champion from this model bucket")
    serve.add_argument("--prefix", default="registry/", help="registry prefix (default registry/)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--refresh-seconds", type=float, default=60.0, help="champion re-check interval")
    serve.set_defaults(run=_serve)

    for route, summary, example in (
        ("predict", "send a prediction request and print the answer", '{"instances": [{...}]}'),
        (
            "feedback",
            "send ground-truth labels for earlier predictions (SigV4)",
            '{"prediction_id": "...", "label": "1"}',
        ),
    ):
        command = commands.add_parser(route, help=summary)
        command.add_argument("--url", required=True, help="API base URL (local or the deployed stage URL)")
        body = command.add_mutually_exclusive_group(required=True)
        body.add_argument("--json", help=f"request body, e.g. '{example}'")
        body.add_argument("--file", type=Path, help="file holding the request body")
        command.add_argument("--api-key", default=os.environ.get("DRIFTLOOP_API_KEY"), help="for api_key auth mode")
        command.add_argument(
            "--sign", action="store_true", help="sign with SigV4 (iam auth mode) using boto3 credentials"
        )
        command.set_defaults(run=_post_route, route=route)

    for name, handler, summary in (
        ("versions", _versions, "list registered versions"),
        ("champion", _champion, "show the live version"),
        ("history", _history, "print the decision record"),
    ):
        command = commands.add_parser(name, help=summary)
        _registry_arguments(command)
        command.set_defaults(run=handler)

    register = commands.add_parser("register", help="register a model.tar.gz as a new version")
    _registry_arguments(register)
    register.add_argument("--archive", type=Path, required=True, help="model.tar.gz (or a bundle folder)")
    register.set_defaults(run=_register)

    promote = commands.add_parser("promote", help="make a registered version the champion")
    _registry_arguments(promote)
    promote.add_argument("--version", required=True)
    promote.add_argument("--reason", default="promoted by hand", help="recorded with the decision")
    promote.set_defaults(run=_promote)

    rollback = commands.add_parser(
        "rollback",
        help="put the previous champion (or --to VERSION) back live",
        description="Moves the champion back, by compare-and-swap against the live champion, and records a "
        "rolled_back decision. Without --to, the target is the champion before the current one: the decision "
        "record is replayed (a rollback undoes the promotion it rolls back, so rolling back twice goes two "
        "champions back), falling back to the pointer's previous_version.",
    )
    _registry_arguments(rollback)
    rollback.add_argument("--to", metavar="VERSION", help="a registered version (default: the previous champion)")
    rollback.add_argument("--reason", default="rolled back by hand", help="recorded with the decision")
    rollback.set_defaults(run=_rollback)

    unlock = commands.add_parser(
        "unlock",
        help="release the run lock of an execution that was stopped by hand",
        description="A training execution stopped by hand (or by the state machine's timeout) runs no Release "
        "state, so its run lock blocks new runs until it goes stale after training.workflow_timeout_seconds. "
        "This releases it now, only if EXECUTION (the ARN, as `driftloop history` and the skipped decisions name "
        "it) still holds it. Stop the execution first: the lock is what keeps two runs from promoting at once.",
    )
    _registry_arguments(unlock)
    unlock.add_argument("--execution", required=True, metavar="EXECUTION", help="the execution ARN holding the lock")
    unlock.set_defaults(run=_unlock)

    approve = _approval_command(
        commands,
        "approve",
        _approve,
        help="approve the promotion a training run is waiting for",
        description="Answers the approval request of a training run (retraining.approval): the run promotes its "
        "version, recording who approved (the caller's identity, from STS) and the note.",
    )
    approve.add_argument("--note", help="recorded with the promotion")
    deny = _approval_command(
        commands,
        "deny",
        _deny,
        help="deny the promotion a training run is waiting for",
        description="Answers the approval request of a training run: the run records the version as rejected, "
        "with the reason.",
    )
    deny.add_argument("--reason", required=True, help="recorded with the rejection")

    demo = commands.add_parser(
        "demo",
        help="the closed loop on a local AWS: deploy, train, serve, drift, alarm, retrain, promote (narrated)",
    )
    demo.add_argument("--keep", action="store_true", help="leave the local AWS running afterwards")
    demo.set_defaults(run=_demo)
    _local_commands(commands)
    return parser


def _approval_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    run: Callable[[argparse.Namespace], int],
    *,
    help: str,
    description: str,
) -> argparse.ArgumentParser:
    command = commands.add_parser(name, help=help, description=description)
    command.add_argument("--token", required=True, help="the task token from the approval message")
    command.set_defaults(run=run)
    return command


def _registry_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument("--bucket", default=os.environ.get("DRIFTLOOP_MODEL_BUCKET"), help="model bucket")
    command.add_argument("--prefix", default="registry/", help="registry prefix (default registry/)")


# -- local work ----------------------------------------------------------------------------------------------


def _data(args: argparse.Namespace) -> int:
    from training import synthetic

    frame = synthetic.generate(args.rows, args.seed, args.covariate_drift, args.concept_drift)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out, index=False)
    print(f"wrote {len(frame)} rows x {frame.shape[1]} columns to {args.out}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from training import local_run

    hyperparameters = dict(_key_value(item) for item in args.hp)
    try:
        layout = local_run.stage(args.out, args.data, hyperparameters, champion=args.champion)
    except FileNotFoundError as exc:
        raise CommandError(str(exc)) from exc
    code = local_run.run(layout)
    print(local_run.summary(layout))
    return code


def _key_value(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise CommandError(f"--hp takes KEY=VALUE, got {item!r}")
    return key, value


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    if args.model_dir is not None:
        os.environ["DRIFTLOOP_MODEL_DIR"] = str(args.model_dir.resolve())
    else:
        os.environ["DRIFTLOOP_MODEL_BUCKET"] = args.bucket
        os.environ["DRIFTLOOP_REGISTRY_PREFIX"] = args.prefix
    os.environ["DRIFTLOOP_REFRESH_SECONDS"] = str(args.refresh_seconds)
    uvicorn.run("functions.inference.app:app", host=args.host, port=args.port, log_level="warning")
    return 0


def _post_route(args: argparse.Namespace) -> int:
    body = args.json.encode() if args.json is not None else args.file.read_bytes()
    status, answer = post_json(f"{args.url.rstrip('/')}/{args.route}", body, api_key=args.api_key, sign=args.sign)
    print(f"HTTP {status}")
    print(json.dumps(answer, indent=2))
    return 0 if status < 400 else 1


def post_json(url: str, body: bytes, *, api_key: str | None = None, sign: bool = False) -> tuple[int, Any]:
    """POST a JSON body; returns (status, parsed answer). Signs with SigV4 for IAM-authorised APIs."""
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["x-api-key"] = api_key
    if sign:
        headers = _sigv4_headers(url, body, headers)
    return _send(urllib.request.Request(url, data=body, headers=headers, method="POST"))  # noqa: S310


def get_json(url: str) -> tuple[int, Any]:
    return _send(urllib.request.Request(url, method="GET"))  # noqa: S310 (the user's URL)


def _send(request: urllib.request.Request) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        payload = error.read()
        try:
            return error.code, json.loads(payload)
        except ValueError:
            return error.code, payload.decode(errors="replace")
    except urllib.error.URLError as error:
        raise CommandError(f"cannot reach {request.full_url}: {error.reason}") from error


def _sigv4_headers(url: str, body: bytes, headers: dict[str, str]) -> dict[str, str]:
    import boto3
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    session = boto3.Session()
    credentials = session.get_credentials()
    if credentials is None:
        raise CommandError("--sign needs AWS credentials (profile, environment or instance role)")
    request = AWSRequest(method="POST", url=url, data=body, headers=headers)
    SigV4Auth(credentials, "execute-api", session.region_name or "us-east-1").add_auth(request)
    return dict(request.headers.items())


# -- registry ------------------------------------------------------------------------------------------------


def _model_bucket(args: argparse.Namespace) -> tuple[Any, str]:
    """An S3 client and the model bucket the registry commands work on."""
    import boto3

    if not args.bucket:
        raise CommandError("--bucket (or DRIFTLOOP_MODEL_BUCKET) is required: the stack output ModelBucketName")
    return boto3.client("s3"), args.bucket


def _registry(args: argparse.Namespace) -> Any:
    from functions.common.registry import Registry

    return Registry(*_model_bucket(args), args.prefix)


def _versions(args: argparse.Namespace) -> int:
    registry = _registry(args)
    champion = registry.champion()
    records = registry.list_versions()
    if not records:
        print("no versions registered yet")
    for record in records:
        live = "*" if champion and champion.version == record.version else " "
        metrics = ", ".join(f"{name}={value:.4f}" for name, value in sorted(record.metrics.items()))
        verdict = (record.evaluation or {}).get("passed")
        gate = {True: "gate passed", False: "gate failed", None: "no gate"}[verdict]
        print(f"{live} {record.version}  {record.algorithm:<22} {gate:<11}  {metrics}")
    return 0


def _champion(args: argparse.Namespace) -> int:
    champion = _registry(args).champion()
    if champion is None:
        print("no champion yet")
        return 1
    print(json.dumps(champion.to_dict(), indent=2))
    return 0


def _history(args: argparse.Namespace) -> int:
    decisions = _registry(args).decisions()
    if not decisions:
        print("no decisions recorded yet")
    for decision in decisions:
        print(format_decision(decision))
    return 0


def format_decision(decision: Decision) -> str:
    """One line: time, action, version, then what started the run or what was replaced, then the reasons."""
    details = decision.details
    context = []
    trigger = details.get("trigger")
    if isinstance(trigger, dict):
        source = str(trigger.get("source", "unknown"))
        context.append(f"[{source}{' ' + str(trigger['alarm_name']) if trigger.get('alarm_name') else ''}]")
    if decision.action in ("promoted", "rolled_back") and details.get("previous_version"):
        context.append(f"[was {details['previous_version']}]")
    text = " ".join([*context, "; ".join(decision.reasons)]).strip()
    return f"{decision.time}  {decision.action:<11} {decision.version or '-':<24} {text}".rstrip()


def _register(args: argparse.Namespace) -> int:
    from functions.common.bundle import pack_archive
    from functions.common.registry import RegistryError, new_version_id

    archive = args.archive
    if archive.is_dir():
        archive = args.archive.parent / f"{args.archive.name}.tar.gz"
        pack_archive(args.archive, archive)
    version = new_version_id()
    try:
        record = _registry(args).register(version, archive, lineage={"source": f"driftloop register {args.archive}"})
    except RegistryError as exc:
        raise CommandError(str(exc)) from exc
    _registry(args).record("registered", version, ["registered by hand"], {"sha256": record.sha256})
    print(f"registered {version} (sha256 {record.sha256[:12]}…)")
    return 0


def _promote(args: argparse.Namespace) -> int:
    from functions.common.registry import RegistryError

    registry = _registry(args)
    try:
        pointer = registry.promote(args.version, expected=registry.champion(), reasons=(args.reason,))
    except RegistryError as exc:
        raise CommandError(str(exc)) from exc
    print(f"champion is now {pointer.version} (was {pointer.previous_version or 'none'})")
    return 0


VERSION_PATTERN = r"v\d{8}-\d{6}-[0-9a-f]{6}"


def _unlock(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime, timedelta

    from functions.workflow.lock import RunLock

    # Releasing never looks at the lock's age, so the timeout is not needed here.
    lock = RunLock(*_model_bucket(args), args.prefix, timeout=timedelta(0))
    released, why = lock.release(args.execution, now=datetime.now(UTC), outcome="released by hand")
    if not released:
        raise CommandError(why)
    print(why)
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from functions.common.registry import PromotionConflict, RegistryError

    registry = _registry(args)
    current = registry.champion()
    if current is None:
        raise CommandError("there is no champion to roll back from: nothing has been promoted yet")
    if args.to is not None:
        if not re.fullmatch(VERSION_PATTERN, args.to):
            raise CommandError(f"--to {args.to!r} is not a version id (like v20261127-111717-3f9a2c)")
        target = args.to
    else:
        target = rollback_target(registry.decisions(), current.version) or current.previous_version
        if target is None:
            raise CommandError(
                f"{current.version} is the only champion there has been: nothing to roll back to "
                "(pass --to VERSION to promote another registered version)"
            )
    if target == current.version:
        raise CommandError(f"{target} is already the champion")
    try:
        registry.get_version(target)
    except RegistryError:
        raise CommandError(
            f"cannot roll back to {target}: no such version is registered (driftloop versions lists them)"
        ) from None
    try:
        pointer = registry.promote(
            target,
            expected=current,
            action="rolled_back",
            reasons=(args.reason,),
            details={"previous_version": current.version, "by": "driftloop rollback"},
        )
    except PromotionConflict:
        raise CommandError(
            f"the champion changed while rolling back from {current.version}; nothing was changed: check "
            "`driftloop champion` and run the rollback again if it is still wanted"
        ) from None
    except RegistryError as exc:
        raise CommandError(f"cannot roll back to {target}: {exc}") from exc
    print(f"rolled back: champion is now {pointer.version} (was {current.version})")
    return 0


def rollback_target(decisions: Sequence[Decision], current: str) -> str | None:
    """The champion before ``current``, replaying promotions and rollbacks in order.

    A promotion pushes its version; a rollback to a version on the stack pops back to it (what was rolled back is
    not a candidate any more), otherwise it pushes it. The target is the entry below ``current`` on top.
    """
    stack: list[str] = []
    for decision in decisions:
        if decision.action == "promoted" and decision.version:
            if not stack or stack[-1] != decision.version:
                stack.append(decision.version)
        elif decision.action == "rolled_back" and decision.version:
            if decision.version in stack:
                del stack[stack.index(decision.version) + 1 :]
            else:
                stack.append(decision.version)
    if len(stack) >= 2 and stack[-1] == current:
        return stack[-2]
    return None


# -- approval -----------------------------------------------------------------------------------------------------


def _approve(args: argparse.Namespace) -> int:
    import boto3

    identity = boto3.client("sts").get_caller_identity()["Arn"]
    output = {"approved": True, "by": identity, "note": args.note}
    _answer_approval(lambda sfn: sfn.send_task_success(taskToken=args.token, output=json.dumps(output)))
    print(f"approved by {identity}: the run promotes its version")
    return 0


def _deny(args: argparse.Namespace) -> int:
    from functions.workflow.steps import APPROVAL_DENIED

    if not args.reason.strip():
        raise CommandError("--reason must say why: it is recorded with the rejection")
    _answer_approval(lambda sfn: sfn.send_task_failure(taskToken=args.token, error=APPROVAL_DENIED, cause=args.reason))
    print("denied: the run records the version as rejected")
    return 0


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


def _demo(args: argparse.Namespace) -> int:
    from infra import demo

    return demo.run(keep=args.keep)


# -- local AWS (localcloud/cloud.py) -----------------------------------------------------------------------------


def _local_commands(commands: Any) -> None:
    local = commands.add_parser(
        "local",
        help="a local AWS: LocalStack without Docker (up, down, status, logs, env, deploy)",
        description="Runs LocalStack's open-source runtime from .cache/localstack-venv (make local-setup) with "
        "driftloop's extension: Python Lambdas run as local processes, S3 data stays in the instance's directory "
        "(.cache/localstack/NAME). DRIFTLOOP_LOCAL_ENDPOINT=URL uses an already-running LocalStack instead.",
    )
    actions = local.add_subparsers(title="actions", metavar="ACTION")
    up = actions.add_parser("up", help="start an instance (or show the running one) and print its environment")
    up.add_argument("--port", type=int, help="default: 4566 for the default instance, else free; 0 = any free port")
    up.add_argument("--services", help="comma-separated AWS services (default: what driftloop uses)")
    up.add_argument("--timeout", type=float, default=90.0, help="seconds to wait until it is ready")
    up.set_defaults(run=_local_up)
    down = actions.add_parser("down", help="stop an instance (SIGTERM, then SIGKILL after --grace seconds)")
    down.add_argument("--grace", type=float, default=15.0)
    down.add_argument("--purge", action="store_true", help="also delete its directory (data and log)")
    down.set_defaults(run=_local_down)
    status = actions.add_parser("status", help="state, endpoint and services of one instance, or of all")
    status.add_argument("--all", action="store_true", help="every instance under .cache/localstack")
    status.set_defaults(run=_local_status)
    logs = actions.add_parser("logs", help="print LocalStack's log")
    logs.add_argument("-n", "--lines", type=int, default=50)
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines (Ctrl-C stops)")
    logs.set_defaults(run=_local_logs)
    env = actions.add_parser("env", help='print the variables that point AWS clients at it: eval "$(... env)"')
    env.set_defaults(run=_local_env)
    deploy = actions.add_parser("deploy", help="deploy the CDK app (stage local) to a running instance with cdklocal")
    deploy.set_defaults(run=_local_deploy)
    for action in (up, down, status, logs, env, deploy):
        action.add_argument("--name", default="default", help="instance name (default: default)")
    local.set_defaults(run=lambda args: local.print_help() or 2)


def _local_up(args: argparse.Namespace) -> int:
    from localcloud import cloud

    services = [part.strip() for part in args.services.split(",")] if args.services else None
    try:
        running = cloud.start(args.name, port=args.port, services=services, timeout=args.timeout)
    except cloud.LocalCloudError as exc:
        raise CommandError(str(exc)) from exc
    where = f"pid {running.pid}, log {running.log_file}" if running.managed else "external, not managed here"
    print(f"local AWS {running.name!r} is up at {running.endpoint} ({where})", file=sys.stderr)
    print("# point AWS clients at it:", file=sys.stderr)
    print(cloud.shell_exports(running.client_env()))
    return 0


def _local_deploy(args: argparse.Namespace) -> int:
    from localcloud import cloud, deploy

    running = cloud.status(args.name).cloud
    if running is None:
        raise CommandError(f"local AWS {args.name!r} is not running: start it with `driftloop local up`")
    try:
        deployment = deploy.deploy(running)
    except cloud.LocalCloudError as exc:
        raise CommandError(str(exc)) from exc
    print(json.dumps({k: v for k, v in asdict(deployment).items() if k != "outputs"}, indent=2))
    return 0


def _local_down(args: argparse.Namespace) -> int:
    from localcloud import cloud

    try:
        stopped = cloud.stop(args.name, grace=args.grace)
        if args.purge:
            cloud.remove(args.name)
    except cloud.LocalCloudError as exc:
        raise CommandError(str(exc)) from exc
    print(f"local AWS {args.name!r} {'stopped' if stopped else 'was not running'}")
    return 0


def _local_status(args: argparse.Namespace) -> int:
    import time

    from localcloud import cloud

    names = cloud.instance_names() if args.all else [args.name]
    if not names:
        print("no local AWS instance")
    code = 0
    for name in names:
        state = cloud.status(name)
        running = state.cloud
        line = f"{name}: {state.state}"
        if running is not None:
            line += f"  {running.endpoint}"
            if running.pid is not None:
                line += f"  pid {running.pid}"
            if running.started_at is not None and state.state in ("running", "starting"):
                line += f"  up {time.time() - running.started_at:.0f} s"
        print(line)
        services = state.health.get("services", {})
        available = sorted(name for name, value in services.items() if value in ("available", "running"))
        if available:
            print(f"  services: {', '.join(available)}")
        if state.state not in ("running", "external"):
            code = 1
    return code


def _local_logs(args: argparse.Namespace) -> int:
    import time

    from localcloud import cloud

    log = cloud.Layout().instance(args.name).log_file
    if not log.exists():
        raise CommandError(f"no log for instance {args.name!r} ({log})")
    print(cloud.log_tail(log, args.lines))
    if args.follow:
        with log.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            try:
                while True:
                    chunk = handle.read()
                    if chunk:
                        sys.stdout.write(chunk.decode(errors="replace"))
                        sys.stdout.flush()
                    else:
                        time.sleep(0.5)
            except KeyboardInterrupt:
                pass
    return 0


def _local_env(args: argparse.Namespace) -> int:
    from localcloud import cloud

    state = cloud.status(args.name)
    if state.cloud is None or state.state not in ("running", "external"):
        raise CommandError(f"local AWS {args.name!r} is {state.state}: start it with `driftloop local up`")
    print(cloud.shell_exports(state.cloud.client_env()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
