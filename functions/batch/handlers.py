"""The batch state machine's Lambda entry points: ``resolve`` (once), ``score`` (once per object, in the Map),
``summarise`` (once). Thin: the work is in :mod:`functions.batch.job` and :mod:`functions.batch.scoring`.

``score`` keeps the model it loaded for the next object the same container scores (most of a run's objects).
An object that cannot be scored gets a result saying why and then raises :class:`ObjectFailed`, so that the
Map counts it against the tolerated failure percentage.
"""

from __future__ import annotations

import json
import tempfile
from functools import cache
from typing import TYPE_CHECKING, Any

from functions.batch.job import Job, resolve, summarise
from functions.batch.layout import BATCH, is_scored
from functions.batch.scoring import Capture, ObjectRefused, score_stream
from functions.batch.settings import BatchSettings
from functions.common.records import IdKeys
from functions.common.registry import Registry
from functions.inference.capture import CaptureLog
from functions.inference.id_keys import id_keys
from functions.inference.model import Model
from functions.inference.sources import RegistrySource, Revision
from functions.inference.telemetry import Telemetry

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


class ObjectFailed(Exception):
    """The object was not scored; its result record says why."""


@cache
def _settings() -> BatchSettings:
    return BatchSettings.from_env()


@cache
def _telemetry() -> Telemetry:
    """JSON log lines as the inference Lambda writes them: the batch functions ship its code and packages."""
    settings = _settings()
    return Telemetry(settings.service, level=settings.log_level)


@cache
def _keys() -> IdKeys:
    """The keys the inference API mints with: /feedback accepts the ids of batch predictions too."""
    return id_keys(_settings().id_key_secret, _telemetry())


@cache
def _s3() -> S3Client:
    import boto3

    return boto3.client("s3")


@cache
def _source() -> RegistrySource:
    settings = _settings()
    return RegistrySource(settings.model_bucket, settings.registry_prefix, settings.scratch / "models")


_loaded: dict[Revision, Model] = {}


def _model(job: Job) -> Model:
    revision = Revision(job.model.archive_key, job.model.version, job.model.sha256)
    if revision not in _loaded:
        _loaded.clear()
        _loaded[revision] = _source().load(revision)
    return _loaded[revision]


def resolve_handler(event: dict[str, Any], _context: object) -> dict[str, Any]:
    settings = _settings()
    registry = Registry(_s3(), settings.model_bucket, settings.registry_prefix)
    job = resolve(
        event["request"],
        event["run"],
        registry=registry,
        data_bucket=settings.data_bucket,
        capture_stream=settings.capture_stream,
    )
    _telemetry().event("INFO", "batch run resolved", job=job.to_dict())
    return job.to_dict()


def score_handler(event: dict[str, Any], _context: object) -> dict[str, Any]:
    job, key = Job.from_dict(event["job"]), str(event["key"])
    if not is_scored(key):
        return {"key": key, "status": "skipped"}
    settings, s3 = _settings(), _s3()
    result: dict[str, Any] = {"key": key, "model_version": job.model.version}
    try:
        model = _model(job)
        # Capture lines in this function's log, which the capture stream's subscription ships as the API's.
        capture = Capture(CaptureLog(), f"batch/{job.run}") if job.capture and settings.capture_stream else None
        settings.scratch.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=settings.scratch, suffix=".jsonl") as output:
            body = s3.get_object(Bucket=job.bucket, Key=key)["Body"]
            lines = body.iter_lines(keepends=True)
            counts = score_stream(model, lines, output, chunk_rows=settings.chunk_rows, keys=_keys(), capture=capture)
            output.flush()
            output_key = BATCH.output_key(key)
            s3.upload_file(output.name, job.bucket, output_key, ExtraArgs={"ContentType": "application/x-ndjson"})
    except (ObjectRefused, s3.exceptions.NoSuchKey) as exc:
        result.update(status="failed", error=str(exc))
    except Exception as exc:  # recorded for the summary, then raised as ObjectFailed with the trace logged
        _telemetry().exception("scoring failed", exc, key=key)
        result.update(status="failed", error=f"{type(exc).__name__}: {exc}")
    else:
        result.update(status="scored", output_key=output_key, **counts.to_dict())
    _put_result(s3, job, key, result)
    if result["status"] == "failed":
        _telemetry().event("ERROR", "batch object failed", result=result)
        raise ObjectFailed(f"{key}: {result['error']}")
    return {name: result[name] for name in ("key", "status", "rows", "scored", "bad_rows")}


def _put_result(s3: S3Client, job: Job, key: str, result: dict[str, Any]) -> None:
    s3.put_object(
        Bucket=job.bucket,
        Key=BATCH.result_key(job.run, key),
        Body=json.dumps(result).encode(),
        ContentType="application/json",
    )


def summarise_handler(event: dict[str, Any], _context: object) -> dict[str, Any]:
    summary = summarise(_s3(), Job.from_dict(event["job"]))
    _telemetry().event("INFO", "batch run summarised", summary=summary.message)
    return summary.to_dict()
