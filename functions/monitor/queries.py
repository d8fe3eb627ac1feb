"""The monitor's Athena SQL, and the small result sets it reads back: Athena does the per-record work.

Three queries per run, over the tables of :mod:`functions.common.catalog` (every name and value quoted by
:mod:`functions.common.sql`; only the subset Athena and the local cloud's DuckDB read alike: no ``width_bucket``,
``CASE`` bins):

- :func:`drift_query`: the champion's captures served in the window, binned per distribution (each baseline
  feature, and what the model answered) into the baseline's own bins, counted in ONE scan with ``GROUPING SETS``
  (a ``UNION ALL`` per feature would scan once per branch). Bin numbers: ``0..`` the baseline's numeric bins
  (``edges[i-1] < x <= edges[i]``) or categories (in the baseline's order, then one more for ``__other__``), and
  :data:`MISSING` for a missing value (numeric: not a finite JSON number; categorical: null, absent or
  ``__missing__``), the semantics of :mod:`functions.common.distribution`;
- :func:`feedback_query`: the feedback received in the window, each record's fate counted as the one join's rules
  (:mod:`functions.common.labelled`) say: no truth for the champion's task, superseded by a later one, an id of
  the wrong shape, or about a prediction served before the feedback age limit (the id's 12 leading hex digits are
  its serving time in ms, compared as text with the limit's); and the distinct 7-digit id prefixes (2^20 ms
  buckets, about 17 minutes) of the usable ones, from which :func:`capture_hours` names the capture hours to read;
- :func:`join_query`: the usable feedback joined to the champion's captures of those hours only, aggregated:
  (true, predicted) counts for a classifier, error sums for a regressor.

An id's checksum cannot be computed in SQL: a well-shaped id with a bad checksum is usable here, matches no
capture and is counted unmatched (the Python join counted it as an invalid id).

Times: ``hour`` (the partition, arrival hour) bounds what is read, ``time`` (ISO 8601 text, parsed with
``from_iso8601_timestamp``; a record whose time does not parse is outside every window) selects exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from functions.common.bundle import MISSING_CATEGORY, Task
from functions.common.catalog import CAPTURES_TABLE, FEEDBACK_TABLE
from functions.common.distribution import Baseline, NumericSummary, Summary
from functions.common.layout import ARRIVAL_SLACK, HOUR_PARTITION, MODEL_VERSION_PARTITION, hour_values
from functions.common.records import PREDICTION_ID_LENGTH
from functions.common.sql import identifier, json_path, literal, number
from functions.monitor.drift import MISSING
from functions.monitor.quality import Labelled

# The serving time's hex digits at the head of a prediction id, and the prefix the capture hours are named by.
TIME_DIGITS = 12
PREFIX_DIGITS = 7
_BUCKET_MS = 1 << (4 * (TIME_DIGITS - PREFIX_DIGITS))
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LARGEST = 1.7976931348623157e308
USABLE = "usable"
# A feedback record's fate, in the order the join's rules are applied.
STATUSES = ("unlabelled", "superseded", "invalid_id", "expired", USABLE)

_CAPTURES, _FEEDBACK = identifier(CAPTURES_TABLE), identifier(FEEDBACK_TABLE)
_HOUR, _VERSION = identifier(HOUR_PARTITION), identifier(MODEL_VERSION_PARTITION)
_ID, _TIME = identifier("prediction_id"), identifier("time")


@dataclass(frozen=True)
class Window:
    """The champion's window: predictions served, feedback received, in ``start < time <= end``."""

    version: str
    start: datetime
    end: datetime


@dataclass(frozen=True)
class Distribution:
    """One distribution the drift query bins: its name, the baseline's summary, the SQL of the raw value."""

    name: str
    summary: Summary
    value: str


# -- expressions ----------------------------------------------------------------------------------------------


