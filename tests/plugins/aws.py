"""Fixtures for code that talks to AWS: an in-process moto account with the project's buckets, its registry, and
``publish`` (a bundle directory registered and promoted as a new version)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import pytest
from moto import mock_aws

from functions.common.bundle import pack_archive
from functions.common.registry import Registry, new_version_id

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MODEL_BUCKET = "driftloop-test-models"
DATA_BUCKET = "driftloop-test-data"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield


@pytest.fixture
def s3(aws: None) -> S3Client:
    client = boto3.client("s3", region_name="us-east-1")
    for bucket in (MODEL_BUCKET, DATA_BUCKET):
        client.create_bucket(Bucket=bucket)
        client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    return client


@pytest.fixture
def registry(s3: S3Client) -> Registry:
    return Registry(s3, MODEL_BUCKET)


@pytest.fixture
def publish(registry: Registry, tmp_path: Path) -> Callable[[Path], str]:
    """Register a bundle directory as a new version and make it the champion; returns the version."""

    def publish(bundle: Path) -> str:
        version = new_version_id()
        archive = tmp_path / f"{version}.tar.gz"
        pack_archive(bundle, archive)
        registry.register(version, archive)
        registry.promote(version, expected=registry.champion())
        return version

    return publish
