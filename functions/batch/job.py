"""A batch run's two ends: resolving the request once (which version, which prefix) before the Map, and summarising
every object's result after it.

The run's verdict is the summary's, from the objects listed under the prefix and the result each scoring wrote:
an object without a result failed (its scoring raised, timed out, or the Map stopped before it). The run fails
when the failed share of the CSV objects exceeds the tolerated percentage. (The Map stops early at that share of
all its items, where skipped objects count as successes: a stopped run always fails the summary's test too.)
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from functions.batch.layout import BATCH, BatchLayout, is_scored
from functions.common.registry import Registry

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

DEFAULT_TOLERATED_FAILURE_PERCENT = 10.0
# How many failed objects the summary names (all are counted; summary.json lists every one).
MAX_LISTED_FAILURES = 20
NOT_SCORED = "no result: its scoring failed, timed out or never ran (see the Map run's failed items)"


class BatchRefused(ValueError):
    """The request cannot run: an input outside the batch prefix, an unknown version, capture without a stream."""


@dataclass(frozen=True)
class ModelRef:
    version: str
    archive_key: str
    sha256: str


@dataclass(frozen=True)
class Job:
    """What every item of the Map gets: the resolved request."""

    run: str
    bucket: str
    prefix: str
    model: ModelRef
    capture: bool
    tolerated_failure_percent: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Job:
        return cls(**{**data, "model": ModelRef(**data["model"])})


def split_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise BatchRefused(
            f"the input must be an S3 prefix like s3://<bucket>/{BATCH.input_prefix}<name>/, got {uri!r}"
        )
    bucket, _, prefix = uri[5:].partition("/")
    return bucket, prefix


def resolve(
    request: Mapping[str, Any],
    run: str,
    *,
    registry: Registry,
    data_bucket: str,
    capture_stream: str | None,
    layout: BatchLayout = BATCH,
) -> Job:
    """The request as the execution received it (``input``, optional ``version``, ``capture`` and
    ``tolerated_failure_percent``), checked and with its model version pinned."""
    bucket, prefix = split_s3_uri(str(request.get("input", "")))
    if bucket != data_bucket or not prefix.startswith(layout.input_prefix) or prefix == layout.input_prefix:
        raise BatchRefused(
            f"batch scoring reads a prefix under s3://{data_bucket}/{layout.input_prefix} (not the whole of it), "
            f"got s3://{bucket}/{prefix}"
        )
    capture = request.get("capture") is True
    if capture and not capture_stream:
        raise BatchRefused("capture was asked for but this deployment captures nothing (capture.enabled is false)")
    tolerated = request.get("tolerated_failure_percent", DEFAULT_TOLERATED_FAILURE_PERCENT)
    if isinstance(tolerated, bool) or not isinstance(tolerated, int | float) or not 0 <= tolerated <= 100:
        raise BatchRefused(f"tolerated_failure_percent must be a number from 0 to 100, got {tolerated!r}")
    version = request.get("version")
    if version:
        record = registry.get_version(str(version))  # RegistryError: unknown version
        model = ModelRef(record.version, record.archive_key, record.sha256)
    else:
        pointer = registry.champion()
        if pointer is None:
            raise BatchRefused("the registry has no champion yet: name a version")
        model = ModelRef(pointer.version, pointer.archive_key, pointer.sha256)
    return Job(run, bucket, prefix, model, capture, float(tolerated))


@dataclass
class Summary:
    run: str
    input: str
    output: str
    model_version: str
    objects: int = 0
    scored_objects: int = 0
    skipped_objects: int = 0
    failed_objects: int = 0
    rows: int = 0
    scored_rows: int = 0
    bad_rows: int = 0
    captured: int = 0
    capture_lost: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    tolerated_failure_percent: float = DEFAULT_TOLERATED_FAILURE_PERCENT

    @property
    def failed_percent(self) -> float:
        attempted = self.scored_objects + self.failed_objects
        return 100.0 * self.failed_objects / attempted if attempted else 0.0

    @property
    def outcome(self) -> str:
        return "failed" if self.failed_percent > self.tolerated_failure_percent else "succeeded"

    @property
    def message(self) -> str:
        return (
            f"{self.scored_objects} of {self.objects} objects scored, {self.failed_objects} failed "
            f"({self.failed_percent:.1f}%, tolerated {self.tolerated_failure_percent:g}%), "
            f"{self.skipped_objects} skipped; {self.scored_rows} of {self.rows} rows scored, {self.bad_rows} bad"
            + (f"; {self.captured} captured, {self.capture_lost} lost" if self.captured or self.capture_lost else "")
        )

    def to_dict(self, listed: int | None = MAX_LISTED_FAILURES) -> dict[str, Any]:
        data = asdict(self)
        data["failures"] = self.failures[:listed]
        data["skipped"] = self.skipped[:listed]
        return {
            **data,
            "failed_percent": round(self.failed_percent, 3),
            "outcome": self.outcome,
            "message": self.message,
        }


def summarise(s3: S3Client, job: Job, layout: BatchLayout = BATCH) -> Summary:
    """Count every object under the job's prefix by its result, write ``summary.json`` (every failure listed) and
    return the summary."""
    summary = Summary(
        run=job.run,
        input=f"s3://{job.bucket}/{job.prefix}",
        output=f"s3://{job.bucket}/{layout.output_folder(job.prefix)}",
        model_version=job.model.version,
        tolerated_failure_percent=job.tolerated_failure_percent,
    )
    keys = list(_keys(s3, job.bucket, job.prefix))
    summary.objects = len(keys)
    scored = [key for key in keys if is_scored(key)]
    summary.skipped = [key for key in keys if not is_scored(key)]
    summary.skipped_objects = len(summary.skipped)
    # Small reads, one per object: threads overlap their round trips.
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(lambda key: _result(s3, job.bucket, layout.result_key(job.run, key)), scored))
    for key, result in zip(scored, results, strict=True):
        if result is None or result.get("status") != "scored":
            summary.failed_objects += 1
            summary.failures.append({"key": key, "error": NOT_SCORED if result is None else str(result.get("error"))})
            continue
        summary.scored_objects += 1
        for name in ("rows", "bad_rows", "captured", "capture_lost"):
            setattr(summary, name, getattr(summary, name) + int(result[name]))
        summary.scored_rows += int(result["scored"])
    s3.put_object(
        Bucket=job.bucket,
        Key=layout.summary_key(job.run),
        Body=json.dumps(summary.to_dict(listed=None), indent=2).encode(),
        ContentType="application/json",
    )
    return summary


def _keys(s3: S3Client, bucket: str, prefix: str) -> Iterator[str]:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            yield item["Key"]


def _result(s3: S3Client, bucket: str, key: str) -> dict[str, Any] | None:
    try:
        return dict(json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))
    except s3.exceptions.NoSuchKey:
        return None
