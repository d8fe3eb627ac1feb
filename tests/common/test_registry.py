from __future__ import annotations

import re
import shutil
import tarfile
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from functions.common import registry as registry_module
from functions.common.bundle import CONSTRAINTS_FILE, ONNX_FILE, STATISTICS_FILE, pack_archive, sha256_file
from functions.common.registry import (
    PromotionConflict,
    Registry,
    RegistryError,
    champion_before,
    is_version_id,
    new_version_id,
)
from tests.plugins.aws import MODEL_BUCKET

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


@pytest.fixture
def archive(trained_bundle: Path, tmp_path: Path) -> Path:
    path = tmp_path / "model.tar.gz"
    pack_archive(trained_bundle, path)
    return path


def register_new(registry: Registry, archive: Path) -> str:
    version = new_version_id()
    registry.register(version, archive, evaluation={"passed": True}, lineage={"training_job_name": "job-1"})
    return version


def test_version_ids_are_unique_sortable_and_valid_job_name_suffixes() -> None:
    ids = [new_version_id() for _ in range(200)]
    assert len(set(ids)) == 200
    assert all(re.fullmatch(r"v\d{8}-\d{6}-[0-9a-f]{6}", version) for version in ids)
    earlier = new_version_id(datetime(2026, 1, 1, tzinfo=UTC))
    later = new_version_id(datetime(2026, 1, 2, tzinfo=UTC))
    assert earlier < later


def test_only_ids_of_the_generated_form_are_version_ids() -> None:
    assert all(is_version_id(new_version_id()) for _ in range(20))
    assert is_version_id("v20261127-111717-3f9a2c")
    for text in ("latest", "v20261127-111717-3F9A2C", "v20261127-111717-3f9a2", "v20261127-111717-3f9a2c-x", ""):
        assert not is_version_id(text), text


def test_register_stores_archive_metadata_and_record_under_the_version(
    registry: Registry, archive: Path, s3: S3Client
) -> None:
    version = register_new(registry, archive)

    record = registry.get_version(version)
    assert record.archive_key == f"registry/versions/{version}/model.tar.gz"
    assert record.task == "classification"
    assert record.evaluation == {"passed": True}
    assert record.lineage["training_job_name"] == "job-1"
    assert record.lineage["training_data"]["rows"] > 0
    assert registry.get_metadata(version)["baseline"]["features"]
    keys = {item["Key"] for item in s3.list_objects_v2(Bucket=MODEL_BUCKET)["Contents"]}
    assert {f"registry/versions/{version}/{name}" for name in ("model.tar.gz", "metadata.json", "version.json")} <= keys


def test_register_refuses_a_bundle_whose_model_file_was_altered(
    registry: Registry, trained_bundle: Path, tmp_path: Path
) -> None:
    tampered = tmp_path / "bundle"
    shutil.copytree(trained_bundle, tampered)
    with (tampered / ONNX_FILE).open("ab") as stream:
        stream.write(b"\0")
    pack_archive(tampered, tmp_path / "tampered.tar.gz")

    with pytest.raises(RegistryError, match="checksum mismatch"):
        registry.register(new_version_id(), tmp_path / "tampered.tar.gz")
    assert registry.list_versions() == []


def repacked(archive: Path, tmp_path: Path) -> Path:
    """The same bundle in another valid archive (another compression level: other bytes, other sha256)."""
    other = tmp_path / "repacked.tar.gz"
    with tarfile.open(archive) as source, tarfile.open(other, "w:gz", compresslevel=1) as target:
        for member in source.getmembers():
            target.addfile(member, source.extractfile(member))
    return other


def test_registering_a_version_again_with_the_same_archive_returns_the_stored_record(
    registry: Registry, archive: Path, s3: S3Client
) -> None:
    version = register_new(registry, archive)
    stored = registry.get_version(version)

    again = registry.register(version, archive, evaluation={"passed": False}, lineage={"training_job_name": "job-2"})

    assert again == stored
    assert registry.get_version(version) == stored


def test_another_archive_under_a_registered_version_is_refused(
    registry: Registry, archive: Path, tmp_path: Path
) -> None:
    version = register_new(registry, archive)
    other = repacked(archive, tmp_path)

    with pytest.raises(RegistryError, match=f"{version} is already registered with another archive"):
        registry.register(version, other)
    assert registry.get_version(version).sha256 != sha256_file(other)


def test_a_registration_retried_after_a_partial_write_completes_the_version(
    registry: Registry, archive: Path, s3: S3Client
) -> None:
    # The first attempt stored the archive, then stopped before metadata.json and version.json.
    version = new_version_id()
    s3.put_object(Bucket=MODEL_BUCKET, Key=registry.version_key(version, "model.tar.gz"), Body=archive.read_bytes())

    record = registry.register(version, archive)

    assert registry.get_version(version) == record and record.sha256 == sha256_file(archive)


