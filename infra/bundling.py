"""Lambda ZIP assets built on this machine, without Docker.

The bundler copies only the ``functions/`` subpackages a function needs, adds the pinned third-party wheels for
the Lambda platform (installed once per requirements file into ``.cache/lambda-deps/``), and precompiles
everything for Python 3.12. Each bundled Lambda's third-party packages are pinned, with hashes, in a requirements
file exported from uv.lock (:class:`PinnedRequirements`); ``python -m infra.bundling`` regenerates them all.
"""

from __future__ import annotations

import compileall
import ensurepip
import hashlib
import importlib.util
import os
import py_compile
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import ILocalBundling

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE_ROOT = REPO_ROOT / ".cache" / "lambda-deps"

LAMBDA_PYTHON = (3, 12)
# manylinux_2_28 first: with manylinux2014 alone pip silently settles for old releases and finds no onnxruntime.
PIP_PLATFORM_OPTIONS = (
    "--only-binary=:all:",
    "--platform", "manylinux_2_28_x86_64",
    "--platform", "manylinux2014_x86_64",
    "--python-version", "{}.{}".format(*LAMBDA_PYTHON),
    "--implementation", "cp",
)  # fmt: skip
# The Lambda Python runtime ships these; bundling them would only shadow the runtime's patched copies.
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3")
UV_EXPORT = ("export", "--frozen", "--no-dev", "--no-emit-project", "--format", "requirements-txt")
# Never shipped: stale bytecode from this machine, and the pin file itself.
SOURCE_IGNORE = ("__pycache__", "*.pyc", "requirements*.txt")
# Part of every cache key and asset hash, so changing how dependencies are installed invalidates both.
RECIPE = " ".join(("pip-install", *PIP_PLATFORM_OPTIONS, "no-tests", "pyc-unchecked-hash"))


class BundlingError(RuntimeError):
    """The Lambda bundle could not be built."""


def find_uv() -> str | None:
    return os.environ.get("UV") or shutil.which("uv")


@dataclass(frozen=True)
class PinnedRequirements:
    """The committed requirements file of one bundled Lambda, and the ``uv export`` that produces it."""

    path: Path
    # Which Lambda, for the file's header.
    bundle: str
    # Selects the packages: extras, --prune, --no-emit-package.
    export_options: tuple[str, ...]

    @property
    def header(self) -> str:
        return (
            f"# The third-party packages bundled into the {self.bundle} (infra/bundling.py), exported from uv.lock.\n"
            "# Do not edit: regenerate with `python -m infra.bundling` (uv on PATH or in $UV) after changing uv.lock.\n"
        )

    def export(self, uv: str) -> str:
        """The file as it should be committed: the header and ``uv export``'s output."""
        command = [uv, *UV_EXPORT, *self.export_options]
        result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise BundlingError(f"uv export failed:\n{result.stderr}")
        return self.header + result.stdout


def _base_dependencies() -> list[str]:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    return [re.split(r"[^A-Za-z0-9._-]", spec, maxsplit=1)[0] for spec in project["dependencies"]]


def _extra_export(extras: tuple[str, ...], keep: tuple[str, ...]) -> tuple[str, ...]:
    """``uv export`` options for extras plus the project's own dependencies named in ``keep``; the others are
    pruned with whatever only they need (boto3 and botocore among them: the Lambda runtime provides them)."""
    pruned = [name for name in _base_dependencies() if name.lower() not in keep]
    return (
        *(arg for extra in extras for arg in ("--extra", extra)),
        *(arg for name in pruned for arg in ("--prune", name)),
    )


@dataclass(frozen=True)
class LambdaBundle:
    """What one kind of Lambda is built from: its source folders and its pinned third-party packages."""

    sources: tuple[str, ...]
    requirements: PinnedRequirements


