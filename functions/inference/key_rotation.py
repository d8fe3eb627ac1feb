"""The rotation function of the prediction id key's secret (``functions.inference.key_rotation.handler``).

Secrets Manager calls it four times per rotation, each with the version being made (``ClientRequestToken``,
staged ``AWSPENDING``):

- ``createSecret``: a new random key (:data:`functions.common.records.MIN_KEY_BYTES`, hex), unless the version
  already has one (a retried call), whose tag differs from the current and the previous key's, so that a tag
  names one key even to a function that still holds the old pair;
- ``setSecret``: nothing; no other service holds the key, the serving functions read it themselves;
- ``testSecret``: the pending value is a key, tagged apart from the current one;
- ``finishSecret``: ``AWSCURRENT`` moves to the new version; Secrets Manager stages the old one ``AWSPREVIOUS``,
  where it still verifies the ids it minted (:func:`functions.inference.id_keys.rotation_days`).

A version that is already current has nothing left to do (a retried finish).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any

import boto3

from functions.common.records import MIN_KEY_BYTES, IdKey
from functions.inference.id_keys import CURRENT, PENDING, PREVIOUS, read_key

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient


class RotationError(RuntimeError):
    """The rotation cannot go on: Secrets Manager marks it failed and the current key stays."""


@cache
def _client() -> SecretsManagerClient:
    return boto3.client("secretsmanager")


def handler(event: dict[str, Any], _context: object) -> None:
    rotate(_client(), event["Step"], event["SecretId"], event["ClientRequestToken"])


def rotate(client: SecretsManagerClient, step: str, secret_id: str, token: str) -> None:
    """Run one step of the rotation that makes version ``token`` of ``secret_id`` current."""
    if step not in STEPS:
        raise RotationError(f"unknown rotation step {step!r}: expected one of {', '.join(STEPS)}")
    stages = client.describe_secret(SecretId=secret_id).get("VersionIdsToStages", {})
    if token not in stages:
        raise RotationError(f"version {token} is not a version of the secret {secret_id}")
    if CURRENT in stages[token]:
        return
    if PENDING not in stages[token]:
        raise RotationError(f"version {token} of the secret {secret_id} is not staged {PENDING}")
    STEPS[step](client, secret_id, token, stages)


def _tags(client: SecretsManagerClient, secret_id: str) -> set[str]:
    """The tags of the keys that verify now."""
    return {key.tag for stage in (CURRENT, PREVIOUS) if (key := read_key(client, secret_id, stage))}


def _create(client: SecretsManagerClient, secret_id: str, token: str, _stages: dict[str, list[str]]) -> None:
    if read_key(client, secret_id, PENDING, token) is not None:
        return
    taken = _tags(client, secret_id)
    value = secrets.token_hex(MIN_KEY_BYTES)
    while IdKey(value.encode()).tag in taken:
        value = secrets.token_hex(MIN_KEY_BYTES)
    client.put_secret_value(SecretId=secret_id, ClientRequestToken=token, SecretString=value, VersionStages=[PENDING])


def _set(_client: SecretsManagerClient, _secret_id: str, _token: str, _stages: dict[str, list[str]]) -> None:
    return


def _test(client: SecretsManagerClient, secret_id: str, token: str, _stages: dict[str, list[str]]) -> None:
    try:
        key = read_key(client, secret_id, PENDING, token)
    except ValueError as exc:
        raise RotationError(f"the pending value of {secret_id} is not a key: {exc}") from None
    if key is None:
        raise RotationError(f"version {token} of the secret {secret_id} has no value: createSecret did not run")
    current = read_key(client, secret_id, CURRENT)
    if current is not None and current.tag == key.tag:
        raise RotationError(f"the pending key of {secret_id} has the current key's tag {key.tag}")


def _finish(client: SecretsManagerClient, secret_id: str, token: str, stages: dict[str, list[str]]) -> None:
    current = next(version for version, names in stages.items() if CURRENT in names)
    client.update_secret_version_stage(
        SecretId=secret_id, VersionStage=CURRENT, MoveToVersionId=token, RemoveFromVersionId=current
    )


STEPS: dict[str, Callable[[SecretsManagerClient, str, str, dict[str, list[str]]], None]] = {
    "createSecret": _create,
    "setSecret": _set,
    "testSecret": _test,
    "finishSecret": _finish,
}