def test_a_partial_version_with_another_archive_is_not_overwritten(
    registry: Registry, archive: Path, tmp_path: Path, s3: S3Client
) -> None:
    version = new_version_id()
    key = registry.version_key(version, "model.tar.gz")
    s3.put_object(Bucket=MODEL_BUCKET, Key=key, Body=repacked(archive, tmp_path).read_bytes())

    with pytest.raises(RegistryError, match="already exists; registry objects are immutable"):
        registry.register(version, archive)
    assert registry.list_versions() == []


def test_list_versions_returns_every_version_in_creation_order(registry: Registry, archive: Path) -> None:
    versions = [register_new(registry, archive) for _ in range(3)]
    assert [record.version for record in registry.list_versions()] == sorted(versions)


def test_promoting_the_first_version_sets_the_champion_and_records_the_decision(
    registry: Registry, archive: Path
) -> None:
    version = register_new(registry, archive)
    assert registry.champion() is None

    pointer = registry.promote(version, expected=None, reasons=("first model",))

    champion = registry.champion()
    assert champion is not None
    assert (champion.version, champion.sha256) == (version, registry.get_version(version).sha256)
    assert champion.decision_id == pointer.decision_id
    [decision] = registry.decisions()
    assert (decision.action, decision.version, decision.reasons) == ("promoted", version, ("first model",))


def test_promotion_with_a_stale_champion_is_refused_and_changes_nothing(registry: Registry, archive: Path) -> None:
    first, second, third = (register_new(registry, archive) for _ in range(3))
    registry.promote(first, expected=None)
    stale = registry.champion()
    registry.promote(second, expected=stale)

    with pytest.raises(PromotionConflict):
        registry.promote(third, expected=stale)

    champion = registry.champion()
    assert champion is not None and champion.version == second
    assert champion.previous_version == first
    assert [(d.action, d.version) for d in registry.decisions()] == [("promoted", first), ("promoted", second)]


def test_of_two_concurrent_promotions_exactly_one_wins_and_both_outcomes_are_known(
    registry: Registry, archive: Path
) -> None:
    base, left, right = (register_new(registry, archive) for _ in range(3))
    registry.promote(base, expected=None)
    expected = registry.champion()
    barrier = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def promote(version: str) -> None:
        barrier.wait()
        try:
            registry.promote(version, expected=expected)
            outcomes[version] = "won"
        except PromotionConflict:
            outcomes[version] = "lost"

    threads = [threading.Thread(target=promote, args=(v,)) for v in (left, right)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes.values()) == ["lost", "won"]
    winner = next(v for v, outcome in outcomes.items() if outcome == "won")
    champion = registry.champion()
    assert champion is not None and champion.version == winner and champion.previous_version == base
    promoted = [d.version for d in registry.decisions() if d.action == "promoted"]
    assert promoted == [base, winner]


def test_promotion_refuses_an_archive_altered_after_registration(
    registry: Registry, archive: Path, s3: S3Client
) -> None:
    version = register_new(registry, archive)
    s3.put_object(Bucket=MODEL_BUCKET, Key=registry.get_version(version).archive_key, Body=b"not the model")

    with pytest.raises(RegistryError, match="checksum mismatch"):
        registry.promote(version, expected=None)
    assert registry.champion() is None
    assert registry.decisions() == []


def test_the_champion_before_the_current_one_replays_promotions_and_rollbacks() -> None:
    new = Registry.new_decision
    history = [new("promoted", "a"), new("promoted", "b"), new("rolled_back", "a")]
    assert champion_before(history, "a") is None
    history += [new("promoted", "c"), new("promoted", "c"), new("promoted", "d")]
    assert champion_before(history, "d") == "c"
    assert champion_before([*history, new("rolled_back", "a")], "a") is None
    assert champion_before([*history, new("rolled_back", "b")], "b") == "d"
    assert champion_before([new("rejected", "x")], "x") is None


def test_the_rollback_target_is_the_champion_before_by_the_record_else_the_pointers_previous_version(
    registry: Registry, archive: Path, s3: S3Client
) -> None:
    v1, v2, v3 = (register_new(registry, archive) for _ in range(3))
    for version in (v1, v2, v3):
        registry.promote(version, expected=registry.champion())
    registry.promote(v2, expected=registry.champion(), action="rolled_back")
    champion = registry.champion()
    assert champion is not None and champion.previous_version == v3

    assert registry.rollback_target(champion) == v1

    for item in s3.list_objects_v2(Bucket=MODEL_BUCKET, Prefix="registry/decisions/")["Contents"]:
        s3.delete_object(Bucket=MODEL_BUCKET, Key=item["Key"])
    assert registry.rollback_target(champion) == v3


