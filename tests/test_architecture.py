"""The rooms' rules, checked on the import graph of every first-party module (tests excluded).

The graph is read from the source with ``ast``, not by importing it: imports at module level and inside functions
count, those under ``if TYPE_CHECKING:`` do not (they never run). Only edges between first-party modules are kept.
"""

from __future__ import annotations

import ast
import graphlib
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Each first-party top-level package and the folder it lives in: the LocalStack extension is its own distribution
# (top-level package driftloop_localstack) kept under localcloud/extension.
EXTENSION = ROOT / "localcloud" / "extension"
PACKAGES = {
    "infra": ROOT,
    "functions": ROOT,
    "training": ROOT,
    "cli": ROOT,
    "localcloud": ROOT,
    "driftloop_localstack": EXTENSION,
}
LOCAL_CLOUD = {"localcloud", "driftloop_localstack"}

Graph = dict[str, set[str]]


def modules() -> dict[str, Path]:
    """Every first-party module's dotted name and file."""
    found: dict[str, Path] = {}
    for package, base in PACKAGES.items():
        for path in sorted((base / package).rglob("*.py")):
            if package == "localcloud" and path.is_relative_to(EXTENSION):
                continue
            parts = path.relative_to(base).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class _Imports(ast.NodeVisitor):
    """The dotted names a module's imports may refer to: ``from a import b`` may mean module ``a.b`` or ``a``."""

    def __init__(self, package: str) -> None:
        self.package = package
        self.names: set[str] = set()

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            for statement in node.orelse:
                self.visit(statement)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        self.names.update(alias.name for alias in node.names)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            parts = self.package.split(".")
            base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
        else:
            base = node.module or ""
        self.names.update(f"{base}.{alias.name}" for alias in node.names)


def imported_names(source: str, module: str, *, is_package: bool = False) -> set[str]:
    visitor = _Imports(module if is_package else module.rpartition(".")[0])
    visitor.visit(ast.parse(source))
    return visitor.names


def resolve(name: str, known: set[str]) -> str | None:
    """The first-party module a dotted name refers to: itself, or the longest module it lies in."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


@cache
def import_graph() -> Graph:
    found = modules()
    known = set(found)
    graph: Graph = {}
    for module, path in found.items():
        names = imported_names(path.read_text(), module, is_package=path.name == "__init__.py")
        graph[module] = {target for name in names if (target := resolve(name, known)) and target != module}
    return graph


def cycle(graph: Graph) -> list[str] | None:
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as error:
        return list(error.args[1])
    return None


def violations(graph: Graph, importer: str, forbidden: set[str]) -> list[str]:
    return sorted(
        f"{module} imports {target}"
        for module, targets in graph.items()
        if module.split(".")[0] == importer
        for target in targets
        if target.split(".")[0] in forbidden
    )


def test_the_import_graph_counts_function_level_imports_and_skips_type_checking_ones() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "import a.b\n"
        "from . import sibling\n"
        "from ..up import name\n"
        "if TYPE_CHECKING:\n"
        "    from hidden import only_for_mypy\n"
        "else:\n"
        "    import shown\n"
        "def run():\n"
        "    from deferred import thing\n"
    )

    names = imported_names(source, "pkg.sub.mod")

    assert {"a.b", "pkg.sub.sibling", "pkg.up.name", "shown", "deferred.thing"} <= names
    assert not {name for name in names if name.startswith("hidden")}


def test_the_import_graph_covers_every_first_party_package() -> None:
    graph = import_graph()

    assert {module.split(".")[0] for module in graph} == set(PACKAGES)
    assert "functions.common.bundle" in graph["functions.common.registry"]


def test_no_first_party_modules_import_each_other_in_a_cycle() -> None:
    found = cycle(import_graph())

    assert found is None, "import cycle: " + " -> ".join(found or ())


def test_a_cycle_is_found_and_named_by_its_modules() -> None:
    assert cycle({"a": {"b"}, "b": set()}) is None
    found = cycle({"a": {"b"}, "b": {"a"}, "c": set()})
    assert found is not None and set(found) == {"a", "b"}


def test_the_cdk_app_imports_neither_the_cli_nor_the_local_cloud() -> None:
    assert violations(import_graph(), "infra", {"cli", *LOCAL_CLOUD}) == []


def test_the_lambda_code_imports_nothing_but_itself_among_first_party_packages() -> None:
    # The Lambda bundles hold only functions/: anything else it imports is missing in AWS.
    assert violations(import_graph(), "functions", {"infra", "cli", "training", *LOCAL_CLOUD}) == []
