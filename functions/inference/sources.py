"""Where the served model comes from, and when it is replaced.

Two sources: an extracted bundle directory (local runs, tests) and the S3 registry's champion. The
:class:`ModelProvider` asks its source what to serve at most once per refresh interval, loads a new revision
beside the live one and swaps it in only once it is verified and open: a tampered or broken bundle is refused
(logged, counted) and the previous model keeps serving. A refused revision is retried no sooner than the next
check. Checks run inside a request: in Lambda nothing runs between invocations.

boto3 is imported only when the registry is first read: a directory-served function never loads it.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from functions.common.bundle import ARCHIVE_FILE, extract_archive
from functions.inference.errors import ModelUnavailable
from functions.inference.model import Model, load_model
from functions.inference.settings import InferenceSettings
from functions.inference.telemetry import Telemetry

if TYPE_CHECKING:
    from functions.common.registry import Registry

_VARIABLES = InferenceSettings.variables()
NO_SOURCE = f"no model is configured: set {_VARIABLES['model_dir']} or {_VARIABLES['model_bucket']}"


@dataclass(frozen=True)
class Revision:
    """What a source offers: two equal revisions load the same model."""

    location: str
    version: str | None = None
    sha256: str | None = None

    @property
    def name(self) -> str:
        return self.version or self.location


class ModelSource(Protocol):
    # Where the models come from, for the logs.
    location: str
    # Why nothing is served while latest() returns None, for the clients.
    empty: str

    def latest(self) -> Revision | None: ...

    def load(self, revision: Revision) -> Model: ...


class DirectorySource:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.location = str(path)
        self.empty = "the model directory does not exist"

    def latest(self) -> Revision | None:
        return Revision(self.location) if self.path.is_dir() else None

    def load(self, revision: Revision) -> Model:
        return load_model(self.path, source=str(self.path))


class RegistrySource:
    """The champion of an S3 registry, downloaded to ``work_dir`` and checked before it is opened."""

    def __init__(self, bucket: str, prefix: str, work_dir: Path) -> None:
        self._bucket = bucket
        self._prefix = prefix
        self._work_dir = work_dir
        self._registry: Registry | None = None
        self._current: Path | None = None
        self.location = f"s3://{bucket}/{prefix}"
        self.empty = "the registry has no champion yet"

    @property
    def registry(self) -> Registry:
        # Built on first use, inside the provider's error handling: an AWS SDK that cannot start (no region,
        # no credentials) makes the API answer 503 instead of failing the import.
        if self._registry is None:
            import boto3

            from functions.common.registry import Registry

            self._registry = Registry(boto3.client("s3"), self._bucket, self._prefix)
        return self._registry

    def latest(self) -> Revision | None:
        pointer = self.registry.champion()
        if pointer is None:
            return None
        return Revision(pointer.archive_key, pointer.version, pointer.sha256)

    def load(self, revision: Revision) -> Model:
        assert revision.version is not None and revision.sha256 is not None, "registry revisions are complete"
        target = self._work_dir / f"{revision.version}-{revision.sha256[:12]}"
        shutil.rmtree(target, ignore_errors=True)
        try:
            archive = self.registry.fetch_archive(revision.location, revision.sha256, target / ARCHIVE_FILE)
            extract_archive(archive, target / "bundle")
            archive.unlink()
            version = revision.version
            model = load_model(
                target / "bundle",
                source=f"s3://{self._bucket}/{revision.location}",
                version=version,
                # Read beside the version on the first GET /model, not with the archive: no load waits for it.
                card=lambda: self.registry.get_card(version),
            )
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
        # The previous bundle's files are no longer needed: onnxruntime holds the graph in memory.
        if self._current is not None and self._current != target:
            shutil.rmtree(self._current, ignore_errors=True)
        self._current = target
        return model


def model_source(settings: InferenceSettings) -> ModelSource | None:
    if settings.model_dir is not None:
        return DirectorySource(settings.model_dir)
    if settings.model_bucket:
        return RegistrySource(settings.model_bucket, settings.registry_prefix, settings.models_dir)
    return None


class ModelProvider:
    def __init__(
        self,
        source: ModelSource | None,
        refresh_seconds: float,
        telemetry: Telemetry,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._refresh_seconds = refresh_seconds
        self._telemetry = telemetry
        self._clock = clock
        self._model: Model | None = None
        self._revision: Revision | None = None
        self._unavailable = NO_SOURCE if source is None else "no model loaded yet"
        self._next_check = -float("inf")
        self._lock = threading.Lock()

    def current(self) -> Model:
        """The model to serve now; raises :class:`ModelUnavailable` when there is none."""
        if self._clock() >= self._next_check:
            self.refresh()
        model = self._model
        if model is None:
            raise ModelUnavailable(f"no model available: {self._unavailable}")
        return model

    def refresh(self) -> None:
        # One refresh at a time; concurrent requests keep serving the live model meanwhile.
        if self._source is None or not self._lock.acquire(blocking=False):
            return
        try:
            self._next_check = self._clock() + self._refresh_seconds
            self._refresh(self._source)
        finally:
            self._lock.release()

    def _refresh(self, source: ModelSource) -> None:
        try:
            revision = source.latest()
        except Exception as exc:
            self._telemetry.exception("checking for a new model failed; keeping the current one", exc)
            self._unavailable = "the model source cannot be read (see the service logs)"
            return
        if revision is None:
            if self._model is None:
                self._unavailable = source.empty
                self._telemetry.event("WARNING", "no model to serve", reason=source.empty, source=source.location)
            return
        if revision == self._revision:
            return
        started = time.perf_counter()
        try:
            model = source.load(revision)
        except Exception as exc:
            self._telemetry.model_load_failed(revision.name, exc)
            self._unavailable = f"the model {revision.name} was refused (see the service logs)"
            return
        # The swap: one reference assignment, so a request sees either the old model or the new one.
        self._model, self._revision = model, revision
        seconds = round(time.perf_counter() - started, 3)
        self._telemetry.event("INFO", "model loaded", version=model.version, source=model.source, load_seconds=seconds)