def _finite(expression: str) -> str:
    """The DOUBLE of a value's text, NULL unless it is a finite number (NaN fails BETWEEN in both engines)."""
    cast = f"TRY_CAST({expression} AS DOUBLE)"
    return f"CASE WHEN {cast} BETWEEN {number(-_LARGEST)} AND {number(_LARGEST)} THEN {cast} END"


def _json_number(column: str, key: str) -> str:
    """Member ``key`` of a JSON object column when it is a JSON number (a string, boolean or null is not)."""
    return _finite(f"json_format(json_extract({identifier(column)}, {json_path(key)}))")


def _json_text(column: str, key: str) -> str:
    return f"json_extract_scalar({identifier(column)}, {json_path(key)})"


def _bin(value: str, summary: Summary) -> str:
    """The bin number of ``value`` (a column of the inner query) in ``summary``'s bins."""
    if isinstance(summary, NumericSummary):
        cases = "".join(f" WHEN {value} <= {number(edge)} THEN {index}" for index, edge in enumerate(summary.edges))
        return f"CASE WHEN {value} IS NULL THEN {MISSING}{cases} ELSE {len(summary.edges)} END"
    categories = list(summary.proportions)
    cases = "".join(f" WHEN {value} = {literal(name)} THEN {index}" for index, name in enumerate(categories))
    missing = f"{value} IS NULL OR {value} = {literal(MISSING_CATEGORY)}"
    return f"CASE WHEN {missing} THEN {MISSING}{cases} ELSE {len(categories)} END"


def _time_within(start: datetime, end: datetime) -> str:
    moment = f"TRY(from_iso8601_timestamp({_TIME}))"
    return f"{moment} > {_timestamp(start)} AND {moment} <= {_timestamp(end)}"


def _timestamp(moment: datetime) -> str:
    return f"from_iso8601_timestamp({literal(moment.astimezone(UTC).isoformat())})"


def _hours_between(start: datetime, end: datetime) -> str:
    """Partition pruning: the hours records of ``start < time <= end`` can have arrived in."""
    hours = hour_values(start, end + ARRIVAL_SLACK)
    return f"{_HOUR} BETWEEN {literal(hours[0])} AND {literal(hours[-1])}"


# -- drift ----------------------------------------------------------------------------------------------------


def feature_distributions(baseline: Baseline) -> list[Distribution]:
    """Each baseline feature, read from the capture's ``features`` object."""
    return [
        Distribution(
            name,
            summary,
            _json_number("features", name) if isinstance(summary, NumericSummary) else _json_text("features", name),
        )
        for name, summary in baseline.features.items()
    ]


def prediction_distributions(baseline: Baseline, task: Task, classes: Sequence[str]) -> list[Distribution]:
    """What the model answered: ``label`` (and ``positive_probability``, binary: the probability of
    ``classes[1]``), or ``value`` (regression)."""
    if task == "regression":
        return [Distribution("value", baseline.prediction, _finite(identifier("value")))]
    found = [Distribution("label", baseline.prediction, identifier("label"))]
    if baseline.positive_probability is not None and len(classes) == 2:
        probability = _json_number("probabilities", classes[1])
        found.append(Distribution("positive_probability", baseline.positive_probability, probability))
    return found


def drift_query(window: Window, distributions: Sequence[Distribution]) -> str:
    """Rows ``(d0, d1, ..., n)``: per distribution ``i``, rows with ``di`` a bin number (the others NULL) and its
    count; one row with every ``di`` NULL: the captures in the window."""
    values = [identifier(f"v{index}") for index in range(len(distributions))]
    bins = [identifier(f"d{index}") for index in range(len(distributions))]
    read = ", ".join(f"{d.value} AS {v}" for d, v in zip(distributions, values, strict=True)) or "1 AS one"
    binned = ", ".join(f"{_bin(v, d.summary)} AS {b}" for d, v, b in zip(distributions, values, bins, strict=True))
    sets = ", ".join(["()", *(f"({b})" for b in bins)])
    where = " AND ".join(
        [
            f"{_VERSION} = {literal(window.version)}",
            _hours_between(window.start, window.end),
            _time_within(window.start, window.end),
        ]
    )
    return (
        f"SELECT {''.join(b + ', ' for b in bins)}count(*) AS {identifier('n')} "  # noqa: S608
        f"FROM (SELECT {binned or '1 AS one'} FROM (SELECT {read} FROM {_CAPTURES} WHERE {where})) "
        f"GROUP BY GROUPING SETS ({sets})"
    )


