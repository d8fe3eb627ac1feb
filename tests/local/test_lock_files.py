"""The local AWS's lock files (localcloud/*.txt): exact, hashed, and in step with uv.lock."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

LOCAL = Path(__file__).resolve().parents[2] / "localcloud"
UV_LOCK = LOCAL.parent / "uv.lock"
REQUIREMENT = re.compile(r"^([A-Za-z0-9_.-]+)==([^\s;\\]+)")


def pins(lock: Path) -> dict[str, str]:
    """name -> version; asserts every requirement is exact and carries a sha256 hash."""
    found: dict[str, str] = {}
    text = lock.read_text()
    for block in re.split(r"\n(?=\S)", text):
        if block.startswith("#") or not block.strip():
            continue
        match = REQUIREMENT.match(block)
        assert match, f"{lock.name}: not an exact pin: {block.splitlines()[0]}"
        assert "--hash=sha256:" in block, f"{lock.name}: {match.group(1)} has no hash"
        found[match.group(1).lower().replace("_", "-")] = match.group(2)
    return found


def uv_lock_versions() -> dict[str, str]:
    document = tomllib.loads(UV_LOCK.read_text())
    return {package["name"]: package["version"] for package in document["package"] if "version" in package}


def test_localstack_lock_pins_the_runtime_that_was_verified() -> None:
    locked = pins(LOCAL / "requirements.txt")
    assert locked["localstack-core"] == "2026.3.0"
    assert int(locked["cbor2"].split(".")[0]) < 6
    for name in ("service-identity", "hatchling", "editables", "plux"):
        assert name in locked


def test_lambda_runtime_lock_matches_the_projects_sdk() -> None:
    """Functions see locally the boto3 their deployed bundle has (make local-lock re-resolves it)."""
    locked = pins(LOCAL / "lambda-runtime.txt")
    project = uv_lock_versions()
    assert "awslambdaric" in locked
    for name in ("boto3", "botocore", "s3transfer"):
        assert locked[name] == project[name], f"{name}: run `make local-lock` after changing uv.lock"