def test_promoting_an_unknown_version_is_refused(registry: Registry) -> None:
    with pytest.raises(RegistryError, match="unknown version"):
        registry.promote("v20260101-000000-000000", expected=None)


def test_decisions_are_kept_in_order_with_their_reasons(registry: Registry) -> None:
    registry.record("rejected", "v1", ["worse than the champion"], {"metric": "roc_auc"})
    registry.record("failed", None, ["ValidationError: target missing"])

    decisions = registry.decisions()
    assert [(d.action, d.version, d.reasons) for d in decisions] == [
        ("rejected", "v1", ("worse than the champion",)),
        ("failed", None, ("ValidationError: target missing",)),
    ]
    assert decisions[0].details == {"metric": "roc_auc"}


T0 = datetime(2026, 3, 1, 12, 0, 0, 250000, tzinfo=UTC)


def record_at(registry: Registry, monkeypatch: pytest.MonkeyPatch, moment: datetime, *args: Any, **kwargs: Any) -> Any:
    monkeypatch.setattr(registry_module, "utc_now", lambda: moment)
    return registry.record(*args, **kwargs)


def test_decisions_since_a_time_are_those_recorded_at_or_after_it(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    record_at(registry, monkeypatch, T0 - timedelta(hours=1), "skipped", None, ["an hour before"])
    record_at(registry, monkeypatch, T0 - timedelta(microseconds=1), "skipped", None, ["just before"])
    # A whole second has no fraction in its time (nor in its key): it is found all the same.
    record_at(registry, monkeypatch, T0.replace(microsecond=0) + timedelta(seconds=1), "failed", "v1", ["on time"])
    record_at(registry, monkeypatch, T0, "triggered", "v1", ["at the start"])

    since = registry.decisions(since=T0)

    assert [d.reasons[0] for d in since] == ["at the start", "on time"]
    assert len(registry.decisions()) == 4


def test_record_once_gives_a_retried_step_the_decision_its_execution_already_recorded(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = record_at(registry, monkeypatch, T0, "rejected", "v1", ["worse"], {"execution": "exec-a"})
    # The same action and version by another execution, or before ``since``, is not this run's.
    record_at(registry, monkeypatch, T0, "rejected", "v1", ["worse"], {"execution": "exec-b"})

    again = registry.record_once("rejected", "v1", ["worse"], execution="exec-a", since=T0)
    later_start = registry.record_once("rejected", "v1", ["worse"], execution="exec-a", since=T0 + timedelta(seconds=1))

    assert again == first
    assert later_start != first and later_start.details == {"execution": "exec-a"}
    assert len(registry.decisions()) == 3


def test_find_decision_reads_the_one_a_champion_pointer_names(registry: Registry, archive: Path) -> None:
    version = register_new(registry, archive)
    pointer = registry.promote(version, expected=None, reasons=("first model",))

    found = registry.find_decision(pointer.decision_id, pointer.promoted_at)

    assert found is not None and (found.action, found.version) == ("promoted", version)
    assert registry.find_decision("0" * 32, pointer.promoted_at) is None


def test_register_keeps_the_bundles_data_quality_baseline_beside_the_version(
    registry: Registry, archive: Path, trained_bundle: Path, s3: S3Client
) -> None:
    version = register_new(registry, archive)

    for name in (CONSTRAINTS_FILE, STATISTICS_FILE):
        stored = s3.get_object(Bucket=MODEL_BUCKET, Key=f"registry/versions/{version}/{name}")["Body"].read()
        assert stored == (trained_bundle / name).read_bytes()
    files = registry.get_metadata(version)["files"]
    source, text = registry.constraints(version, files) or ("", b"")
    assert source == f"training: s3://{MODEL_BUCKET}/registry/versions/{version}/{CONSTRAINTS_FILE}"
    assert text == (trained_bundle / CONSTRAINTS_FILE).read_bytes()


def test_an_operators_constraints_are_kept_outside_the_immutable_versions_and_can_be_replaced(
    registry: Registry, archive: Path
) -> None:
    version = register_new(registry, archive)
    files = registry.get_metadata(version)["files"]

    key = registry.put_constraints(b'{"features": [], "version": 0}', version)
    registry.put_constraints(b'{"features": [], "version": 1}', version)

    assert key == f"registry/constraints/versions/{version}.json"
    assert not key.startswith(registry.layout.history_prefixes)
    assert registry.constraints(version, files) == (
        f"operator, this version: s3://{MODEL_BUCKET}/{key}",
        b'{"features": [], "version": 1}',
    )
    registry.delete_constraints(version)
    default = registry.put_constraints(b'{"features": []}', None)
    assert default == "registry/constraints/default.json"
    assert registry.constraints(version, files) == (
        f"operator, every version: s3://{MODEL_BUCKET}/{default}",
        b'{"features": []}',
    )
