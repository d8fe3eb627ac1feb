import io
import json
import tarfile
from dataclasses import replace
from pathlib import Path

import pytest

from functions.common.bundle import (
    FORMAT_VERSION,
    JOBLIB_FILE,
    METADATA_FILE,
    ONNX_FILE,
    PANDAS_NA_SPELLINGS,
    BundleError,
    Feature,
    ModelMetadata,
    extract_archive,
    missing_tokens,
    open_bundle,
    pack_archive,
    read_metadata,
    verify_bundle,
    write_metadata,
)

METADATA = ModelMetadata(
    task="classification",
    target="churned",
    features=(
        Feature(name="age", type="numeric", minimum=18.0, maximum=90.0),
        Feature(name="region", type="categorical", categories=("east", "north")),
    ),
    classes=("0", "1"),
    algorithm="logistic_regression",
    primary_metric="roc_auc",
    metrics={"roc_auc": 0.9},
    baseline={"rows": 1},
    training_data={"sha256": "0" * 64, "rows": 1},
    hyperparameters={"target": "churned"},
    libraries={"numpy": "2"},
    created_at="2026-01-01T00:00:00Z",
)


@pytest.fixture
def bundle_dir(tmp_path: Path) -> Path:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / ONNX_FILE).write_bytes(b"onnx bytes")
    (bundle / JOBLIB_FILE).write_bytes(b"joblib bytes")
    write_metadata(bundle, METADATA)
    return bundle


def test_sealed_bundle_verifies_and_reads_back_the_same_metadata(bundle_dir: Path) -> None:
    metadata = verify_bundle(bundle_dir)
    assert set(metadata.files) == {ONNX_FILE, JOBLIB_FILE}
    assert replace(metadata, files={}) == METADATA
    assert metadata.feature_names == ("age", "region")


def test_a_tampered_model_file_is_refused(bundle_dir: Path) -> None:
    (bundle_dir / ONNX_FILE).write_bytes(b"something else")
    with pytest.raises(BundleError, match=f"{ONNX_FILE} checksum mismatch"):
        verify_bundle(bundle_dir)


def test_a_missing_model_file_is_refused(bundle_dir: Path) -> None:
    (bundle_dir / JOBLIB_FILE).unlink()
    with pytest.raises(BundleError, match=f"{JOBLIB_FILE} is missing"):
        verify_bundle(bundle_dir)


def test_sealing_requires_both_model_files(tmp_path: Path) -> None:
    (tmp_path / ONNX_FILE).write_bytes(b"x")
    with pytest.raises(BundleError, match=f"missing {JOBLIB_FILE}"):
        write_metadata(tmp_path, METADATA)


def test_an_unknown_format_version_is_refused(bundle_dir: Path) -> None:
    path = bundle_dir / METADATA_FILE
    data = json.loads(path.read_text())
    data["format_version"] = FORMAT_VERSION + 1
    path.write_text(json.dumps(data))
    with pytest.raises(BundleError, match="unsupported bundle format_version"):
        read_metadata(bundle_dir)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"task": "ranking"}, "task must be one of"),
        ({"features": [{"name": "x", "type": "text"}]}, "unknown type"),
        ({"metrics": {"roc_auc": "high"}}, "malformed"),
    ],
)
def test_malformed_metadata_is_refused(bundle_dir: Path, change: dict[str, object], message: str) -> None:
    path = bundle_dir / METADATA_FILE
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    with pytest.raises(BundleError, match=message):
        read_metadata(bundle_dir)


def test_the_missing_tokens_read_back_as_recorded(bundle_dir: Path) -> None:
    write_metadata(bundle_dir, replace(METADATA, missing_tokens=missing_tokens(["NA", " ?"])))
    assert read_metadata(bundle_dir).missing_tokens == ("", " ?", "NA")


