"""Scoring one CSV object: read it as text, a chunk of rows at a time, validate each chunk with the served model's
request schema, answer the valid rows as ``/predict`` does, and write one JSON line per input row.

A row the API would refuse (a cell that is not a number, a float32 overflow, a wrong number of cells) is a bad
row: its line says why, it is counted, and the object still succeeds. An object is refused as a whole only when
it cannot be read as CSV with a header naming every feature. Columns that are not features (an id, the target)
are ignored: the output's ``row`` numbers (1 = the first row after the header) join predictions to them.

CSV cells are text, so each is converted as the API's JSON would carry it: an empty cell, or one equal to a missing
token of the model (``ModelMetadata.missing_tokens``, as training read them), is a missing value (null), a
numeric feature's cell must parse as a number, a boolean feature's cell is true or false (``True``, ``FALSE``...: as
training reads a CSV file), a categorical feature's cell is its category.
"""

from __future__ import annotations

import codecs
import csv
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

import orjson

from functions.common.bundle import BOOLEAN_TEXTS, Feature
from functions.common.records import IdKey, IdKeys
from functions.inference.capture import Sink, lost_records
from functions.inference.errors import ValidationFailed
from functions.inference.model import Model
from functions.inference.schema import Batch
from functions.inference.service import answer, prediction_records

# How many bad rows a result lists (all are counted, and each has its line in the output).
MAX_LISTED_PROBLEMS = 20


class ObjectRefused(Exception):
    """The object cannot be scored at all (not UTF-8 CSV, or its header lacks features)."""


@dataclass
class ObjectCounts:
    rows: int = 0
    scored: int = 0
    bad_rows: int = 0
    captured: int = 0
    capture_lost: int = 0
    ignored_columns: list[str] = field(default_factory=list)
    problems: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "scored": self.scored,
            "bad_rows": self.bad_rows,
            "captured": self.captured,
            "capture_lost": self.capture_lost,
            "ignored_columns": self.ignored_columns,
            "problems": self.problems,
        }


@dataclass(frozen=True)
class Capture:
    """Where a run's predictions are captured, and the request id their records carry."""

    sink: Sink
    request_id: str


def score_stream(
    model: Model,
    lines: Iterable[bytes],
    output: IO[bytes],
    *,
    chunk_rows: int,
    keys: IdKeys,
    capture: Capture | None = None,
) -> ObjectCounts:
    """Score the CSV ``lines`` (a binary file, or an S3 body's ``iter_lines(keepends=True)``) into ``output``
    (JSON lines, one per data row, in order), with prediction ids minted by ``keys`` as the API's are."""
    reader = csv.reader(codecs.iterdecode(lines, "utf-8"))
    try:
        header = next(reader, None)
        if header is None:
            raise ObjectRefused("the object is empty: a header row naming the features is needed")
        columns = _columns(header, model.metadata.features)
        used = set(columns.values())
        counts = ObjectCounts(ignored_columns=[name for index, name in enumerate(header) if index not in used])
        rows = enumerate(reader, start=1)
        while chunk := list(itertools.islice(rows, chunk_rows)):
            _score_chunk(model, chunk, columns, len(header), output, counts, capture, keys.minting())
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ObjectRefused(f"not UTF-8 CSV: {exc}") from exc
    return counts


def _columns(header: Sequence[str], features: Sequence[Feature]) -> dict[str, int]:
    """Feature name -> its column; refuses a header that lacks a feature or names one twice."""
    names = [name.strip() for name in header]
    missing = [f.name for f in features if f.name not in names]
    if missing:
        raise ObjectRefused(f"the header lacks the features {missing} (it has {names})")
    doubled = sorted({f.name for f in features if names.count(f.name) > 1})
    if doubled:
        raise ObjectRefused(f"the header names the features {doubled} more than once")
    return {f.name: names.index(f.name) for f in features}


