"""The prediction id keys in Secrets Manager (moto): rotation's four steps, which key versions verify, when the
functions re-read them, and why the rotation interval keeps every id /feedback accepts verifiable."""

from __future__ import annotations

import io
import itertools
import secrets
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from moto import mock_aws
from moto.secretsmanager.models import FakeSecret, secretsmanager_backends

from functions.common.records import IdKey, InvalidPredictionId, new_prediction_ids, prediction_time
from functions.inference import key_rotation
from functions.inference.id_keys import CURRENT, PREVIOUS, REFRESH, RETRY, SecretKeys, read_key, rotation_days
from functions.inference.key_rotation import RotationError, rotate
from functions.inference.settings import InferenceSettings
from functions.inference.telemetry import Telemetry
from tests.inference.conftest import MakeApi, RecordingSink

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

REGION = "eu-west-1"
# moto's account.
ACCOUNT = "123456789012"
STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")


@pytest.fixture
def client() -> Iterator[SecretsManagerClient]:
    with mock_aws():
        yield boto3.client("secretsmanager", region_name=REGION)


@pytest.fixture
def secret(client: SecretsManagerClient) -> str:
    # As the serving stack creates it: a generated 64-character value.
    value = client.get_random_password(PasswordLength=64, ExcludePunctuation=True)["RandomPassword"]
    return client.create_secret(Name="driftloop-dev-id-keys", SecretString=value)["ARN"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def pending(secret_id: str) -> str:
    """What Secrets Manager does before it calls the rotation function: a new version, staged AWSPENDING, without
    a value (moto's RotateSecret does the same, but without a function it then makes that version current)."""
    token = str(uuid.uuid4())
    stored = secretsmanager_backends[ACCOUNT][REGION].secrets[secret_id]
    assert isinstance(stored, FakeSecret)
    stored.remove_version_stages_from_old_versions(["AWSPENDING"])
    stored.versions[token] = {"createdate": int(time.time()), "version_id": token, "version_stages": ["AWSPENDING"]}
    return token


def rotated(client: SecretsManagerClient, secret_id: str) -> str:
    """Rotate the secret as Secrets Manager would, through the rotation function's four steps."""
    token = pending(secret_id)
    for step in STEPS:
        key_rotation.handler({"Step": step, "SecretId": secret_id, "ClientRequestToken": token}, None)
    return token


@pytest.fixture(autouse=True)
def rotation_client(client: SecretsManagerClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(key_rotation, "_client", lambda: client)


def keys(client: SecretsManagerClient, secret_id: str, clock: Clock | None = None) -> SecretKeys:
    return SecretKeys(client, secret_id, Telemetry("driftloop-test", io.StringIO()), clock or Clock())


def mint(keys: SecretKeys) -> str:
    return new_prediction_ids(1, datetime.now(UTC), keys.minting())[0]


def test_a_rotation_makes_a_new_current_key_and_keeps_the_old_one_as_previous(
    client: SecretsManagerClient, secret: str
) -> None:
    before = read_key(client, secret, CURRENT)

    token = rotated(client, secret)

    after, previous = read_key(client, secret, CURRENT), read_key(client, secret, PREVIOUS)
    assert after is not None and before is not None and previous == before
    assert after.tag != before.tag and after.secret != before.secret
    assert CURRENT in client.describe_secret(SecretId=secret)["VersionIdsToStages"][token]


def test_an_id_minted_under_the_previous_key_still_validates_after_a_rotation(
    client: SecretsManagerClient, secret: str
) -> None:
    minted = mint(keys(client, secret))

    rotated(client, secret)

    # A function that starts after the rotation holds the previous key too.
    assert prediction_time(minted, keys(client, secret))


def test_an_id_minted_under_a_key_two_rotations_old_does_not_validate(
    client: SecretsManagerClient, secret: str
) -> None:
    minted = mint(keys(client, secret))

    rotated(client, secret)
    rotated(client, secret)

    with pytest.raises(InvalidPredictionId, match="no current key has its key tag"):
        prediction_time(minted, keys(client, secret))


def test_a_function_started_before_a_rotation_rereads_the_keys_for_an_id_of_the_new_key(
    client: SecretsManagerClient, secret: str
) -> None:
    clock = Clock()
    old = keys(client, secret, clock)
    rotated(client, secret)
    minted_elsewhere = mint(keys(client, secret))

    clock.now += RETRY
    assert prediction_time(minted_elsewhere, old)
    # And it now mints with the new key as well.
    assert old.minting() == read_key(client, secret, CURRENT)


def test_made_up_key_tags_cause_at_most_one_read_per_retry_interval(
    client: SecretsManagerClient, secret: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    held = keys(client, secret, clock)
    reads = []
    real = client.get_secret_value

    def counted(**kwargs: Any) -> Any:
        reads.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(client, "get_secret_value", counted)

    clock.now += RETRY
    for tag in ("0000", "0001", "0002"):
        assert held.verifying(tag) is None
    # One re-read (the current and the previous version) for three unknown tags; the next only after RETRY.
    assert len(reads) == 2
    clock.now += RETRY - 1
    held.verifying("0003")
    assert len(reads) == 2


def test_a_function_mints_with_a_new_current_key_within_the_refresh_interval(
    client: SecretsManagerClient, secret: str
) -> None:
    clock = Clock()
    held = keys(client, secret, clock)
    first = held.minting()
    rotated(client, secret)

    clock.now += REFRESH - 1
    assert held.minting() == first
    clock.now += 1
    assert held.minting() == read_key(client, secret, CURRENT) != first


def test_a_failed_reread_keeps_the_keys_held_and_is_logged(
    client: SecretsManagerClient, secret: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    log = io.StringIO()
    held = SecretKeys(client, secret, Telemetry("driftloop-test", log), clock)
    first = held.minting()

    def down(**_: object) -> None:
        raise client.exceptions.InternalServiceError({"Error": {"Code": "InternalServiceError"}}, "GetSecretValue")

    monkeypatch.setattr(client, "get_secret_value", down)
    clock.now += REFRESH

    assert held.minting() == first
    assert "re-reading the prediction id keys failed" in log.getvalue()


def test_a_function_cannot_start_without_a_key(client: SecretsManagerClient) -> None:
    with pytest.raises(LookupError, match="secret:missing has no AWSCURRENT value"):
        keys(client, "arn:aws:secretsmanager:eu-west-1:123456789012:secret:missing")


def test_a_new_key_never_takes_the_tag_of_the_current_or_the_previous_key(
    client: SecretsManagerClient, secret: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rotated(client, secret)
    current, previous = read_key(client, secret, CURRENT), read_key(client, secret, PREVIOUS)
    assert current is not None and previous is not None
    # The first two candidates collide with the keys that verify now; the third is new.
    candidates = iter([previous.secret.decode(), current.secret.decode(), "f" * 64])
    monkeypatch.setattr(secrets, "token_hex", lambda _: next(candidates))

    rotated(client, secret)

    assert read_key(client, secret, CURRENT) == IdKey(b"f" * 64)


def test_a_retried_create_step_keeps_the_pending_key_it_made(client: SecretsManagerClient, secret: str) -> None:
    token = pending(secret)
    rotate(client, "createSecret", secret, token)
    made = read_key(client, secret, "AWSPENDING", token)

    rotate(client, "createSecret", secret, token)

    assert made is not None and read_key(client, secret, "AWSPENDING", token) == made


def test_a_step_for_a_version_that_is_not_pending_fails_and_a_finished_one_does_nothing(
    client: SecretsManagerClient, secret: str
) -> None:
    with pytest.raises(RotationError, match="is not a version of the secret"):
        rotate(client, "createSecret", secret, str(uuid.uuid4()))
    token = rotated(client, secret)
    stages = client.describe_secret(SecretId=secret)["VersionIdsToStages"]

    rotate(client, "finishSecret", secret, token)

    assert client.describe_secret(SecretId=secret)["VersionIdsToStages"] == stages
    with pytest.raises(RotationError, match="unknown rotation step 'rollbackSecret'"):
        rotate(client, "rollbackSecret", secret, token)


def test_the_test_step_refuses_a_pending_value_that_is_no_key(client: SecretsManagerClient, secret: str) -> None:
    token = pending(secret)
    client.put_secret_value(
        SecretId=secret, ClientRequestToken=token, SecretString="short", VersionStages=["AWSPENDING"]
    )

    with pytest.raises(RotationError, match="is not a key: a prediction id key has at least 32 bytes"):
        rotate(client, "testSecret", secret, token)


@pytest.mark.parametrize("max_age_days", [1, 7, 30])
def test_the_rotation_interval_keeps_every_id_verifiable_for_as_long_as_feedback_accepts_it(
    max_age_days: int,
) -> None:
    """The worst case, in hours, over rotation schedules whose gaps fall anywhere in the rotation window (the
    interval less a day, up to the interval): each id is minted at a moment when its key is current, or was up
    to REFRESH ago (a function's cached copy), and checked up to max_age later against the current and the
    previous key of that moment. One day less of interval and some id would fail."""

    def all_verifiable(interval_days: int) -> bool:
        window = range((interval_days - 1) * 24, interval_days * 24 + 1, 6)
        stale = int(REFRESH // 3600)
        for gaps in itertools.product(window, repeat=3):
            rotations = list(itertools.accumulate(gaps, initial=0))

            def key_at(hour: int, rotations: list[int] = rotations) -> int:
                return sum(1 for rotation in rotations if rotation <= hour) - 1

            for minted in range(0, rotations[2]):
                for key in {key_at(minted), key_at(max(minted - stale, 0))}:
                    checked = key_at(minted + max_age_days * 24)
                    if key not in (checked, checked - 1):
                        return False
        return True

    assert all_verifiable(rotation_days(max_age_days))
    assert not all_verifiable(rotation_days(max_age_days) - 1)


def test_an_app_with_a_key_secret_mints_with_its_current_key_and_accepts_the_previous_after_a_rotation(
    client: SecretsManagerClient,
    secret: str,
    make_api: MakeApi,
    trained_bundle: Path,
    rows: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    settings = InferenceSettings(model_dir=trained_bundle, id_key_secret=secret)
    [before] = make_api(settings, feedback=RecordingSink()).predict(rows[:1]).json["predictions"]
    old = read_key(client, secret, CURRENT)

    rotated(client, secret)
    # A cold start after the rotation.
    api = make_api(settings, feedback=RecordingSink())

    reply = api.feedback({"prediction_id": before["prediction_id"], "label": "1"})
    assert reply.status == 202, reply.body
    [after] = api.predict(rows[:1]).json["predictions"]
    new = read_key(client, secret, CURRENT)
    assert old is not None and new is not None
    assert before["prediction_id"][24:28] == old.tag and after["prediction_id"][24:28] == new.tag != old.tag