# The inference Lambda: the serving set (the project's dependencies) less what the runtime provides.
INFERENCE = LambdaBundle(
    ("functions/__init__.py", "functions/common", "functions/inference"),
    PinnedRequirements(
        REPO_ROOT / "functions" / "inference" / "requirements.txt",
        "inference Lambda",
        tuple(arg for package in RUNTIME_PROVIDED for arg in ("--no-emit-package", package)),
    ),
)
# The drift monitor: numpy of the serving set, and the ``monitor`` extra (matplotlib, Powertools).
MONITOR = LambdaBundle(
    ("functions/__init__.py", "functions/common", "functions/monitor"),
    PinnedRequirements(
        REPO_ROOT / "functions" / "monitor" / "requirements.txt",
        "drift monitor Lambda",
        _extra_export(("monitor",), ("numpy",)),
    ),
)
# The training workflow's steps: the ``workflow`` extra (Powertools) only.
WORKFLOW = LambdaBundle(
    ("functions/__init__.py", "functions/common", "functions/workflow"),
    PinnedRequirements(
        REPO_ROOT / "functions" / "workflow" / "requirements.txt",
        "training workflow Lambdas",
        _extra_export(("workflow",), ()),
    ),
)
# The workflow's HoldOut step: the workflow's packages and pyarrow (152 MiB installed; no room for onnxruntime).
HOLDOUT = LambdaBundle(
    WORKFLOW.sources,
    PinnedRequirements(
        REPO_ROOT / "functions" / "workflow" / "requirements-holdout.txt",
        "workflow's HoldOut Lambda",
        _extra_export(("workflow", "holdout"), ()),
    ),
)
# The workflow's Evaluate step: the workflow's packages, and what the inference package's model loader imports
# (ONNX Runtime, numpy, and orjson for its request parser) to score the models.
EVALUATE = LambdaBundle(
    (*WORKFLOW.sources, "functions/inference"),
    PinnedRequirements(
        REPO_ROOT / "functions" / "workflow" / "requirements-evaluate.txt",
        "workflow's Evaluate Lambda",
        _extra_export(("workflow",), ("numpy", "onnxruntime", "orjson")),
    ),
)
# Batch scoring: the inference package's model and answers, so the inference Lambda's pins (one cached install for
# both). Parquet input is left out: pyarrow (152 MiB installed) on top of these (135 MiB) passes Lambda's 250 MB.
BATCH = LambdaBundle(
    ("functions/__init__.py", "functions/common", "functions/inference", "functions/batch"),
    INFERENCE.requirements,
)
# The bundles whose pin files `python -m infra.bundling` writes (BATCH shares INFERENCE's).
BUNDLES = (INFERENCE, MONITOR, WORKFLOW, HOLDOUT, EVALUATE)


def _pip_command() -> list[str]:
    """pip under this interpreter; uv creates venvs without pip, so fall back to the wheel ensurepip ships."""
    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip"]
    wheels = sorted((Path(ensurepip.__file__).parent / "_bundled").glob("pip-*.whl"))
    if not wheels:
        raise BundlingError("pip is needed to install the Lambda dependencies: add it to the project's venv")
    # pip runs straight from its wheel (how get-pip bootstraps it), with nothing installed.
    return [sys.executable, f"{wheels[-1]}/pip"]


def _link_or_copy(source: str, target: str) -> None:
    # Hard links keep repeated bundles of ~140 MiB of wheels cheap; fall back across file systems.
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _compile(directory: Path) -> None:
    """Precompile for the Lambda runtime: it cannot write ``__pycache__``, so cold starts would recompile.

    Unchecked-hash pycs stay valid although the asset zip resets every file's modification time.
    """
    if sys.version_info[:2] != LAMBDA_PYTHON:
        raise BundlingError(
            "bundling must run on Python {}.{} to precompile for the Lambda runtime".format(*LAMBDA_PYTHON)
        )
    compileall.compile_dir(directory, quiet=2, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)


def _remove_package_tests(directory: Path) -> None:
    """Drop ``tests`` folders inside installed packages (numpy ships tens of MiB of them); nothing imports them."""
    for tests in sorted(directory.glob("*/**/tests"), reverse=True):
        if tests.is_dir():
            shutil.rmtree(tests)