def drift_counts(rows: Iterable[Sequence[str | None]], count: int) -> tuple[int, list[dict[int, int]]]:
    """The captures in the window, and per distribution its count per bin number, from :func:`drift_query`'s
    rows for ``count`` distributions."""
    total = 0
    counts: list[dict[int, int]] = [{} for _ in range(count)]
    for row in rows:
        *bins, n = row
        found = [(index, int(value)) for index, value in enumerate(bins) if value is not None]
        if not found:
            total += int(n or 0)
        for index, value in found:
            counts[index][value] = int(n or 0)
    return total, counts


# -- live quality ---------------------------------------------------------------------------------------------


def _truth(task: Task) -> str:
    """A feedback record's truth for a model of ``task``: a label, or a finite number; NULL when it has none."""
    return _finite(identifier("value")) if task == "regression" else identifier("label")


def oldest_id_time(end: datetime, max_age: timedelta) -> str:
    """The smallest id time (12 hex digits, ms) of a prediction served no earlier than ``end - max_age``."""
    milliseconds, rest = divmod(end - max_age - _EPOCH, timedelta(milliseconds=1))
    return f"{milliseconds + (1 if rest else 0):0{TIME_DIGITS}x}"


def _statuses(window: Window, task: Task, oldest: str) -> str:
    """Per feedback record received in the window: its prediction id, truth and fate (:data:`STATUSES`)."""
    truth = _truth(task)
    rank = identifier("rank")
    shape = f"coalesce(regexp_like({_ID}, {literal(f'^[0-9a-f]{{{PREDICTION_ID_LENGTH}}}$')}), false)"
    ranked = (
        f"SELECT {_ID}, {truth} AS {identifier('truth')}, "  # noqa: S608
        f"row_number() OVER (PARTITION BY {_ID}, {truth} IS NULL ORDER BY {_TIME} DESC) AS {rank} "
        f"FROM {_FEEDBACK} WHERE {_hours_between(window.start, window.end)} "
        f"AND {_time_within(window.start, window.end)}"
    )
    unlabelled, superseded, invalid, expired, usable = (literal(status) for status in STATUSES)
    status = (
        f"CASE WHEN {identifier('truth')} IS NULL THEN {unlabelled} WHEN {rank} > 1 THEN {superseded} "
        f"WHEN NOT {shape} THEN {invalid} WHEN substr({_ID}, 1, {TIME_DIGITS}) < {literal(oldest)} THEN {expired} "
        f"ELSE {usable} END"
    )
    return f"SELECT {_ID}, {identifier('truth')}, {status} AS {identifier('status')} FROM ({ranked})"  # noqa: S608


def feedback_query(window: Window, task: Task, oldest: str) -> str:
    """Rows ``(status, prefix, n)``: feedback records per fate, the usable ones per id prefix."""
    status, prefix = identifier("status"), identifier("prefix")
    return (
        f"SELECT {status}, CASE WHEN {status} = {literal(USABLE)} THEN substr({_ID}, 1, {PREFIX_DIGITS}) END "  # noqa: S608
        f"AS {prefix}, count(*) AS {identifier('n')} FROM ({_statuses(window, task, oldest)}) GROUP BY 1, 2"
    )


