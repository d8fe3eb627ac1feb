"""``driftloop local ...``: a local AWS (LocalStack without Docker) through its manager, ``localcloud/cloud.py``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict

from cli.command import CommandError, Commands


def add_commands(commands: Commands) -> None:
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

    def show_help(args: argparse.Namespace) -> int:
        local.print_help()
        return 2

    local.set_defaults(run=show_help)


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
