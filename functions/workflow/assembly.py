"""Assemble a run's training set under ``<assembled_prefix><version>/`` in the data bucket, in two Lambda steps
around an Athena UNLOAD the state machine runs (``.sync``):

1. :func:`plan_assembly` copies ``base/``: every object under the training data prefix, server-side
   (``CopyObject``, conditional on the ETag listed, so the copy is the object that was fingerprinted), counts its
   rows, and (when feedback is included) plans the feedback rows: the SQL of :mod:`functions.workflow.feedback_sql`
   over the capture and feedback tables, pruned to the capture hours the usable feedback's ids name (a first small
   query) and to the model versions with a capture folder. It returns the UNLOAD statement the state machine runs,
   which writes ``feedback/`` as Parquet files: exactly the base data's columns (the training program requires
   every file to have the same), the captured value of each feature the base data has, the truth in the target
   column, NULL for a base column the capture lacks.
2. :func:`finish_assembly` lists what the UNLOAD wrote, takes the counts from one aggregate query and writes the
   manifest (:func:`functions.common.layout.assembled_manifest_key`: beside the run's folder, so not in the
   ``train`` channel): every object with its size and ETag, the fingerprint and the counts.

No capture or feedback row passes through a Lambda: their memory and time do not grow with traffic.

Feedback is capped (anti-poisoning: its labels come from API callers, not from the operator): at most
``max_feedback_share`` of the training set's rows are feedback, i.e. feedback rows <= share * (base rows +
feedback rows). When not every base row can be counted (Parquet files, or CSV beyond ``MAX_COUNTED_BYTES``),
the cap is taken against the rows that were counted, a lower bound: the share is never exceeded, and no feedback
is added when no base row was counted. Which joined feedback is kept when the cap bites is the SQL's: callers take
turns, each caller's rows ranked by a hash keyed with the run's version.

Before the cap, the SQL holds out the rows with a value the trusted data never had (a category, a number outside
its range) that fewer than ``new_value_min_callers`` distinct callers used, and counts them per value. The trusted
data's values are the live champion's (:class:`Reference`: its registered metadata records the categories and
numeric ranges it was trained on, base data and the feedback earlier runs admitted): the registry's copy is
sealed and immutable, one small read, where the base data may be Parquet or too large to scan in a Lambda. With no
champion (no model served the captures yet) nothing is held out, and the counts say so.

The fingerprint is the sha256 over sorted ``key<TAB>etag`` lines: the base objects' keys (relative to the run's
folder) with their source ETags give the base fingerprint (the same base data gives the same one in every run);
with feedback rows, the fingerprint covers the base fingerprint and each Parquet file Athena wrote with its ETag
(the files' names are the query's, so every assembly of feedback has its own fingerprint).

Standard library only (csv, json): the workflow Lambdas carry no pandas.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from fractions import Fraction
from typing import IO, TYPE_CHECKING, Any, cast

from functions.common.athena import Athena
from functions.common.bundle import Feature
from functions.common.labelled_sql import capture_hours
from functions.common.layout import (
    BASE_FOLDER,
    FEEDBACK_FOLDER,
    assembled_folder,
    assembled_manifest_key,
    capture_model_version,
)
from functions.common.text_values import parse_time
from functions.workflow.feedback_sql import COUNTS, MAX_NEW_VALUES, NEW_VALUE_COLUMNS, FeedbackQuery, KnownValues
from functions.workflow.state import AssemblyPlan, AssemblyQuery

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
# The UNLOAD statement travels in the state (256 KiB) to the Athena task; Athena takes queries up to 256 KiB.
MAX_QUERY_BYTES = 200 * 1024
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
    version: str
    target: str | None
    include_feedback: bool
    feedback_max_age_days: int
    # In (0, 1]: the most of the training set's rows that may be feedback.
    max_feedback_share: float
    # A value the trusted data never had enters training only when this many distinct callers used it.
    new_value_min_callers: int
    now: datetime


@dataclass(frozen=True)
class Reference:
    """The trusted data's values: the features of the champion ``version`` as its registered metadata records
    them."""

    version: str
    features: tuple[Feature, ...]

    def known(self, header: list[str], target: str, min_callers: int) -> KnownValues:
        """The base columns' known values; a numeric feature without a range (never a finite value) has none."""
        features = [feature for feature in self.features if feature.name in header and feature.name != target]
        return KnownValues(
            min_callers,
            categories={f.name: f.categories for f in features if f.type == "categorical"},
            ranges={
                f.name: (f.minimum, f.maximum)
                for f in features
                if f.type == "numeric" and f.minimum is not None and f.maximum is not None
            },
        )


