from __future__ import annotations

import re
import shutil
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from functions.common.bundle import ONNX_FILE, pack_archive
from functions.common.registry import PromotionConflict, Registry, RegistryError, new_version_id
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
    from datetime import UTC, datetime

    earlier = new_version_id(datetime(2026, 1, 1, tzinfo=UTC))
    later = new_version_id(datetime(2026, 1, 2, tzinfo=UTC))
    assert earlier < later


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


def test_a_registered_version_cannot_be_overwritten(registry: Registry, archive: Path) -> None:
    version = register_new(registry, archive)
    with pytest.raises(RegistryError, match="immutable"):
        registry.register(version, archive)


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
