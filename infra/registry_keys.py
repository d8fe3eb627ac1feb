"""The registry's key layout (``functions/common/registry.py``, ``functions/workflow/lock.py``) as the IAM grants
and the model bucket's policy need it: one key or prefix per kind of object, under the configured registry prefix.
"""

from __future__ import annotations

from functions.common.registry import CHAMPION_FILE, DECISIONS_FOLDER, VERSIONS_FOLDER
from functions.workflow.lock import LOCK_KEY


def champion_key(registry_prefix: str) -> str:
    """The champion pointer: replaced by compare-and-swap, by Promote and the operator CLI only."""
    return registry_prefix + CHAMPION_FILE


def versions_prefix(registry_prefix: str) -> str:
    """Immutable versions, created by Register (and ``driftloop register``)."""
    return registry_prefix + VERSIONS_FOLDER


def decisions_prefix(registry_prefix: str) -> str:
    """The append-only decision record."""
    return registry_prefix + DECISIONS_FOLDER


def run_lock_prefix(registry_prefix: str) -> str:
    """Where the run lock lives: the only registry keys Guard and Release change."""
    return registry_prefix + LOCK_KEY.rsplit("/", 1)[0] + "/"


def history_prefixes(registry_prefix: str) -> tuple[str, ...]:
    """The prefixes whose objects are written once and never replaced."""
    return versions_prefix(registry_prefix), decisions_prefix(registry_prefix)