def plan_assembly(
    s3: S3Client, athena: Athena, request: AssemblyRequest, reference: Reference | None
) -> dict[str, Any]:
    """Copy and count the base data, and plan the feedback rows (new values judged against ``reference``, None:
    no champion): the :class:`AssemblyPlan` as JSON."""
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
    header = _first_header(s3, request.data_bucket, sources)
    if request.include_feedback and header is not None:
        _check_header(header, request.target)  # before anything is copied: feedback rows are labelled there

    fingerprint_entries: list[tuple[str, str]] = []
    for item in sources:
        relative = BASE_FOLDER + item["Key"][len(request.training_data_prefix) :]
        s3.copy_object(
            Bucket=request.data_bucket,
            Key=folder + relative,
            CopySource={"Bucket": request.data_bucket, "Key": item["Key"]},
            CopySourceIfMatch=item["ETag"],
        )
        fingerprint_entries.append((relative, item["ETag"]))

    counted_rows, all_counted = _count_rows(s3, request.data_bucket, sources)
    base_rows = counted_rows if all_counted else None
    counts: dict[str, Any] = {
        # Rows by source (None: not counted, see _count_rows), then the details of each source.
        "rows": {"base": base_rows, "feedback": 0},
        "base": {"objects": len(sources), "bytes": sum(item["Size"] for item in sources), "rows": base_rows},
    }
    plan = AssemblyPlan(
        prefix=folder,
        uri=f"s3://{request.data_bucket}/{folder}",
        base_fingerprint=fingerprint(fingerprint_entries),
        counts=counts,
    )
    if not request.include_feedback:
        counts["feedback"] = {"skipped": "retraining.include_feedback is off"}
    elif header is None:
        counts["feedback"] = {"skipped": "the base data has no CSV file to take the columns from"}
    else:
        max_rows = feedback_cap(counted_rows, request.max_feedback_share)
        target = str(request.target)
        query = FeedbackQuery(
            header=header,
            target=target,
            version=request.version,
            now=request.now,
            max_age=timedelta(days=request.feedback_max_age_days),
            max_rows=max_rows,
            known=None if reference is None else reference.known(header, target, request.new_value_min_callers),
        )
        prefixes = [row["prefix"] for row in athena.run(query.id_prefixes()).records() if row["prefix"]]
        query = replace(
            query,
            hours=capture_hours(prefixes, query.window),
            model_versions=_model_versions(s3, request.data_bucket, request.capture_prefix),
        )
        unload = query.unload(f"{plan.uri}{FEEDBACK_FOLDER}")
        if len(unload.encode()) > MAX_QUERY_BYTES:
            raise AssemblyError(
                f"the feedback query is {len(unload.encode())} bytes, over {MAX_QUERY_BYTES}: the base data has too "
                f"many or too long column names ({len(header)} columns), or the champion"
                f"{'' if reference is None else ' ' + reference.version} too many categories "
                f"({_category_count(query.known)}), to add feedback; turn retraining.include_feedback off"
            )
        counts["feedback"] = {"max_rows": max_rows}
        plan = replace(
            plan,
            unload=unload,
            feedback={
                "now": query.now.isoformat(),
                "target": query.target,
                "hours": list(query.hours),
                "model_versions": list(query.model_versions),
                "max_rows": max_rows,
                # The champion whose values are the trusted ones (None: no champion, nothing held out as new).
                "reference": None if reference is None else reference.version,
            },
        )
    return plan.to_json()


