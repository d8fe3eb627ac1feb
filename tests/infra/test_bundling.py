"""Local (Docker-free) Lambda bundling: the pinned requirements, what goes into a bundle, and its size."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from infra.bundling import INFERENCE, REPO_ROOT, RUNTIME_PROVIDED, WORKFLOW, LocalPythonBundler, find_uv

INFERENCE_REQUIREMENTS = INFERENCE.requirements.path

MAX_BUNDLE_BYTES = 160 * 1024 * 1024
# Training-only packages: in the inference Lambda they would blow the size limit and the cold start.
TRAINING_ONLY = ("scikit-learn", "sklearn", "scipy", "pandas", "pyarrow", "skl2onnx", "joblib")
SERVING = ("onnxruntime", "numpy", "starlette", "mangum", "orjson")


def pinned_packages(requirements: str) -> set[str]:
    return {match.lower() for match in re.findall(r"^([A-Za-z0-9._-]+)==", requirements, re.MULTILINE)}


def unpacked_size(directory: Path) -> int:
    return sum(path.stat().st_size for path in directory.rglob("*") if path.is_file())


def test_requirements_pin_the_serving_stack_with_hashes() -> None:
    requirements = INFERENCE_REQUIREMENTS.read_text()
    packages = pinned_packages(requirements)
    assert set(SERVING) <= packages
    assert "--hash=sha256:" in requirements
    assert requirements.startswith(INFERENCE.requirements.header)


def test_requirements_leave_out_what_the_lambda_runtime_provides_and_training_only_packages() -> None:
    packages = pinned_packages(INFERENCE_REQUIREMENTS.read_text())
    assert packages.isdisjoint(RUNTIME_PROVIDED)
    assert packages.isdisjoint(TRAINING_ONLY)


def test_committed_requirements_match_a_fresh_export_from_the_lock() -> None:
    uv = find_uv()
    if uv is None:
        pytest.skip("uv not found: put it on PATH or set UV")
    assert INFERENCE_REQUIREMENTS.read_text() == INFERENCE.requirements.export(uv), (
        "functions/inference/requirements.txt is stale: run `python -m infra.bundling`"
    )


def test_workflow_bundle_sources_hold_only_their_packages_compiled_for_lambda(tmp_path: Path) -> None:
    LocalPythonBundler(WORKFLOW.sources).try_bundle(str(tmp_path))
    assert {path.name for path in tmp_path.iterdir()} == {"functions"}
    assert {path.name for path in (tmp_path / "functions").iterdir()} == {
        "__init__.py",
        "__pycache__",
        "common",
        "workflow",
    }
    sources = sorted((tmp_path / "functions").rglob("*.py"))
    for source in sources:
        [pyc] = (source.parent / "__pycache__").glob(f"{source.stem}.cpython-312.pyc")
        # PEP 552 flags: hash-based (bit 0) and not checked against the source (bit 1 clear), because the
        # asset zip resets every modification time.
        assert int.from_bytes(pyc.read_bytes()[4:8], "little") == 0b01
    # No bytecode of this machine's other interpreters or stale files from the working tree.
    assert {pyc.name.split(".")[1] for pyc in tmp_path.rglob("*.pyc")} == {"cpython-312"}


def test_asset_hash_follows_the_bundled_sources(tmp_path: Path) -> None:
    package = tmp_path / "functions"
    (package / "workflow").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "workflow" / "handlers.py").write_text("X = 1\n")
    sources = ("functions/__init__.py", "functions/workflow")
    before = LocalPythonBundler(sources, root=tmp_path).asset_hash()
    (package / "workflow" / "__pycache__").mkdir()
    (package / "workflow" / "__pycache__" / "handlers.cpython-311.pyc").write_bytes(b"stale")
    assert LocalPythonBundler(sources, root=tmp_path).asset_hash() == before
    (package / "workflow" / "handlers.py").write_text("X = 2\n")
    assert LocalPythonBundler(sources, root=tmp_path).asset_hash() != before


@pytest.mark.slow
def test_inference_bundle_imports_its_stack_without_training_packages_within_160_mib(tmp_path: Path) -> None:
    """Bundles for real (pip install on the first run, then the cache under .cache/lambda-deps)."""
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    LocalPythonBundler(INFERENCE.sources, INFERENCE_REQUIREMENTS).try_bundle(str(bundle))

    top_level = {path.name.split("-")[0].lower() for path in bundle.iterdir()}
    assert top_level.isdisjoint({"sklearn", "scikit_learn", "scipy", "pandas", "pyarrow", "boto3", "botocore"})
    assert {"functions", "onnxruntime", "numpy", "starlette", "mangum", "orjson"} <= top_level
    assert unpacked_size(bundle) <= MAX_BUNDLE_BYTES

    # The cp312 manylinux wheels run on this host too: import them from the bundle alone (-S: no site-packages).
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]); "
        "import onnxruntime, numpy, starlette, mangum, orjson, functions.inference.api; "
        "assert onnxruntime.__file__.startswith(sys.argv[1])"
    )
    subprocess.run([sys.executable, "-S", "-c", probe, str(bundle)], check=True, cwd=REPO_ROOT)
