"""Where the keys that mint and verify prediction ids (:class:`functions.common.records.IdKey`) come from.

Deployed, a secret in AWS Secrets Manager that the serving stack creates holds the key (its value, generated, is
never in an environment variable or a log): its ``AWSCURRENT`` version mints, ``AWSCURRENT`` and ``AWSPREVIOUS``
verify. Rotation (:mod:`functions.inference.key_rotation`, every :func:`rotation_days`) thus keeps an id
verifiable for as long as ``/feedback`` accepts it anyway. The functions that serve predictions read both versions
at start (Lambda's init phase), again when they last did :data:`REFRESH` ago, so that minting moves to a new key
soon after a rotation, and when an id names a key tag they do not hold (a key newer than theirs), at most once
per :data:`RETRY`, so that made-up tags do not turn each request into a Secrets Manager call.

Without a secret (``driftloop serve``, tests) the process generates its own key (:data:`LOCAL_KEYS`): its ids
are valid as long as the process runs. boto3 is imported only when a secret is read: a directory-served function
never loads it.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from functions.common.records import FixedKeys, IdKey, IdKeys
from functions.inference.telemetry import Telemetry

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

CURRENT, PREVIOUS, PENDING = "AWSCURRENT", "AWSPREVIOUS", "AWSPENDING"
# Seconds: the longest a function mints with a key after it stopped being current.
REFRESH = 3600.0
# Seconds: how soon after a read an unknown tag may cause another.
RETRY = 10.0
# A scheduled rotation happens within a window that closes at the end of its day, so two rotations may lie up to
# a day closer than the interval.
_ROTATION_WINDOW_DAYS = 1

LOCAL_KEYS = FixedKeys(IdKey.generate())


def rotation_days(feedback_max_age_days: int) -> int:
    """Days between two rotations of the key, derived from the oldest prediction ``/feedback`` accepts.

    A key mints while it is current, and up to :data:`REFRESH` after (a function's cached copy); it verifies until
    the rotation after next drops it from ``AWSPREVIOUS``. So an id it minted stays verifiable for its whole
    ``feedback_max_age_days`` when two rotations lie at least that plus :data:`REFRESH` apart; rotations lie at
    least the interval less the rotation window apart.
    """
    return feedback_max_age_days + math.ceil(REFRESH / 86400) + _ROTATION_WINDOW_DAYS


def read_key(client: SecretsManagerClient, secret_id: str, stage: str, version_id: str | None = None) -> IdKey | None:
    """The key of the secret's version at ``stage`` (and ``version_id``, if given); None when no version is there
    or it has no value yet. ValueError when its value is too short to be a key."""
    from botocore.exceptions import ClientError

    request = {"SecretId": secret_id, "VersionStage": stage} | ({"VersionId": version_id} if version_id else {})
    try:
        value = client.get_secret_value(**request).get("SecretString")
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return None
        raise
    return None if value is None else IdKey(value.encode())


class SecretKeys:
    """The secret's current and previous keys, cached (see the module's docstring for when they are re-read)."""

    def __init__(
        self,
        client: SecretsManagerClient,
        secret_id: str,
        telemetry: Telemetry,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._secret_id = secret_id
        self._telemetry = telemetry
        self._clock = clock
        self._lock = threading.Lock()
        # At start a failure is the function's: without a key it can neither mint nor verify.
        self._keys = self._read()
        self._read_at = clock()

    def _read(self) -> FixedKeys:
        current = read_key(self._client, self._secret_id, CURRENT)
        if current is None:
            raise LookupError(f"the secret {self._secret_id} has no {CURRENT} value")
        previous = read_key(self._client, self._secret_id, PREVIOUS)
        return FixedKeys(current, *([previous] if previous else []))

    def _reread(self, after: float) -> bool:
        """Read the keys again if the last read was ``after`` seconds ago; False when it was not, or failed (the
        keys held stay)."""
        if self._clock() - self._read_at < after or not self._lock.acquire(blocking=False):
            return False
        try:
            self._read_at = self._clock()
            self._keys = self._read()
            return True
        except Exception as exc:  # whatever failed, the keys held still mint and verify
            self._telemetry.exception("re-reading the prediction id keys failed; keeping the keys held", exc)
            return False
        finally:
            self._lock.release()

    def minting(self) -> IdKey:
        self._reread(REFRESH)
        return self._keys.minting()

    def verifying(self, tag: str) -> IdKey | None:
        key = self._keys.verifying(tag)
        if key is None and self._reread(RETRY):
            key = self._keys.verifying(tag)
        return key


def id_keys(secret_id: str | None, telemetry: Telemetry) -> IdKeys:
    """The deployment's keys when a secret is configured, else this process's own."""
    if secret_id is None:
        return LOCAL_KEYS
    import boto3

    return SecretKeys(boto3.client("secretsmanager"), secret_id, telemetry)