def finish_assembly(
    s3: S3Client,
    athena: Athena,
    request: AssemblyRequest,
    plan: AssemblyPlan,
    query: AssemblyQuery | None,
    reference: Reference | None,
) -> dict[str, Any]:
    """List what the UNLOAD wrote, count the feedback and write the manifest: the ``AssemblyResult`` as JSON.
    ``reference``: the champion the plan names (``plan.feedback["reference"]``), read again from the registry."""
    if not plan.prefix.startswith(request.assembled_prefix):
        raise AssemblyError(f"the plan's folder {plan.prefix} is not under {request.assembled_prefix}")
    counts = json.loads(json.dumps(plan.counts))  # a copy: the plan stays as it came
    objects = [
        {"key": item["Key"][len(plan.prefix) :], "size": item["Size"], "etag": item["ETag"]}
        for item in _objects(s3, request.data_bucket, plan.prefix + BASE_FOLDER)
    ]
    digest = plan.base_fingerprint
    if plan.unload is not None and plan.feedback is not None:
        written = [
            {"key": item["Key"][len(plan.prefix) :], "size": item["Size"], "etag": item["ETag"]}
            for item in _objects(s3, request.data_bucket, plan.prefix + FEEDBACK_FOLDER)
        ]
        feedback = _feedback_counts(s3, athena, request, plan, plan.feedback, reference)
        if query is not None:
            feedback["athena"] = {"query_execution_id": query.query_execution_id, "scanned_bytes": query.scanned_bytes}
        counts["feedback"] = feedback
        counts["rows"]["feedback"] = feedback["joined"] - feedback["held"] - feedback["capped"]
        objects.extend(written)
        if counts["rows"]["feedback"]:  # an UNLOAD of no row may still write an empty file: not new data
            digest = fingerprint([(BASE_FOLDER, digest), *((item["key"], item["etag"]) for item in written)])

    manifest_key = assembled_manifest_key(request.assembled_prefix, request.version)
    manifest = {"version": request.version, "fingerprint": digest, "counts": counts, "objects": objects}
    s3.put_object(
        Bucket=request.data_bucket,
        Key=manifest_key,
        Body=json.dumps(manifest, indent=2, sort_keys=True).encode(),
        ContentType="application/json",
    )
    return {
        "prefix": plan.prefix,
        "uri": plan.uri,
        "manifest": f"s3://{request.data_bucket}/{manifest_key}",
        "fingerprint": digest,
        "counts": counts,
        "object_count": len(objects),
        "objects": objects[:MAX_LISTED_OBJECTS],
        "objects_truncated": len(objects) > MAX_LISTED_OBJECTS,
    }


def held_out_feedback(counts: Mapping[str, Any]) -> dict[str, Any] | None:
    """The feedback rows Assemble held out as values new to the champion, from an ``AssemblyResult``'s counts:
    ``rows`` and ``new_values`` (what and why); None when it held none."""
    feedback = counts.get("feedback") or {}
    rows = feedback.get("held")
    return {"rows": rows, "new_values": feedback.get("new_values")} if rows else None


def held_out(counts: Mapping[str, Any]) -> str | None:
    """The sentence for the run's record when Assemble held feedback rows out as new values (None: it held none),
    from an ``AssemblyResult``'s counts."""
    held_feedback = held_out_feedback(counts)
    if held_feedback is None:
        return None
    rows, found = held_feedback["rows"], held_feedback["new_values"] or {}
    held = [value for value in found.get("values", ()) if value["held"]]
    named = ", ".join(
        f"{value['feature']}={value['value']!r} ({value['rows']} rows, {value['callers']} "
        f"caller{'' if value['callers'] == 1 else 's'})"
        for value in held
    )
    listed = f": {named}{' and more' if found.get('values_truncated') else ''}" if named else ""
    return (
        f"{rows} feedback rows held out of training: values new to champion {found.get('reference')} that fewer "
        f"than {found.get('min_callers')} distinct callers used{listed}"
    )


def fingerprint(entries: Iterable[tuple[str, str]]) -> str:
    """sha256 over ``key<TAB>etag`` lines, sorted by key."""
    digest = hashlib.sha256()
    for key, etag in sorted(entries):
        digest.update(f"{key}\t{etag}\n".encode())
    return digest.hexdigest()


def feedback_cap(base_rows: int, share: float) -> int | None:
    """The most feedback rows beside ``base_rows`` with feedback <= share * (base + feedback); None: share 1.

    The share is taken as written (0.3 is 3/10, not its binary approximation), so the bound is exact.
    """
    exact = Fraction(repr(share))
    if exact >= 1:
        return None
    return math.floor(exact * base_rows / (1 - exact))


def _check_header(header: list[str], target: str | None) -> None:
    if not target:
        raise AssemblyError("hyperparameter 'target' is required to label feedback rows")
    if target not in header:
        raise AssemblyError(f"target column {target!r} is not in the training data's header ({', '.join(header)})")
    # Athena's column names are case-insensitive (UNLOAD writes them lowercased): two that differ only in case
    # cannot both be written.
    seen: dict[str, str] = {}
    for name in header:
        other = seen.setdefault(name.lower(), name)
        if other != name or header.count(name) > 1:
            raise AssemblyError(
                f"the training data's header has columns {other!r} and {name!r}, the same name to Athena: rename "
                "one to add feedback rows"
            )


