"""The monitor Lambda's bundle: its pinned requirements (exported from uv.lock) and what the bundle holds."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from infra.bundling import MONITOR, REPO_ROOT, LocalPythonBundler, find_uv

MONITOR_REQUIREMENTS = MONITOR.requirements.path
MONITOR_SOURCES = MONITOR.sources

# Serving and training packages have no place in the monitor; boto3 and botocore come with the Lambda runtime.
EXCLUDED = ("onnxruntime", "starlette", "mangum", "orjson", "boto3", "botocore", "scikit-learn", "pandas", "scipy")
MAX_BUNDLE_BYTES = 200 * 1024 * 1024


def pinned(requirements: str) -> set[str]:
    return {match.lower() for match in re.findall(r"^([A-Za-z0-9._-]+)==", requirements, re.MULTILINE)}


def test_requirements_pin_numpy_and_matplotlib_with_hashes_and_nothing_from_serving() -> None:
    requirements = MONITOR_REQUIREMENTS.read_text()
    assert requirements.startswith(MONITOR.requirements.header)
    assert {"numpy", "matplotlib"} <= pinned(requirements)
    assert pinned(requirements).isdisjoint(EXCLUDED)
    assert "--hash=sha256:" in requirements


def test_committed_requirements_match_a_fresh_export_from_the_lock() -> None:
    uv = find_uv()
    if uv is None:
        pytest.skip("uv not found: put it on PATH or set UV")
    assert MONITOR_REQUIREMENTS.read_text() == MONITOR.requirements.export(uv), (
        "functions/monitor/requirements.txt is stale: run `python -m infra.bundling`"
    )


@pytest.mark.slow
def test_monitor_bundle_runs_the_monitor_and_draws_the_chart_from_the_bundle_alone(tmp_path: Path) -> None:
    """Bundles for real (pip install on the first run, then the cache under .cache/lambda-deps)."""
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    LocalPythonBundler(MONITOR_SOURCES, MONITOR_REQUIREMENTS).try_bundle(str(bundle))

    assert {path.name for path in (bundle / "functions").iterdir()} == {
        "__init__.py",
        "__pycache__",
        "common",
        "monitor",
    }
    top_level = {path.name.split("-")[0].lower() for path in bundle.iterdir()}
    assert {"numpy", "matplotlib", "functions"} <= top_level
    assert top_level.isdisjoint({"onnxruntime", "boto3", "botocore", "sklearn", "pandas"})
    assert sum(path.stat().st_size for path in bundle.rglob("*") if path.is_file()) <= MAX_BUNDLE_BYTES

    # -S: no site-packages, only the bundle (the handler module itself needs the runtime's boto3).
    probe = (
        "import os, sys; sys.path.insert(0, sys.argv[1]); os.environ['MPLCONFIGDIR'] = sys.argv[2]; "
        "import matplotlib, numpy; assert matplotlib.__file__.startswith(sys.argv[1]); "
        "from functions.monitor import run; from functions.monitor.chart import drift_chart; "
        "assert drift_chart([('a', 0.5)], threshold=0.2, title='t').startswith(b'\\x89PNG')"
    )
    subprocess.run([sys.executable, "-S", "-c", probe, str(bundle), str(tmp_path / "mpl")], check=True, cwd=REPO_ROOT)
