"""The registry commands over the model bucket: versions, champion, history, register, promote, rollback, unlock.

The registry's rules (version ids, which champion a rollback puts back, compare-and-swap) are
``functions/common/registry.py``'s; these commands parse the arguments and print the outcome.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cli.command import CommandError, Commands
from functions.workflow.triggers import Trigger

if TYPE_CHECKING:
    from functions.common.registry import Decision, Registry


def add_commands(commands: Commands) -> None:
    versions = commands.add_parser("versions", help="list registered versions, or show one's model card")
    _registry_arguments(versions)
    versions.add_argument("--show", metavar="VERSION", help="print this version's model card instead of the list")
    versions.set_defaults(run=_versions)

    for name, handler, summary in (
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


def _registry_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument("--bucket", default=os.environ.get("DRIFTLOOP_MODEL_BUCKET"), help="model bucket")
    command.add_argument("--prefix", default="registry/", help="registry prefix (default registry/)")


def _model_bucket(args: argparse.Namespace) -> tuple[Any, str]:
    """An S3 client and the model bucket the registry commands work on."""
    import boto3

    if not args.bucket:
        raise CommandError("--bucket (or DRIFTLOOP_MODEL_BUCKET) is required: the stack output ModelBucketName")
    return boto3.client("s3"), args.bucket


def _registry(args: argparse.Namespace) -> Registry:
    from functions.common.registry import Registry

    return Registry(*_model_bucket(args), args.prefix)


def _versions(args: argparse.Namespace) -> int:
    registry = _registry(args)
    if args.show:
        return _show(registry, args.show)
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


def _show(registry: Registry, version: str) -> int:
    """The version's model card as Markdown; for a version registered before model cards, its record."""
    from functions.common.model_card import markdown
    from functions.common.registry import RegistryError

    try:
        record = registry.get_version(version)
    except RegistryError as exc:
        raise CommandError(f"{exc}: `driftloop versions` lists the registered ones") from None
    card = registry.get_card(version)
    if card is not None:
        print(markdown(card), end="")
        return 0
    verdict = (record.evaluation or {}).get("passed")
    print(f"{version} was registered before model cards: its record says")
    print(f"  {record.algorithm} {record.task} of {record.target}, registered {record.created_at}")
    print(f"  gate: {({True: 'passed', False: 'failed', None: 'none'})[verdict]}")
    print(f"  metrics: {', '.join(f'{k}={v:.4f}' for k, v in sorted(record.metrics.items())) or '-'}")
    print(f"  training job: {record.lineage.get('training_job_name') or '-'}")
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
    trigger = Trigger.from_decision(details)
    if trigger is not None:
        context.append(f"[{trigger.label}]")
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
    from functions.common.registry import PromotionConflict, RegistryError, is_version_id

    registry = _registry(args)
    current = registry.champion()
    if current is None:
        raise CommandError("there is no champion to roll back from: nothing has been promoted yet")
    if args.to is not None:
        if not is_version_id(args.to):
            raise CommandError(f"--to {args.to!r} is not a version id (like v20261127-111717-3f9a2c)")
        target = args.to
    else:
        target = registry.rollback_target(current)
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
    _mirror_rollback(registry, rolled_back=current.version, target=pointer.version, reason=args.reason)
    return 0


def _mirror_rollback(registry: Registry, *, rolled_back: str, target: str, reason: str) -> None:
    """SageMaker's model registry follows the rollback: the rolled-back version's package Rejected, the target's
    Approved. Versions without a package (registered by hand) are left alone; a failure is reported, the rollback
    stands (S3 is the record)."""
    import boto3

    from functions.workflow.model_packages import APPROVED, REJECTED, ModelPackages, package_arn

    packages: ModelPackages | None = None
    for version, status, why in (
        (rolled_back, REJECTED, f"driftloop: rolled back to {target}: {reason}"),
        (target, APPROVED, f"driftloop: champion again after a rollback from {rolled_back}: {reason}"),
    ):
        arn = package_arn(registry, version)
        if arn is None:
            continue
        packages = packages or ModelPackages(boto3.client("sagemaker"))
        mirrored = packages.set_status(arn, status, why)
        if mirrored.error:
            print(f"warning: the SageMaker model registry was not updated: {mirrored.error}", file=sys.stderr)
        else:
            print(f"model package {arn} of {version}: {status}")