@dataclass(frozen=True)
class FeedbackStatus:
    """The window's feedback by fate, and the id prefixes of the usable ones."""

    counts: dict[str, int]
    prefixes: tuple[str, ...]

    @property
    def received(self) -> int:
        return sum(self.counts.values())

    @property
    def usable(self) -> int:
        return self.counts.get(USABLE, 0)

    @property
    def rejected(self) -> int:
        return self.received - self.usable

    @property
    def dropped(self) -> dict[str, int]:
        return {status: n for status, n in self.counts.items() if status != USABLE}


def feedback_status(rows: Iterable[Sequence[str | None]]) -> FeedbackStatus:
    counts: dict[str, int] = {}
    prefixes = set()
    for status, prefix, n in rows:
        counts[str(status)] = counts.get(str(status), 0) + int(n or 0)
        if prefix is not None:
            prefixes.add(prefix)
    return FeedbackStatus(counts, tuple(sorted(prefixes)))


def capture_hours(prefixes: Iterable[str], end: datetime) -> list[str]:
    """The capture hours predictions with these id prefixes can have arrived in (ids name their serving time; a
    prediction served after ``end`` has no feedback in the window: such prefixes name none)."""
    hours: set[str] = set()
    last = (end - _EPOCH) // timedelta(milliseconds=1)
    for prefix in prefixes:
        # Compared in ms first: 7 hex digits can name a time past the year 9999.
        milliseconds = int(prefix, 16) * _BUCKET_MS
        if milliseconds > last:
            continue
        first = _EPOCH + timedelta(milliseconds=milliseconds)
        hours.update(hour_values(first, first + timedelta(milliseconds=_BUCKET_MS - 1) + ARRIVAL_SLACK))
    return sorted(hours)


def join_query(window: Window, task: Task, oldest: str, hours: Sequence[str]) -> str:
    """The usable feedback joined to the champion's captures of ``hours`` (one per prediction id: Firehose may
    deliver a record twice). Classification: rows ``(truth, predicted, n)``; regression: one row ``(matched,
    scored, squared, absolute)``, the error sums over the pairs whose prediction is a finite number."""
    f, c = identifier("f"), identifier("c")
    truth, predicted = identifier("truth"), identifier("predicted")
    answer = _finite(f"{c}.{identifier('value')}") if task == "regression" else f"{c}.{identifier('label')}"
    hour_list = ", ".join(literal(hour) for hour in hours)
    pairs = (
        f"SELECT {f}.{_ID}, min({f}.{truth}) AS {truth}, min({answer}) AS {predicted} "  # noqa: S608
        f"FROM ({_statuses(window, task, oldest)}) AS {f} JOIN {_CAPTURES} AS {c} ON {c}.{_ID} = {f}.{_ID} "
        f"WHERE {f}.{identifier('status')} = {literal(USABLE)} AND {c}.{_VERSION} = {literal(window.version)} "
        f"AND {c}.{_HOUR} IN ({hour_list}) GROUP BY {f}.{_ID}"
    )
    if task == "regression":
        error = f"({predicted} - {truth})"
        return (
            f"SELECT count(*) AS {identifier('matched')}, count({error}) AS {identifier('scored')}, "  # noqa: S608
            f"sum({error} * {error}) AS {identifier('squared')}, sum(abs({error})) AS {identifier('absolute')} "
            f"FROM ({pairs})"
        )
    return f"SELECT {truth}, {predicted}, count(*) AS {identifier('n')} FROM ({pairs}) GROUP BY 1, 2"  # noqa: S608


def labelled(rows: Sequence[Sequence[str | None]], task: Task) -> Labelled:
    """:func:`join_query`'s rows as the join's aggregates."""
    if task == "regression":
        [(matched, scored, squared, absolute)] = rows
        return Labelled(
            count=int(matched or 0),
            scored=int(scored or 0),
            squared_error=float(squared or 0),
            absolute_error=float(absolute or 0),
        )
    confusion: dict[tuple[str, str], int] = {}
    count = 0
    for true, predicted, n in rows:
        count += int(n or 0)
        if true is not None and predicted is not None:
            confusion[(true, predicted)] = int(n or 0)
    return Labelled(count=count, confusion=confusion)
