"""Captured predictions labelled by their ground-truth feedback: the one join of captures and feedback.

The monitor joins them to measure live quality, Assemble to add training rows; both by the same rules:

- the latest feedback per prediction id wins (a client may correct itself; ISO 8601 UTC times sort as text);
- feedback whose id this service never issued is dropped (the id's checksum, :func:`records.prediction_time`);
- feedback about a prediction served more than ``max_age`` before ``now`` is dropped (the id says when);
- the truth must fit the task of the model that served the prediction: a label for a classifier, a finite number
  for a regressor. A caller that knows that task (the monitor: the champion's, whose captures it reads) drops
  misfits before reading any capture; otherwise each capture tells (a classifier's has a label, a regressor's a
  value);
- only the capture partitions the ids point at are read: the id's time names the hour (:func:`layout.capture_hours`),
  the caller names the model versions. Feedback whose prediction is not there (not sampled, expired, served by
  another version) is counted unmatched, never guessed.

:func:`plan_join` and :func:`join` are pure; :class:`CaptureReader` reads the records from S3 (plain or gzipped
JSON lines, in the layout of :mod:`functions.common.layout`). Standard library only.
"""

from __future__ import annotations

import gzip
import math
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from functions.common.bundle import TASKS, Task
from functions.common.layout import capture_hour_prefix, capture_hours, capture_model_version, feedback_hour_prefix
from functions.common.records import (
    FeedbackRecord,
    InvalidPredictionId,
    PredictionRecord,
    parse_json_lines,
    prediction_time,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_GZIP_MAGIC = b"\x1f\x8b"
Truth = str | float


def truth(record: FeedbackRecord, task: Task) -> Truth | None:
    """The feedback's truth for a model of ``task`` (a label as text, or a finite number); None if it has none."""
    if task == "regression":
        value = record.value
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return None
        return value
    return None if record.label is None else str(record.label)


def served_task(capture: PredictionRecord) -> Task | None:
    """The task of the model that served a captured prediction, by its answer; None if it has none."""
    if capture.label is not None:
        return "classification"
    return "regression" if isinstance(capture.value, int | float) else None


@dataclass
class Dropped:
    """Feedback dropped before the join, by reason."""

    # Prediction ids this service did not issue.
    invalid_ids: int = 0
    # No truth for the task (when the caller knows it), else neither a label nor a finite value.
    unlabelled: int = 0
    # Earlier feedback for the same prediction (the latest wins).
    superseded: int = 0
    # About a prediction served longer than the feedback age limit ago.
    expired: int = 0

    @property
    def total(self) -> int:
        return self.invalid_ids + self.unlabelled + self.superseded + self.expired


@dataclass(frozen=True)
class JoinPlan:
    """The usable feedback (one per prediction: the latest), and which capture hours hold its predictions."""

    feedback: dict[str, FeedbackRecord]
    # hour partition value (layout.hour_value) -> the prediction ids whose capture may have arrived in it
    hours: dict[str, set[str]]
    # The task every capture to be joined has, when the caller knows it.
    task: Task | None = None
    dropped: Dropped = field(default_factory=Dropped)

    @property
    def rejected(self) -> int:
        return self.dropped.total


@dataclass(frozen=True)
class Joined:
    """The (capture, feedback) pairs by prediction id, with each pair's truth."""

    pairs: list[tuple[PredictionRecord, FeedbackRecord]] = field(default_factory=list)
    truths: dict[str, Truth] = field(default_factory=dict)
    # Usable feedback whose prediction is not among the captures read.
    unmatched: int = 0
    # Feedback whose truth does not fit the task of the model that served its prediction.
    misfits: int = 0


def plan_join(feedback: Iterable[FeedbackRecord], task: Task | None, now: datetime, max_age: timedelta) -> JoinPlan:
    """Keep the latest usable feedback per prediction id and locate each prediction's capture hours.

    ``task``: the task of every model whose captures will be joined, when the caller knows it (None: any)."""
    tasks = TASKS if task is None else (task,)
    dropped = Dropped()
    latest: dict[str, FeedbackRecord] = {}
    for record in feedback:
        if all(truth(record, candidate) is None for candidate in tasks):
            dropped.unlabelled += 1
            continue
        previous = latest.get(record.prediction_id)
        if previous is not None:
            dropped.superseded += 1  # of the two, the later one counts
        if previous is None or record.time >= previous.time:
            latest[record.prediction_id] = record
    usable: dict[str, FeedbackRecord] = {}
    hours: dict[str, set[str]] = defaultdict(set)
    oldest = now - max_age
    for prediction_id, record in latest.items():
        try:
            served = prediction_time(prediction_id)
        except InvalidPredictionId:
            dropped.invalid_ids += 1
            continue
        if served < oldest:
            dropped.expired += 1
            continue
        usable[prediction_id] = record
        for hour in capture_hours(served):
            hours[hour].add(prediction_id)
    return JoinPlan(usable, dict(hours), task, dropped)


def join(plan: JoinPlan, captures: Mapping[str, PredictionRecord]) -> Joined:
    """Pair the plan's feedback with the captures of its predictions, in prediction id order."""
    pairs: list[tuple[PredictionRecord, FeedbackRecord]] = []
    truths: dict[str, Truth] = {}
    unmatched = misfits = 0
    for prediction_id, record in sorted(plan.feedback.items()):
        capture = captures.get(prediction_id)
        if capture is None:
            unmatched += 1
            continue
        task = plan.task or served_task(capture)
        found = None if task is None else truth(record, task)
        if found is None:
            misfits += 1
            continue
        pairs.append((capture, record))
        truths[prediction_id] = found
    return Joined(pairs, truths, unmatched, misfits)


# -- reading from S3 --------------------------------------------------------------------------------------------


def object_records(body: bytes) -> list[dict[str, Any]]:
    """The records of one capture or feedback object: JSON lines, gzip-compressed (as Firehose writes them) or
    plain. Raises ValueError, OSError or EOFError for an object that is neither."""
    return list(parse_json_lines(gzip.decompress(body) if body[:2] == _GZIP_MAGIC else body))


@dataclass
class ReadCounts:
    objects: int = 0
    # Objects that are not JSON lines, and records that are not records of the expected kind.
    malformed_objects: int = 0
    malformed_records: int = 0


class CaptureReader:
    """Captured predictions and feedback in ``bucket``, under the prefixes the deployment configured."""

    def __init__(self, s3: S3Client, bucket: str, capture_prefix: str, feedback_prefix: str) -> None:
        self._s3 = s3
        self.bucket = bucket
        self.capture_prefix = capture_prefix
        self.feedback_prefix = feedback_prefix
        self.counts = ReadCounts()

    def feedback_records(
        self, hours: Iterable[str], modified_since: datetime | None = None
    ) -> Iterator[FeedbackRecord]:
        """The feedback that arrived in ``hours``, in objects written since ``modified_since`` (None: all)."""
        for hour in hours:
            for data in self._records(feedback_hour_prefix(self.feedback_prefix, hour), modified_since):
                try:
                    record = FeedbackRecord.from_dict(data)
                except TypeError:
                    record = None
                if record is None or not isinstance(record.prediction_id, str) or not isinstance(record.time, str):
                    self.counts.malformed_records += 1
                    continue
                yield record

    def prediction_records(
        self, version: str, hours: Iterable[str], modified_since: datetime | None = None
    ) -> Iterator[PredictionRecord]:
        """The predictions of ``version`` that arrived in ``hours``, in objects written since ``modified_since``."""
        for hour in hours:
            for data in self._records(capture_hour_prefix(self.capture_prefix, version, hour), modified_since):
                record = self._prediction(data)
                if record is not None and record.model_version == version:
                    yield record

    def model_versions(self) -> list[str]:
        """Every model version with a capture partition."""
        paginator = self._s3.get_paginator("list_objects_v2")
        folders = (
            entry["Prefix"]
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.capture_prefix, Delimiter="/")
            for entry in page.get("CommonPrefixes", [])
        )
        return [version for folder in folders if (version := capture_model_version(self.capture_prefix, folder))]

    def captures(self, versions: Sequence[str], hours: Mapping[str, set[str]]) -> dict[str, PredictionRecord]:
        """The captured predictions of ``versions`` with the ids ``hours`` names per capture hour
        (:attr:`JoinPlan.hours`): only those partitions are read."""
        found: dict[str, PredictionRecord] = {}
        for hour, ids in sorted(hours.items()):
            for version in versions:
                for record in self.prediction_records(version, [hour]):
                    if record.prediction_id in ids:
                        found.setdefault(record.prediction_id, record)
        return found

    def _prediction(self, data: dict[str, Any]) -> PredictionRecord | None:
        try:
            record = PredictionRecord.from_dict(data)
        except TypeError:
            self.counts.malformed_records += 1
            return None
        if not isinstance(record.features, Mapping) or not isinstance(record.prediction_id, str):
            self.counts.malformed_records += 1
            return None
        return record

    def _records(self, prefix: str, modified_since: datetime | None) -> Iterator[dict[str, Any]]:
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                if modified_since is not None and item["LastModified"] < modified_since:
                    continue
                body = self._s3.get_object(Bucket=self.bucket, Key=item["Key"])["Body"].read()
                self.counts.objects += 1
                try:
                    records = object_records(body)
                except (ValueError, OSError, EOFError):
                    self.counts.malformed_objects += 1
                    continue
                yield from records