def _score_chunk(
    model: Model,
    chunk: Sequence[tuple[int, list[str]]],
    columns: Mapping[str, int],
    width: int,
    output: IO[bytes],
    counts: ObjectCounts,
    capture: Capture | None,
    key: IdKey,
) -> None:
    lines: dict[int, dict[str, Any]] = {}
    instances: list[dict[str, Any]] = []
    numbers: list[int] = []
    missing = frozenset(model.metadata.missing_tokens)
    for number, cells in chunk:
        if len(cells) != width:
            lines[number] = _bad(number, [{"field": None, "problem": f"{len(cells)} cells, the header has {width}"}])
            continue
        instance, problems = _instance(cells, columns, model.metadata.features, missing)
        if problems:
            lines[number] = _bad(number, problems)
        else:
            instances.append(instance)
            numbers.append(number)
    batch, numbers = _validated(model, instances, numbers, lines)
    if batch is not None:
        now = datetime.now(UTC)
        predictions = answer(model, batch, now, key)
        for number, prediction in zip(numbers, predictions, strict=True):
            lines[number] = {"row": number, **prediction}
        counts.scored += len(predictions)
        if capture is not None:
            _capture(capture, model, now, batch.instances, predictions, counts)
    counts.rows += len(chunk)
    for number in sorted(lines):
        line = lines[number]
        if "errors" in line:
            counts.bad_rows += 1
            if len(counts.problems) < MAX_LISTED_PROBLEMS:
                counts.problems.append(line)
        output.write(orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE))


def _bad(number: int, problems: list[dict[str, Any]]) -> dict[str, Any]:
    return {"row": number, "errors": problems}


def _instance(
    cells: Sequence[str], columns: Mapping[str, int], features: Iterable[Feature], missing: frozenset[str]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A row as the API's JSON instance would carry it, or the cells that cannot be converted."""
    instance: dict[str, Any] = {}
    problems: list[dict[str, Any]] = []
    for feature in features:
        cell = cells[columns[feature.name]]
        text = cell.strip()
        # The cell as training read it (a token may hold spaces: " ?"), or stripped as the API's values are.
        if cell in missing or text in missing:
            instance[feature.name] = None
        elif feature.type == "categorical":
            instance[feature.name] = text
        elif feature.type == "boolean":
            if text in BOOLEAN_TEXTS:
                instance[feature.name] = BOOLEAN_TEXTS[text] == 1.0
            else:
                problems.append({"field": feature.name, "problem": "expected true or false"})
        else:
            try:
                instance[feature.name] = float(text)
            except ValueError:
                problems.append({"field": feature.name, "problem": "expected a number"})
    return instance, problems


def _validated(
    model: Model, instances: list[dict[str, Any]], numbers: list[int], lines: dict[int, dict[str, Any]]
) -> tuple[Batch | None, list[int]]:
    """The batch of instances the API's schema accepts (None: none) and their row numbers; the others get their
    problems as bad-row lines."""
    if not instances:
        return None, numbers
    try:
        return model.schema.validate({"instances": instances}, len(instances)), numbers
    except ValidationFailed as exc:
        refused: dict[int, list[dict[str, Any]]] = {}
        for problem in exc.details:
            assert problem.instance is not None, "the payload is built here: only instances can be at fault"
            refused.setdefault(problem.instance, []).append({"field": problem.field, "problem": problem.problem})
    for index, problems in refused.items():
        lines[numbers[index]] = _bad(numbers[index], problems)
    kept = [index for index in range(len(instances)) if index not in refused]
    if not kept:
        return None, []
    # What is left passes: each problem belongs to one instance.
    batch = model.schema.validate({"instances": [instances[i] for i in kept]}, len(kept))
    return batch, [numbers[i] for i in kept]


def _capture(
    capture: Capture,
    model: Model,
    now: datetime,
    instances: Sequence[dict[str, Any]],
    predictions: Sequence[dict[str, Any]],
    counts: ObjectCounts,
) -> None:
    """Every scored row is captured (asking for capture asks for all of it); a lost record is counted."""
    records = prediction_records(
        model.version, now, instances, predictions, range(len(predictions)), capture.request_id, None
    )
    try:
        capture.sink.write(records)
    except Exception as exc:  # a sink failure loses records, never the scoring
        lost = lost_records(exc, records)
        counts.capture_lost += lost
        counts.captured += len(records) - lost
    else:
        counts.captured += len(records)
