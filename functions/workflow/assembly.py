"""Assemble a run's training set under ``<assembled_prefix><version>/`` in the data bucket.

- ``base/``: every object under the training data prefix, copied server-side (``CopyObject``, conditional on the
  ETag listed, so the copy is the object that was fingerprinted);
- ``feedback/feedback.csv`` (when feedback is included): captured predictions joined with their ground-truth
  labels by the one join of captures and feedback (:mod:`functions.common.labelled`: the latest feedback wins,
  feedback about a prediction older than ``feedback_max_age_days`` is dropped, a label must fit the task of the
  model that served the prediction). Feedback is read from the hour partitions of the last
  ``feedback_max_age_days`` days, captures from the partitions the prediction ids point at, under any model
  version. The CSV has exactly the base data's columns (the training program requires every file to have the
  same): the captured value of each feature the base data has, the label in the target column, and an empty cell
  (a missing value) for a base column the capture lacks. Feedback without a capture is counted, never guessed.

Feedback is capped (anti-poisoning: its labels come from API callers, not from the operator): at most
``max_feedback_share`` of the training set's rows are feedback, i.e. feedback rows <= share * (base rows +
feedback rows). When not every base row can be counted (Parquet files, or CSV beyond ``MAX_COUNTED_BYTES``),
the cap is taken against the rows that were counted, a lower bound: the share is never exceeded, and no feedback
is added when no base row was counted. Which joined feedback is kept when the cap bites is decided by
:func:`select_feedback`: callers take turns, so a caller flooding feedback gets only what the others leave, and
each caller's rows are ranked by a hash keyed with the run's version, so neither sending time nor chosen ids win.

The run's manifest (:func:`functions.common.layout.assembled_manifest_key`: beside the run's folder, so not in the
``train`` channel) lists every object with its size and ETag, the fingerprint and the counts.

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
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from fractions import Fraction
from itertools import chain, islice, zip_longest
from typing import IO, TYPE_CHECKING, Any, cast

from functions.common.labelled import CaptureReader, Dropped, join, plan_join
from functions.common.layout import (
    BASE_FOLDER,
    FEEDBACK_FILE,
    assembled_folder,
    assembled_manifest_key,
    hour_values,
)

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
    # Dropped before the join, by the join's rules.
    dropped: Dropped = field(default_factory=Dropped)
    # Feedback whose truth does not fit the task of the model that served its prediction.
    misfits: int = 0
    # The most feedback rows max_feedback_share allowed (None: no cap), and the joined ones it left out.
    max_rows: int | None = None
    capped: int = 0
    # How many callers sent the joined feedback (records without a caller count as one).
    callers: int = 0
    # Captured features the base data does not have (dropped), and base columns the captures lack (left empty).
    dropped_features: list[str] = field(default_factory=list)
    missing_columns: list[str] = field(default_factory=list)
    # Feedback and capture objects read, and those (or their records) that were not records of their kind.
    reads: dict[str, int] = field(default_factory=dict)
    skipped: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Flat, the reasons for dropping beside the other counts."""
        counts = dict(self.__dict__)
        return {**asdict(counts.pop("dropped")), **counts}


def assemble(s3: S3Client, request: AssemblyRequest) -> dict[str, Any]:
    folder = assembled_folder(request.assembled_prefix, request.version)
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
    manifest_key = assembled_manifest_key(request.assembled_prefix, request.version)
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


# -- the feedback join --------------------------------------------------------------------------------------------


def _joined_rows(
    s3: S3Client, request: AssemblyRequest, header: list[str], counts: FeedbackCounts
) -> list[dict[str, str]]:
    reader = CaptureReader(s3, request.data_bucket, request.capture_prefix, request.feedback_prefix)
    max_age = timedelta(days=request.feedback_max_age_days)
    # Feedback that arrived before the age limit is about a prediction served before it: it would be dropped.
    feedback = list(reader.feedback_records(hour_values(request.now - max_age, request.now)))
    # No task is given: Assemble joins the captures of several versions and reads no model's metadata, so each
    # label must fit the task of the model that served its prediction, as its capture tells.
    plan = plan_join(feedback, None, request.now, max_age)
    # Every model version's captures, not only the champion's: a training row is a captured feature row and its
    # true label, which is as valid whichever model served the prediction (and a rollback or promotion during the
    # feedback age limit must not discard labels already given).
    joined = join(plan, reader.captures(reader.model_versions(), plan.hours))

    counts.records = len(feedback)
    counts.dropped = plan.dropped
    counts.unmatched, counts.misfits = joined.unmatched, joined.misfits
    callers = {
        capture.prediction_id: record.caller.identity if record.caller else "" for capture, record in joined.pairs
    }
    counts.joined = len(callers)
    counts.callers = len(set(callers.values()))
    kept = set(callers)
    if counts.max_rows is not None and len(callers) > counts.max_rows:
        kept = select_feedback(callers, counts.max_rows, request.version)
        counts.capped = len(callers) - len(kept)

    columns = set(header)
    dropped: set[str] = set()
    covered: set[str] = set()
    rows = []
    for capture, _ in joined.pairs:
        if capture.prediction_id not in kept:
            continue
        features = dict(capture.features)
        dropped.update(name for name in features if name not in columns)
        covered.update(name for name in features if name in columns)
        row = {name: _cell(features.get(name)) for name in header}
        row[str(request.target)] = _cell(joined.truths[capture.prediction_id])
        rows.append(row)
    counts.dropped_features = sorted(dropped)
    if rows:
        counts.missing_columns = sorted(columns - covered - {str(request.target)})
    counts.reads = asdict(reader.counts)
    return rows


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