@pytest.mark.parametrize(
    ("declared", "added"),
    [("", set()), ('[" ?", "unknown, none"]', {" ?", "unknown, none"}), (" ?, unknown", {"?", "unknown"})],
)
def test_an_older_bundle_without_missing_tokens_reads_pandas_defaults_and_its_missing_values(
    bundle_dir: Path, declared: str, added: set[str]
) -> None:
    # Those are what its training read as missing: pandas' read_csv defaults, then the declared tokens.
    path = bundle_dir / METADATA_FILE
    data = json.loads(path.read_text())
    del data["missing_tokens"]
    data["hyperparameters"]["missing_values"] = declared
    path.write_text(json.dumps(data))
    tokens = read_metadata(bundle_dir).missing_tokens
    assert set(tokens) == PANDAS_NA_SPELLINGS | added
    assert {"", "NA", "null", "n/a"} <= set(tokens)


def test_an_older_bundle_with_malformed_missing_values_is_refused_naming_them(bundle_dir: Path) -> None:
    path = bundle_dir / METADATA_FILE
    data = json.loads(path.read_text())
    del data["missing_tokens"]
    data["hyperparameters"]["missing_values"] = '[" ?"'
    path.write_text(json.dumps(data))
    with pytest.raises(BundleError, match=r"hyperparameter 'missing_values'='\[\" \?\"' starts with '\['"):
        read_metadata(bundle_dir)


def test_metadata_that_is_not_json_is_refused(bundle_dir: Path) -> None:
    (bundle_dir / METADATA_FILE).write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        read_metadata(bundle_dir)


def test_archive_round_trip_puts_files_at_the_root_and_verifies(bundle_dir: Path, tmp_path: Path) -> None:
    archive = tmp_path / "model.tar.gz"
    pack_archive(bundle_dir, archive)
    with tarfile.open(archive) as tar:
        assert sorted(tar.getnames()) == sorted([JOBLIB_FILE, METADATA_FILE, ONNX_FILE])
    extracted, metadata = open_bundle(archive, tmp_path / "extracted")
    assert extracted == tmp_path / "extracted"
    assert metadata == verify_bundle(bundle_dir)


def _archive_with(path: Path, member: tarfile.TarInfo, payload: bytes = b"") -> Path:
    with tarfile.open(path, "w:gz") as tar:
        tar.addfile(member, io.BytesIO(payload) if payload else None)
    return path


def test_an_archive_member_escaping_the_destination_is_refused(tmp_path: Path) -> None:
    member = tarfile.TarInfo("../evil.txt")
    member.size = 4
    archive = _archive_with(tmp_path / "model.tar.gz", member, b"evil")
    with pytest.raises(BundleError, match="not a readable model archive"):
        extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()


def test_an_archive_link_pointing_outside_is_refused(tmp_path: Path) -> None:
    member = tarfile.TarInfo(METADATA_FILE)
    member.type = tarfile.SYMTYPE
    member.linkname = "/etc/passwd"
    archive = _archive_with(tmp_path / "model.tar.gz", member)
    with pytest.raises(BundleError, match="not a readable model archive"):
        extract_archive(archive, tmp_path / "out")


def test_a_corrupt_archive_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "model.tar.gz"
    archive.write_bytes(b"this is not a tarball")
    with pytest.raises(BundleError, match="not a readable model archive"):
        open_bundle(archive, tmp_path / "out")


def test_the_positive_class_and_threshold_read_back_and_older_metadata_means_the_second_class(
    bundle_dir: Path,
) -> None:
    chosen = replace(METADATA, positive_class="0", decision_threshold=0.3)
    write_metadata(bundle_dir, chosen)
    assert (read_metadata(bundle_dir).positive_label, read_metadata(bundle_dir).decision_threshold) == ("0", 0.3)

    older = json.loads((bundle_dir / METADATA_FILE).read_text())
    del older["positive_class"], older["decision_threshold"]
    (bundle_dir / METADATA_FILE).write_text(json.dumps(older))
    assert (read_metadata(bundle_dir).positive_label, read_metadata(bundle_dir).decision_threshold) == ("1", None)