@jsii.implements(ILocalBundling)
class LocalPythonBundler:
    """``ILocalBundling`` for a Python Lambda: ``sources`` (paths under the repo root) plus pinned wheels."""

    def __init__(
        self,
        sources: Sequence[str],
        requirements: Path | None = None,
        *,
        root: Path = REPO_ROOT,
        cache_root: Path = CACHE_ROOT,
    ) -> None:
        self._root = root
        self._sources = tuple(root / source for source in sources)
        self._requirements = requirements
        self._cache_root = cache_root
        missing = [
            str(path) for path in (*self._sources, *([requirements] if requirements else [])) if not path.exists()
        ]
        if missing:
            raise BundlingError(f"Lambda bundle inputs not found: {', '.join(missing)}")

    def asset_hash(self) -> str:
        """A hash of exactly what goes into the bundle, so an unchanged function is not re-uploaded."""
        digest = hashlib.sha256(RECIPE.encode())
        for path in self._source_files():
            digest.update(path.relative_to(self._root).as_posix().encode() + b"\0" + path.read_bytes())
        if self._requirements is not None:
            digest.update(b"requirements\0" + self._requirements.read_bytes())
        return digest.hexdigest()

    def try_bundle(self, output_dir: str, *_options: Any, **_keyword_options: Any) -> bool:
        """Build the bundle in ``output_dir``. CDK's bundling options (jsii passes them as one positional struct,
        the typed protocol declares them as keywords) describe the Docker fallback and are not needed here."""
        output = Path(output_dir)
        for path in self._source_files():
            target = output / path.relative_to(self._root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
        _compile(output)
        if self._requirements is not None:
            shutil.copytree(self.dependencies(), output, dirs_exist_ok=True, copy_function=_link_or_copy)
        return True

    def dependencies(self) -> Path:
        """The installed, precompiled wheels for this requirements file, built on first use and then reused."""
        assert self._requirements is not None
        key = hashlib.sha256(RECIPE.encode() + b"\0" + self._requirements.read_bytes()).hexdigest()
        cached = self._cache_root / key
        if cached.is_dir():
            return cached
        self._cache_root.mkdir(parents=True, exist_ok=True)
        # Install beside the cache and rename into place, so an interrupted install is never mistaken for one.
        staging = Path(tempfile.mkdtemp(prefix=f".{key[:12]}-", dir=self._cache_root))
        try:
            self._pip_install(staging)
            _remove_package_tests(staging)
            _compile(staging)
            staging.rename(cached)
        except OSError:
            if not cached.is_dir():
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return cached

    def _pip_install(self, target: Path) -> None:
        assert self._requirements is not None
        hashed = "--hash=" in self._requirements.read_text()
        command = [
            *_pip_command(), "install", "--no-compile", "--no-input", "--disable-pip-version-check", "--quiet",
            *PIP_PLATFORM_OPTIONS, *(["--require-hashes"] if hashed else []),
            "--target", str(target), "-r", str(self._requirements),
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise BundlingError(f"pip install for the Lambda bundle failed:\n{result.stderr}")

    def _source_files(self) -> Iterator[Path]:
        """The files copied into the bundle, and hashed for it."""
        for source in self._sources:
            candidates = sorted(source.rglob("*")) if source.is_dir() else [source]
            for path in candidates:
                parts = path.relative_to(source.parent).parts
                if path.is_file() and not any(fnmatch(part, p) for part in parts for p in SOURCE_IGNORE):
                    yield path


def main() -> None:
    uv = find_uv()
    if uv is None:
        raise SystemExit("uv not found: put it on PATH or set UV=/path/to/uv")
    for bundle in BUNDLES:
        pinned = bundle.requirements
        pinned.path.write_text(pinned.export(uv))
        print(f"wrote {pinned.path.relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    main()