def _category_count(known: KnownValues | None) -> int:
    return 0 if known is None else sum(len(categories) for categories in known.categories.values())


def _feedback_counts(
    s3: S3Client,
    athena: Athena,
    request: AssemblyRequest,
    plan: AssemblyPlan,
    planned: dict[str, Any],
    reference: Reference | None,
) -> dict[str, Any]:
    """The counts of what happened to each feedback record in the window (one aggregate query), and the new values
    (a second)."""
    header = _first_header(s3, request.data_bucket, list(_objects(s3, request.data_bucket, plan.prefix + BASE_FOLDER)))
    if header is None:
        raise AssemblyError(f"the assembled base data under {plan.prefix}{BASE_FOLDER} has no CSV file any more")
    now = parse_time(planned["now"])
    if now is None:
        raise AssemblyError(f"the assembly plan's time is not an ISO time: {planned['now']!r}")
    named, given = planned.get("reference"), None if reference is None else reference.version
    if given != named:
        raise AssemblyError(f"the assembly plan judged new values against champion {named!r}, not {given!r}")
    target = str(planned["target"])
    query = FeedbackQuery(
        header=header,
        target=target,
        version=request.version,
        now=now,
        max_age=timedelta(days=request.feedback_max_age_days),
        model_versions=planned["model_versions"],
        hours=planned["hours"],
        max_rows=planned["max_rows"],
        known=None if reference is None else reference.known(header, target, request.new_value_min_callers),
    )
    rows = athena.run(query.counts()).records()
    if len(rows) != 1:
        raise AssemblyError(f"the feedback counts query returned {len(rows)} rows, not one")
    found = {name: int(value or 0) for name, value in rows[0].items()}
    kept = found["kept"]
    uncovered = [name for index, name in enumerate(header) if name != query.target and not found[f"covered_{index}"]]
    return {
        **{name: found[name] for name in COUNTS if name != "kept"},
        "max_rows": planned["max_rows"],
        "capped": found["joined"] - found["held"] - kept,
        "new_values": _new_values(athena, query, reference),
        # Base columns no kept row has a value for (left empty).
        "missing_columns": uncovered if kept else [],
        "model_versions": len(query.model_versions),
        "capture_hours": len(query.hours),
    }


def _new_values(athena: Athena, query: FeedbackQuery, reference: Reference | None) -> dict[str, Any]:
    """What ``held`` counts: each new value with its rows and callers, whether held out, against which champion."""
    if reference is None or query.known is None:
        return {"reference": None, "skipped": "no champion: no trusted values to tell new ones from"}
    minimum = query.known.min_callers
    found = athena.run(query.new_values()).records()
    values = []
    for row in found[:MAX_NEW_VALUES]:
        feature, value, rows, callers = (row[name] for name in NEW_VALUE_COLUMNS)
        count = int(callers or 0)
        values.append(
            {"feature": feature, "value": value, "rows": int(rows or 0), "callers": count, "held": count < minimum}
        )
    return {
        "reference": reference.version,
        "min_callers": minimum,
        "values": values,
        "values_truncated": len(found) > MAX_NEW_VALUES,
    }


# -- S3 reading ---------------------------------------------------------------------------------------------------


def _objects(s3: S3Client, bucket: str, prefix: str) -> Iterator[dict[str, Any]]:
    """Objects under ``prefix``, sorted by key, without folder markers."""
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            if not item["Key"].endswith("/"):
                yield {"Key": item["Key"], "Size": item["Size"], "ETag": item["ETag"]}


def _model_versions(s3: S3Client, bucket: str, capture_prefix: str) -> list[str]:
    """Every model version with a capture folder: the capture table's injected partition needs them named."""
    paginator = s3.get_paginator("list_objects_v2")
    folders = (
        entry["Prefix"]
        for page in paginator.paginate(Bucket=bucket, Prefix=capture_prefix, Delimiter="/")
        for entry in page.get("CommonPrefixes", [])
    )
    return sorted(version for folder in folders if (version := capture_model_version(capture_prefix, folder)))


def _first_header(s3: S3Client, bucket: str, objects: list[dict[str, Any]]) -> list[str] | None:
    """The header of the first non-empty CSV file (None: there is none)."""
    csv_objects = [item for item in objects if item["Key"].lower().endswith(CSV_SUFFIX) and item["Size"] > 0]
    return _read_header(s3, bucket, csv_objects[0]["Key"]) if csv_objects else None


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
