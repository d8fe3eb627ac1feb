"""``driftloop constraints``: an operator's own data-quality constraints (SageMaker Model Monitor's
``constraints.json``, edited or from an existing Model Monitor baseline), stored in the registry for one version or
for every version. The monitor checks the champion's captures against them instead of its training's.

The format and its checks are ``functions/common/constraints.py``'s; the keys ``functions/common/registry.py``'s.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cli.command import CommandError, Commands
from cli.registry import _registry, _registry_arguments

if TYPE_CHECKING:
    from functions.common.constraints import Constraints
    from functions.common.registry import Registry


def add_commands(commands: Commands) -> None:
    group = commands.add_parser(
        "constraints",
        help="set, show or remove your own data-quality constraints (Model Monitor's constraints.json)",
        description="The monitor checks the champion's captures against data-quality constraints: yours for its "
        "version, else yours for every version, else those its training wrote. A file is checked before it is "
        "stored; with --version, against that version's features too.",
    )
    actions = group.add_subparsers(title="actions", metavar="ACTION", required=True)
    put = actions.add_parser("set", help="check and store a constraints.json (replacing the one stored before)")
    put.add_argument("file", type=Path, metavar="FILE", help="a constraints.json")
    show = actions.add_parser("show", help="print the constraints the monitor applies to a version, and their origin")
    remove = actions.add_parser("remove", help="remove your stored constraints (training's apply again)")
    for command, handler, scope in (
        (put, _set, "for this version only (default: every version)"),
        (show, _show, "this version (default: the champion)"),
        (remove, _remove, "yours for this version (default: those for every version)"),
    ):
        _registry_arguments(command)
        command.add_argument("--version", help=scope)
        command.set_defaults(run=handler)


def _checked(registry: Registry, path: Path, version: str | None) -> Constraints:
    from datetime import UTC, datetime

    from functions.common.constraints import ConstraintsError, read_constraints
    from functions.monitor.data_quality import constraints_query
    from functions.monitor.queries import Window

    try:
        constraints = read_constraints(path.read_bytes())
        # The monitor's query must fit Athena's limit.
        now = datetime.now(UTC)
        constraints_query(Window(version or "any", now, now), constraints)
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror}") from exc
    except ConstraintsError as exc:
        raise CommandError(f"{path}: {exc}") from exc
    if version is not None:
        problems = _mismatches(constraints, _feature_types(registry, version))
        if problems:
            raise CommandError(f"{path} does not fit version {version}: {'; '.join(problems)}")
    return constraints


def _metadata(registry: Registry, version: str) -> dict[str, Any]:
    from functions.common.registry import RegistryError

    try:
        registry.get_version(version)
        return registry.get_metadata(version)
    except RegistryError as exc:
        raise CommandError(f"--version {version}: {exc} (driftloop versions lists them)") from exc


def _feature_types(registry: Registry, version: str) -> dict[str, str]:
    features = _metadata(registry, version).get("features", ())
    return {str(feature["name"]): str(feature["type"]) for feature in features}


def _mismatches(constraints: Constraints, types: dict[str, str]) -> list[str]:
    """Constraints on features the model does not take, or checking numbers of a categorical feature."""
    problems = []
    for feature in constraints.features:
        kind = types.get(feature.name)
        if kind is None:
            problems.append(f"feature {feature.name!r} is not one of the model's ({', '.join(sorted(types))})")
        elif feature.numeric and kind != "numeric":
            problems.append(f"feature {feature.name!r} is {kind}, not {feature.inferred_type}")
    return problems


def _set(args: argparse.Namespace) -> int:
    registry = _registry(args)
    constraints = _checked(registry, args.file, args.version)
    key = registry.put_constraints(constraints.to_json(), args.version)
    scope = f"version {args.version}" if args.version else "every version"
    print(f"stored constraints for {scope} ({len(constraints.features)} features) at s3://{registry.bucket}/{key}")
    champion = registry.champion()
    if args.version is None and champion is not None:
        for problem in _mismatches(constraints, _feature_types(registry, champion.version)):
            print(f"warning: the champion {champion.version}: {problem}")
    return 0


def _show(args: argparse.Namespace) -> int:
    registry = _registry(args)
    version = args.version
    if version is None:
        champion = registry.champion()
        if champion is None:
            raise CommandError("there is no champion yet: pass --version")
        version = champion.version
    from functions.common.registry import RegistryError

    try:
        found = registry.constraints(version, _metadata(registry, version).get("files") or {})
    except RegistryError as exc:
        raise CommandError(str(exc)) from exc
    if found is None:
        print(f"no constraints apply to {version}: its bundle has none and none is stored")
        return 1
    source, text = found
    print(f"# {version}: {source}")
    print(text.decode())
    return 0


def _remove(args: argparse.Namespace) -> int:
    registry = _registry(args)
    key = registry.delete_constraints(args.version)
    print(f"removed s3://{registry.bucket}/{key}")
    return 0
