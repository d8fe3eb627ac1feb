"""The one LocalStack version the start-up hooks were written against, and the check each hook runs first.

The hooks patch LocalStack internals; on any other version, provider or signature they refuse to install and
abort LocalStack's start-up, rather than change its behaviour silently. Bump the version only together with the
lock file (localcloud/requirements.txt) and after the integration tests pass on the new one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

PINNED_LOCALSTACK_VERSION: Final[str] = "2026.3.0"


def version_problems() -> list[str]:
    from localstack import version

    if version.__version__ != PINNED_LOCALSTACK_VERSION:
        return [f"localstack-core is {version.__version__}, not {PINNED_LOCALSTACK_VERSION}"]
    return []


def provider_problems(service: str, accepted: Sequence[str]) -> list[str]:
    from localstack import config

    provider = config.SERVICE_PROVIDER_CONFIG.get_provider(service)
    if provider not in accepted:
        return [f"{service} uses provider {provider!r}, not {' or '.join(repr(name) for name in accepted)}"]
    return []


def refuse_unless_clean(hook: str, problems: Sequence[str]) -> None:
    if problems:
        raise RuntimeError(
            f"{hook} patches LocalStack internals as they are in localstack-core {PINNED_LOCALSTACK_VERSION}: "
            + "; ".join(problems)
        )
