"""Serving the S3 registry's champion (moto): promotions are picked up, bad bundles are refused."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from functions.common.bundle import METADATA_FILE, ONNX_FILE, pack_archive, read_metadata, write_metadata
from functions.common.registry import VERSION_FILE, Registry, new_version_id
from functions.inference.settings import InferenceSettings
from tests.inference.conftest import Api, Clock, MakeApi
from tests.plugins.aws import MODEL_BUCKET

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

REFRESH = 60.0


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def serve(make_api: MakeApi, clock: Clock, tmp_path: Path, s3: S3Client) -> Callable[[], Api]:
    def serve() -> Api:
        settings = InferenceSettings(model_bucket=MODEL_BUCKET, refresh_seconds=REFRESH, work_dir=tmp_path / "work")
        return make_api(settings, clock=clock)

    return serve


def served_version(api: Api, rows: list[dict[str, Any]]) -> str:
    reply = api.predict(rows)
    assert reply.status == 200, reply.body
    version: str = reply.json["model_version"]
    return version


def publish_corrupt(registry: Registry, s3: S3Client, good: Path, corrupt: Path, tmp_path: Path) -> str:
    """Register ``good``, then swap its archive for ``corrupt``'s with a matching record, and promote it: the
    archive's checksum holds (as if the bundle had been broken before registration), the bundle inside does not.
    """
    version = new_version_id()
    pack_archive(good, tmp_path / "good.tar.gz")
    registry.register(version, tmp_path / "good.tar.gz")
    archive = tmp_path / "corrupt.tar.gz"
    pack_archive(corrupt, archive)
    record = registry.get_version(version)
    s3.put_object(Bucket=MODEL_BUCKET, Key=record.archive_key, Body=archive.read_bytes())
    forged = {**asdict(record), "sha256": hashlib.sha256(archive.read_bytes()).hexdigest()}
    s3.put_object(
        Bucket=MODEL_BUCKET, Key=registry.version_key(version, VERSION_FILE), Body=json.dumps(forged).encode()
    )
    registry.promote(version, expected=registry.champion())
    return version


def test_the_api_serves_the_registry_champion(
    publish: Callable[[Path], str], serve: Callable[[], Api], trained_bundle: Path, rows: list[dict[str, Any]]
) -> None:
    version = publish(trained_bundle)
    api = serve()

    assert served_version(api, rows) == version
    health = api.call("GET", "/health", content_type=None).json
    assert health["model_version"] == version


def test_without_a_champion_the_api_returns_503_and_serves_once_one_is_promoted(
    publish: Callable[[Path], str],
    serve: Callable[[], Api],
    clock: Clock,
    trained_bundle: Path,
    rows: list[dict[str, Any]],
) -> None:
    api = serve()

    reply = api.predict(rows)
    assert reply.status == 503
    assert reply.json["message"] == "no model available: the registry has no champion yet"
    [warning] = api.log_messages("no model to serve")
    assert warning["source"] == f"s3://{MODEL_BUCKET}/registry/"

    version = publish(trained_bundle)
    clock.advance(REFRESH)
    assert served_version(api, rows) == version


def test_a_promotion_is_picked_up_after_the_refresh_interval_and_not_before(
    publish: Callable[[Path], str],
    serve: Callable[[], Api],
    clock: Clock,
    trained_bundle: Path,
    trained_forest_bundle: Path,
    rows: list[dict[str, Any]],
) -> None:
    first = publish(trained_bundle)
    api = serve()
    assert served_version(api, rows) == first

    second = publish(trained_forest_bundle)
    clock.advance(REFRESH - 1)
    assert served_version(api, rows) == first
    clock.advance(1)
    assert served_version(api, rows) == second
    [loaded] = [line for line in api.log_messages("model loaded") if line["version"] == second]
    assert loaded["source"].startswith(f"s3://{MODEL_BUCKET}/registry/versions/{second}/")


def test_a_tampered_archive_is_refused_and_the_previous_model_keeps_serving(
    publish: Callable[[Path], str],
    serve: Callable[[], Api],
    clock: Clock,
    registry: Registry,
    s3: S3Client,
    trained_bundle: Path,
    trained_forest_bundle: Path,
    rows: list[dict[str, Any]],
) -> None:
    first = publish(trained_bundle)
    api = serve()
    second = publish(trained_forest_bundle)
    s3.put_object(Bucket=MODEL_BUCKET, Key=registry.get_version(second).archive_key, Body=b"tampered")

    clock.advance(REFRESH)
    assert served_version(api, rows) == first

    [failure] = api.log_messages("model load failed")
    assert failure["model"] == second
    assert "checksum mismatch" in failure["exception"]
    assert failure["ModelLoadFailures"] == 1


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ("metadata is not JSON", "metadata.json is not valid JSON"),
        ("model file changed", "model.onnx checksum mismatch"),
        ("model file garbage, resealed", "model.onnx cannot be loaded by onnxruntime"),
    ],
)
def test_a_corrupt_bundle_is_refused_and_the_previous_model_keeps_serving(
    publish: Callable[[Path], str],
    serve: Callable[[], Api],
    clock: Clock,
    registry: Registry,
    s3: S3Client,
    trained_bundle: Path,
    rows: list[dict[str, Any]],
    tmp_path: Path,
    damage: str,
    reason: str,
) -> None:
    first = publish(trained_bundle)
    api = serve()
    corrupt = tmp_path / "corrupt"
    shutil.copytree(trained_bundle, corrupt)
    if damage == "metadata is not JSON":
        (corrupt / METADATA_FILE).write_text("{not json")
    elif damage == "model file changed":
        (corrupt / ONNX_FILE).write_bytes((corrupt / ONNX_FILE).read_bytes()[:-10])
    else:
        (corrupt / ONNX_FILE).write_bytes(b"not an onnx graph")
        write_metadata(corrupt, read_metadata(corrupt))
    second = publish_corrupt(registry, s3, trained_bundle, corrupt, tmp_path)

    clock.advance(REFRESH)
    assert served_version(api, rows) == first
    [failure] = api.log_messages("model load failed")
    assert failure["model"] == second
    assert reason in failure["exception"]
    assert failure["ModelLoadFailures"] == 1


def test_a_refused_version_is_retried_only_once_per_refresh_interval(
    publish: Callable[[Path], str],
    serve: Callable[[], Api],
    clock: Clock,
    registry: Registry,
    s3: S3Client,
    trained_bundle: Path,
    rows: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    publish(trained_bundle)
    api = serve()
    second = publish(trained_bundle)
    s3.put_object(Bucket=MODEL_BUCKET, Key=registry.get_version(second).archive_key, Body=b"tampered")
    downloads: list[str] = []
    fetch = Registry.fetch_archive

    def counting_fetch(self: Registry, archive_key: str, sha256: str, dest: Path) -> Path:
        downloads.append(archive_key)
        return fetch(self, archive_key, sha256, dest)

    monkeypatch.setattr(Registry, "fetch_archive", counting_fetch)

    clock.advance(REFRESH)
    for _ in range(5):
        api.predict(rows)
    assert len(downloads) == 1
    clock.advance(REFRESH)
    for _ in range(5):
        api.predict(rows)
    assert len(downloads) == 2


def test_an_unreadable_registry_returns_503_and_is_logged(make_api: MakeApi, s3: S3Client, tmp_path: Path) -> None:
    api = make_api(InferenceSettings(model_bucket="no-such-bucket", work_dir=tmp_path))

    reply = api.call("GET", "/health", content_type=None)

    assert reply.status == 503
    assert reply.json["message"] == "no model available: the model source cannot be read (see the service logs)"
    [failure] = api.log_messages("checking for a new model failed; keeping the current one")
    assert "NoSuchBucket" in failure["exception"]


def test_a_champion_that_cannot_be_loaded_at_start_returns_503(
    publish: Callable[[Path], str],
    serve: Callable[[], Api],
    registry: Registry,
    s3: S3Client,
    trained_bundle: Path,
    rows: list[dict[str, Any]],
) -> None:
    version = publish(trained_bundle)
    s3.put_object(Bucket=MODEL_BUCKET, Key=registry.get_version(version).archive_key, Body=b"tampered")

    reply = serve().predict(rows)

    assert reply.status == 503
    assert reply.json["message"] == f"no model available: the model {version} was refused (see the service logs)"


def test_only_the_served_bundle_is_kept_on_disk(
    publish: Callable[[Path], str],
    serve: Callable[[], Api],
    clock: Clock,
    trained_bundle: Path,
    trained_forest_bundle: Path,
    rows: list[dict[str, Any]],
    tmp_path: Path,
) -> None:
    publish(trained_bundle)
    api = serve()
    second = publish(trained_forest_bundle)
    clock.advance(REFRESH)
    assert served_version(api, rows) == second

    [kept] = (tmp_path / "work").iterdir()
    assert kept.name.startswith(second)
    assert sorted(p.name for p in (kept / "bundle").iterdir()) == sorted(
        p.name for p in trained_forest_bundle.iterdir()
    )


def test_get_model_shows_the_champions_model_card_read_once_on_first_ask_not_while_loading(
    publish: Callable[[Path], str],
    serve: Callable[[], Api],
    trained_bundle: Path,
    rows: list[dict[str, Any]],
    registry: Registry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    version = publish(trained_bundle)
    reads: list[str] = []
    get_card = Registry.get_card

    def counted(self: Registry, asked: str) -> dict[str, Any] | None:
        reads.append(asked)
        return get_card(self, asked)

    monkeypatch.setattr(Registry, "get_card", counted)
    api = serve()
    assert served_version(api, rows) == version
    assert api.call("GET", "/health", content_type=None).status == 200
    assert reads == []  # loading and predicting never wait for the card

    first = api.call("GET", "/model", content_type=None).json
    second = api.call("GET", "/model", content_type=None).json

    assert reads == [version]
    assert first["card"] == second["card"] == registry.get_card(version)
    assert first["card"]["version"] == version and first["card"]["features"]


def test_get_model_of_a_champion_registered_before_model_cards_answers_without_one(
    publish: Callable[[Path], str], serve: Callable[[], Api], trained_bundle: Path, registry: Registry, s3: S3Client
) -> None:
    version = publish(trained_bundle)
    s3.delete_object(Bucket=MODEL_BUCKET, Key=registry.layout.card_key(version))

    reply = serve().call("GET", "/model", content_type=None)

    assert reply.status == 200
    assert reply.json["version"] == version and reply.json["card"] is None


def test_a_card_that_cannot_be_read_leaves_get_model_answering_and_is_read_again_next_time(
    publish: Callable[[Path], str],
    serve: Callable[[], Api],
    trained_bundle: Path,
    registry: Registry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    version = publish(trained_bundle)
    get_card = Registry.get_card
    failures = [RuntimeError("S3 is slow today")]

    def flaky(self: Registry, asked: str) -> dict[str, Any] | None:
        if failures:
            raise failures.pop()
        return get_card(self, asked)

    monkeypatch.setattr(Registry, "get_card", flaky)
    api = serve()

    failed = api.call("GET", "/model", content_type=None)
    assert failed.status == 200 and failed.json["card"] is None
    [logged] = api.log_messages("reading the model card failed; /model answers without it")
    assert "S3 is slow today" in logged["exception"]
    assert api.call("GET", "/model", content_type=None).json["card"]["version"] == version
