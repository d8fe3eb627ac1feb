"""Assemble a run's training set under ``<assembled_prefix><version>/`` in the data bucket.

- ``base/``: every object under the training data prefix, copied server-side (``CopyObject``, conditional on the
  ETag listed, so the copy is the object that was fingerprinted);
- ``feedback/feedback.csv`` (when feedback is included): captured predictions joined with their ground-truth
  labels. Feedback is read from the day partitions of the last ``feedback_max_age_days`` days; each prediction's
  capture is found in the capture partition of the day its id says it was served, under any model version. The
  CSV has exactly the base data's columns (the training program requires every file to have the same): the
  captured value of each feature the base data has, the label in the target column, and an empty cell (a missing
  value) for a base column the capture lacks. Feedback without a capture is counted, never guessed.

Feedback is capped (anti-poisoning: its labels come from API callers, not from the operator): at most
``max_feedback_share`` of the training set's rows are feedback, i.e. feedback rows <= share * (base rows +
feedback rows). When not every base row can be counted (Parquet files, or CSV beyond ``MAX_COUNTED_BYTES``),
the cap is taken against the rows that were counted, a lower bound: the share is never exceeded, and no feedback
is added when no base row was counted. Which joined feedback is kept when the cap bites is decided by
:func:`select_feedback`: callers take turns, so a caller flooding feedback gets only what the others leave, and
each caller's rows are ranked by a hash keyed with the run's version, so neither sending time nor chosen ids win.

``<assembled_prefix><version>.manifest.json`` (beside the run's folder, so not in the ``train`` channel) lists every
object with its size and ETag, the fingerprint and the counts.

The fingerprint is the sha256 over the sorted keys (relative to the run's folder) and, per key, the source
object's ETag (for the feedback file, the sha256 of its content): the same data gives the same fingerprint in
every run, and any change to an object, a new object or new feedback gives another.

Standard library only (csv, json): the workflow Lambdas carry no pandas.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from fractions import Fraction
from itertools import chain, islice, zip_longest
from typing import IO, TYPE_CHECKING, Any, cast

from functions.common.records import (
    MODEL_VERSION_PARTITION,
    FeedbackRecord,
    InvalidPredictionId,
    PredictionRecord,
    capture_day_prefix,
    days_between,
    feedback_day_prefix,
    parse_json_lines,
    prediction_time,
)
from functions.common.trainset import BASE_FOLDER, FEEDBACK_FILE

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# CopyObject copies objects of up to 5 GiB in one request.
MAX_COPY_BYTES = 5 * 1024**3
# The first CSV file's header is read with a ranged GET of this many bytes (more if the header is longer).
HEADER_BYTES = 64 * 1024
# Base rows are counted by streaming the CSV files only up to this total size, to stay well inside the Lambda
# timeout; files past it are not counted (the count is then a lower bound: the exact one is the training program's,
# lineage.training_data.rows).
MAX_COUNTED_BYTES = 1024**3
# The Lambda result lists at most this many objects (Step Functions state is limited to 256 KiB); the manifest
# lists them all.
MAX_LISTED_OBJECTS = 100
CSV_SUFFIX = ".csv"


class AssemblyError(Exception):
    """The training set cannot be assembled; the message says why."""


class NoTrainingData(AssemblyError):
    pass


@dataclass(frozen=True)
class AssemblyRequest:
    data_bucket: str
    training_data_prefix: str
    assembled_prefix: str
    capture_prefix: str
    feedback_prefix: str
    version: str
    target: str | None
    include_feedback: bool
    feedback_max_age_days: int
    # In (0, 1]: the most of the training set's rows that may be feedback.
    max_feedback_share: float
    now: datetime


@dataclass
class FeedbackCounts:
    """What happened to each feedback record in the window."""

    records: int = 0
    joined: int = 0
    # Feedback whose prediction has no capture (not sampled, expired, or never served by this API).
    unmatched: int = 0
    # Prediction ids this service did not issue (checksum mismatch).
    invalid_ids: int = 0
    # Feedback with neither a label nor a value.
    unlabelled: int = 0
    # Earlier feedback for the same prediction (the latest wins).
    superseded: int = 0
    # The most feedback rows max_feedback_share allowed (None: no cap), and the joined ones it left out.
    max_rows: int | None = None
    capped: int = 0
    # How many callers sent the joined feedback (records without a caller count as one).
    callers: int = 0
    # Captured features the base data does not have (dropped), and base columns the captures lack (left empty).
    dropped_features: list[str] = field(default_factory=list)
    missing_columns: list[str] = field(default_factory=list)
    skipped: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def assemble(s3: S3Client, request: AssemblyRequest) -> dict[str, Any]:
    folder = f"{request.assembled_prefix}{request.version}/"
    sources = list(_objects(s3, request.data_bucket, request.training_data_prefix))
    if not sources:
        raise NoTrainingData(
            f"no training data under s3://{request.data_bucket}/{request.training_data_prefix}: upload CSV or "
            "Parquet files there first"
        )
    too_big = [item["Key"] for item in sources if item["Size"] > MAX_COPY_BYTES]
    if too_big:
        raise AssemblyError(f"training data files over 5 GiB cannot be copied in one request; split {too_big[0]}")
    csv_sources = [item for item in sources if item["Key"].lower().endswith(CSV_SUFFIX) and item["Size"] > 0]
    header = _read_header(s3, request.data_bucket, csv_sources[0]["Key"]) if csv_sources else None
    if request.include_feedback and header is not None:
        # Checked before anything is copied: feedback rows are labelled in this column.
        if not request.target:
            raise AssemblyError("hyperparameter 'target' is required to label feedback rows")
        if request.target not in header:
            raise AssemblyError(
                f"target column {request.target!r} is not in the training data's header ({', '.join(header)})"
            )

    objects: list[dict[str, Any]] = []
    fingerprint_entries: list[tuple[str, str]] = []
    for item in sources:
        relative = BASE_FOLDER + item["Key"][len(request.training_data_prefix) :]
        response = s3.copy_object(
            Bucket=request.data_bucket,
            Key=folder + relative,
            CopySource={"Bucket": request.data_bucket, "Key": item["Key"]},
            CopySourceIfMatch=item["ETag"],
        )
        objects.append({"key": relative, "size": item["Size"], "etag": response["CopyObjectResult"]["ETag"]})
        fingerprint_entries.append((relative, item["ETag"]))

    counted_rows, all_counted = _count_rows(s3, request.data_bucket, sources)
    base_rows = counted_rows if all_counted else None
    counts: dict[str, Any] = {
        # Rows by source (None: not counted, see _count_rows), then the details of each source.
        "rows": {"base": base_rows, "feedback": 0},
        "base": {"objects": len(sources), "bytes": sum(item["Size"] for item in sources), "rows": base_rows},
    }

    if request.include_feedback:
        feedback = FeedbackCounts()
        if header is None:
            feedback.skipped = "the base data has no CSV file to take the columns from"
        else:
            feedback.max_rows = feedback_cap(counted_rows, request.max_feedback_share)
            rows = _joined_rows(s3, request, header, feedback)
            if rows:
                body = _csv(header, rows)
                written = s3.put_object(
                    Bucket=request.data_bucket, Key=folder + FEEDBACK_FILE, Body=body, ContentType="text/csv"
                )
                objects.append({"key": FEEDBACK_FILE, "size": len(body), "etag": written["ETag"]})
                fingerprint_entries.append((FEEDBACK_FILE, "sha256:" + hashlib.sha256(body).hexdigest()))
        counts["feedback"] = feedback.to_dict()
        counts["rows"]["feedback"] = feedback.joined - feedback.capped
    else:
        counts["feedback"] = {"skipped": "retraining.include_feedback is off"}

    digest = fingerprint(fingerprint_entries)
    manifest_key = f"{request.assembled_prefix}{request.version}.manifest.json"
    manifest = {"version": request.version, "fingerprint": digest, "counts": counts, "objects": objects}
    s3.put_object(
        Bucket=request.data_bucket,
        Key=manifest_key,
        Body=json.dumps(manifest, indent=2, sort_keys=True).encode(),
        ContentType="application/json",
    )
    return {
        "prefix": folder,
        "uri": f"s3://{request.data_bucket}/{folder}",
        "manifest": f"s3://{request.data_bucket}/{manifest_key}",
        "fingerprint": digest,
        "counts": counts,
        "object_count": len(objects),
        "objects": objects[:MAX_LISTED_OBJECTS],
        "objects_truncated": len(objects) > MAX_LISTED_OBJECTS,
    }


def fingerprint(entries: Iterable[tuple[str, str]]) -> str:
    """sha256 over ``key<TAB>etag`` lines, sorted by key."""
    digest = hashlib.sha256()
    for key, etag in sorted(entries):
        digest.update(f"{key}\t{etag}\n".encode())
    return digest.hexdigest()


# -- S3 reading ---------------------------------------------------------------------------------------------------


def _objects(s3: S3Client, bucket: str, prefix: str) -> Iterator[dict[str, Any]]:
    """Objects under ``prefix``, sorted by key, without folder markers."""
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            if not item["Key"].endswith("/"):
                yield {"Key": item["Key"], "Size": item["Size"], "ETag": item["ETag"]}


def _common_prefixes(s3: S3Client, bucket: str, prefix: str) -> list[str]:
    paginator = s3.get_paginator("list_objects_v2")
    return [
        entry["Prefix"]
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix, Delimiter="/")
        for entry in page.get("CommonPrefixes", [])
    ]


def _read_header(s3: S3Client, bucket: str, key: str) -> list[str]:
    size = HEADER_BYTES
    while True:
        response = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{size - 1}")
        chunk = response["Body"].read()
        complete = len(chunk) < size
        # A header record ends at the first line break outside quotes; csv finds it.
        text = chunk.decode("utf-8", errors="replace").removeprefix("\ufeff")
        if complete or "\n" in text:
            lines = io.StringIO(text, newline="")
            header = next(csv.reader(lines), None)
            if header is not None and (complete or lines.tell() < len(text)):
                if not header:
                    raise AssemblyError(f"s3://{bucket}/{key} has an empty header row")
                return header
        size *= 4


def _count_rows(s3: S3Client, bucket: str, sources: list[dict[str, Any]]) -> tuple[int, bool]:
    """Data rows of the CSV files streamed within ``MAX_COUNTED_BYTES``, and whether that is every row.

    Parquet files and CSV files past the byte budget are not counted: the count is then a lower bound.
    """
    rows = 0
    budget = MAX_COUNTED_BYTES
    complete = True
    for item in sources:
        if not item["Key"].lower().endswith(CSV_SUFFIX) or item["Size"] > budget:
            complete = False
            continue
        budget -= item["Size"]
        body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"]
        text = io.TextIOWrapper(cast(IO[bytes], body), encoding="utf-8", errors="replace", newline="")
        # Blank lines are not rows (pandas skips them too).
        rows += max(sum(1 for record in csv.reader(text) if record) - 1, 0)
    return rows, complete


def feedback_cap(base_rows: int, share: float) -> int | None:
    """The most feedback rows beside ``base_rows`` with feedback <= share * (base + feedback); None: share 1.

    The share is taken as written (0.3 is 3/10, not its binary approximation), so the bound is exact.
    """
    exact = Fraction(repr(share))
    if exact >= 1:
        return None
    return math.floor(exact * base_rows / (1 - exact))


def select_feedback(callers: Mapping[str, str], limit: int, seed: str) -> set[str]:
    """Which prediction ids' feedback to keep, at most ``limit``, from ``callers`` (prediction id -> caller).

    Callers take turns, each giving its next row, until the limit: a caller with many rows gets only what the
    others leave. Callers and each caller's rows are ordered by an HMAC keyed with ``seed`` (the run's version,
    random and unknown before the run), so the choice is reproducible for the run but cannot be aimed at.
    """

    def rank(text: str) -> bytes:
        return hmac.new(seed.encode(), text.encode(), hashlib.sha256).digest()

    by_caller: dict[str, list[str]] = {}
    for prediction_id, caller in callers.items():
        by_caller.setdefault(caller, []).append(prediction_id)
    queues = [sorted(by_caller[caller], key=rank) for caller in sorted(by_caller, key=rank)]
    turns = (prediction_id for prediction_id in chain.from_iterable(zip_longest(*queues)) if prediction_id is not None)
    return set(islice(turns, limit))


def _read_records(s3: S3Client, bucket: str, prefix: str) -> Iterator[dict[str, Any]]:
    for item in _objects(s3, bucket, prefix):
        body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        yield from parse_json_lines(body)


# -- the feedback join --------------------------------------------------------------------------------------------


def _joined_rows(
    s3: S3Client, request: AssemblyRequest, header: list[str], counts: FeedbackCounts
) -> list[dict[str, str]]:
    labels = _latest_feedback(s3, request, counts)
    # Which capture day partitions hold the predictions, from the ids alone.
    by_day: dict[date, set[str]] = {}
    for prediction_id in list(labels):
        try:
            served = prediction_time(prediction_id)
        except InvalidPredictionId:
            counts.invalid_ids += 1
            del labels[prediction_id]
            continue
        by_day.setdefault(served.date(), set()).add(prediction_id)

    captures: dict[str, PredictionRecord] = {}
    version_prefixes = [
        prefix
        for prefix in _common_prefixes(s3, request.data_bucket, request.capture_prefix)
        if prefix[len(request.capture_prefix) :].startswith(f"{MODEL_VERSION_PARTITION}=")
    ]
    for day, wanted in sorted(by_day.items()):
        for version_prefix in version_prefixes:
            model_version = version_prefix[len(request.capture_prefix) + len(MODEL_VERSION_PARTITION) + 1 : -1]
            prefix = capture_day_prefix(request.capture_prefix, model_version, day)
            for data in _read_records(s3, request.data_bucket, prefix):
                captured = data.get("prediction_id")
                if isinstance(captured, str) and captured in wanted and captured not in captures:
                    captures[captured] = PredictionRecord.from_dict(data)

    joined = {prediction_id: caller for prediction_id, (_, caller) in labels.items() if prediction_id in captures}
    counts.unmatched = len(labels) - len(joined)
    counts.joined = len(joined)
    counts.callers = len(set(joined.values()))
    kept = set(joined)
    if counts.max_rows is not None and len(joined) > counts.max_rows:
        kept = select_feedback(joined, counts.max_rows, request.version)
        counts.capped = len(joined) - len(kept)

    columns = set(header)
    dropped: set[str] = set()
    covered: set[str] = set()
    rows = []
    for prediction_id in sorted(kept):
        features = dict(captures[prediction_id].features)
        dropped.update(name for name in features if name not in columns)
        covered.update(name for name in features if name in columns)
        row = {name: _cell(features.get(name)) for name in header}
        row[str(request.target)] = labels[prediction_id][0]
        rows.append(row)
    counts.dropped_features = sorted(dropped)
    if rows:
        counts.missing_columns = sorted(columns - covered - {str(request.target)})
    return rows


def _latest_feedback(s3: S3Client, request: AssemblyRequest, counts: FeedbackCounts) -> dict[str, tuple[str, str]]:
    """prediction id -> (label (or value, as text), caller) of its latest feedback in the window."""
    start = request.now - timedelta(days=request.feedback_max_age_days)
    latest: dict[str, tuple[FeedbackRecord, str]] = {}
    for day in days_between(start, request.now):
        for data in _read_records(s3, request.data_bucket, feedback_day_prefix(request.feedback_prefix, day)):
            record = FeedbackRecord.from_dict(data)
            counts.records += 1
            if record.label is None and record.value is None:
                counts.unlabelled += 1
                continue
            earlier = latest.get(record.prediction_id)
            if earlier is not None:
                counts.superseded += 1
                if earlier[0].time > record.time:
                    continue
            latest[record.prediction_id] = (record, record.caller.identity if record.caller else "")
    return {
        prediction_id: (_cell(record.label if record.label is not None else record.value), caller)
        for prediction_id, (record, caller) in latest.items()
    }


def _cell(value: Any) -> str:
    """A captured JSON value as a CSV cell: null is an empty (missing) cell."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _csv(header: list[str], rows: Iterable[Mapping[str, str]]) -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode()
