"""The one join of captures and feedback, as Athena SQL: its rules are shared by the monitor's live quality
(:mod:`functions.monitor.queries`) and Assemble's feedback rows (:mod:`functions.workflow.feedback_sql`), each of
which adds its own aggregates or columns on top. No record passes through a Lambda. The truth must fit the task of
the model that served the prediction (a label for a classifier, a finite number for a regressor), and feedback
whose prediction is not among the captures read (not sampled, expired, served by another version) is counted
unmatched, never guessed.

:meth:`FeedbackWindow.graded` grades each feedback record received in the window, in this order:

- ``unlabelled``: no truth (the model's task known: a label for a classifier, a finite value for a regressor;
  unknown: either);
- ``superseded``: a later record with a truth is about the same prediction (ties broken by the truth, so the
  choice never depends on the engine);
- ``invalid_ids``: not :data:`~functions.common.records.PREDICTION_ID_LENGTH` lowercase hex digits, or served after
  the window's end (SQL cannot check the id's MAC, whose key only the serving functions hold: a well-formed
  made-up id finds no capture and counts as unmatched);
- ``expired``: served more than ``max_age`` before the window's end (the id's 12 leading hex digits are its serving
  time in ms, compared as text with :func:`oldest_id_time`);
- the rest is ``usable``.

The usable ids' distinct :data:`PREFIX_DIGITS`-digit prefixes (:func:`id_prefixes`) name the capture hours to read
(:func:`capture_hours`, partition pruning without reading a capture); :func:`captured` reads those hours, the
first delivery of each prediction (Firehose may deliver a record twice). Times: ``hour`` (the partition, arrival
hour) bounds what is read; ``time`` (ISO 8601, parsed; a record whose time does not parse is in no window)
selects exactly. Every name and value enters the text through :mod:`functions.common.sql` (hence the
``noqa: S608`` on the statements built here); only the subset Athena and the local cloud's DuckDB read alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from functions.common.bundle import Task
from functions.common.catalog import CAPTURES_TABLE, FEEDBACK_TABLE
from functions.common.layout import ARRIVAL_SLACK, HOUR_PARTITION, MODEL_VERSION_PARTITION, hour_values
from functions.common.records import PREDICTION_ID_LENGTH, TIME_DIGITS, time_prefix
from functions.common.sql import identifier, literal, number

# The id digits the capture hours are named by: 16**5 ms (about 17.5 minutes) per prefix, so a window of 31 days
# has at most about 2,600 prefixes whatever the traffic.
PREFIX_DIGITS = 7
_PREFIX_SPAN_MS = 16 ** (TIME_DIGITS - PREFIX_DIGITS)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LARGEST = 1.7976931348623157e308
USABLE = "usable"
# Why a feedback record is not usable, in the order the rules are applied (functions.common.labelled.Dropped's).
FATES = ("unlabelled", "superseded", "invalid_ids", "expired")
# The columns of :meth:`FeedbackWindow.graded` and :func:`captured`.
GRADED_COLUMNS = ("prediction_id", "label", "value", "caller", "fate")
CAPTURED_COLUMNS = ("prediction_id", "features", "label", "value")

ID, HOUR, VERSION = identifier("prediction_id"), identifier(HOUR_PARTITION), identifier(MODEL_VERSION_PARTITION)
_TIME, _LABEL, _VALUE = identifier("time"), identifier("label"), identifier("value")


def finite(expression: str) -> str:
    """The DOUBLE of a value's text, NULL unless it is a finite number (NaN fails BETWEEN in both engines)."""
    cast = f"TRY_CAST({expression} AS DOUBLE)"
    return f"CASE WHEN {cast} BETWEEN {number(-_LARGEST)} AND {number(_LARGEST)} THEN {cast} END"


def truth(task: Task, label: str = _LABEL, value: str = _VALUE) -> str:
    """A feedback record's truth for a model of ``task``: its label, or its finite value; NULL when it has none."""
    return finite(value) if task == "regression" else label


def fitted_truth(feedback: str, capture: str) -> str:
    """The truth of feedback (alias ``feedback``) for the model that served its capture (alias ``capture``), as the
    capture tells its task (a classifier's has a label, a regressor's a number); NULL when it does not fit."""
    f_label, f_value = f"{feedback}.{_LABEL}", f"{feedback}.{_VALUE}"
    return (
        f"CASE WHEN {capture}.{_LABEL} IS NOT NULL THEN {f_label} "
        f"WHEN TRY_CAST({capture}.{_VALUE} AS DOUBLE) IS NOT NULL AND {finite(f_value)} IS NOT NULL "
        f"THEN {f_value} END"
    )


def oldest_id_time(oldest: datetime) -> str:
    """The smallest id time (12 hex digits, ms) of a prediction served no earlier than ``oldest``: rounded up, where
    :func:`functions.common.records.time_prefix` (the latest id time at or before a moment) rounds down."""
    milliseconds, rest = divmod(oldest - _EPOCH, timedelta(milliseconds=1))
    return f"{milliseconds + (1 if rest else 0):0{TIME_DIGITS}x}"


def in_list(column: str, values: Iterable[str]) -> str:
    return f"{column} IN ({', '.join(literal(value) for value in values)})"


def _timestamp(moment: datetime) -> str:
    return f"from_iso8601_timestamp({literal(moment.astimezone(UTC).isoformat())})"


def time_within(start: datetime, end: datetime) -> str:
    """``start < time <= end``; a ``time`` that does not parse is outside."""
    moment = f"TRY(from_iso8601_timestamp({_TIME}))"
    return f"{moment} > {_timestamp(start)} AND {moment} <= {_timestamp(end)}"


def hours_between(start: datetime, end: datetime) -> str:
    """Partition pruning: the hours records of ``start < time <= end`` can have arrived in."""
    hours = hour_values(start, end + ARRIVAL_SLACK)
    return f"{HOUR} BETWEEN {literal(hours[0])} AND {literal(hours[-1])}"


@dataclass(frozen=True)
class FeedbackWindow:
    """Feedback received in ``start < time <= end`` about predictions served in the ``max_age`` before ``end``;
    ``task``: the model's when known (the monitor: the champion's), None when each capture tells (Assemble)."""

    start: datetime
    end: datetime
    max_age: timedelta
    task: Task | None = None

    @property
    def oldest(self) -> datetime:
        """The earliest serving time of a prediction whose feedback is usable."""
        return self.end - self.max_age

    def graded(self) -> str:
        """Each feedback record of the window: :data:`GRADED_COLUMNS`, ``fate`` one of :data:`FATES` or
        :data:`USABLE`."""
        has_truth = (
            f"({_LABEL} IS NOT NULL OR {finite(_VALUE)} IS NOT NULL)"
            if self.task is None
            else f"({truth(self.task)} IS NOT NULL)"
        )
        shaped = f"COALESCE(regexp_like({ID}, {literal(f'^[0-9a-f]{{{PREDICTION_ID_LENGTH}}}$')}), false)"
        served = f"substr({ID}, 1, {TIME_DIGITS})"
        unlabelled, superseded, invalid, expired = (literal(fate) for fate in FATES)
        latest = (
            f"row_number() OVER (PARTITION BY {ID}, {has_truth} ORDER BY TRY(from_iso8601_timestamp({_TIME})) DESC, "
            f"{_LABEL} DESC, {_VALUE} DESC)"
        )
        fate = (
            f"CASE WHEN NOT {has_truth} THEN {unlabelled} WHEN {latest} > 1 THEN {superseded} "
            f"WHEN NOT {shaped} OR {served} > {literal(time_prefix(self.end))} THEN {invalid} "
            f"WHEN {served} < {literal(oldest_id_time(self.oldest))} THEN {expired} ELSE {literal(USABLE)} END"
        )
        columns = ", ".join(identifier(name) for name in GRADED_COLUMNS[:-1])
        return (
            f"SELECT {columns}, {fate} AS {identifier('fate')} FROM {identifier(FEEDBACK_TABLE)} "  # noqa: S608
            f"WHERE {hours_between(self.start, self.end)} AND {time_within(self.start, self.end)}"
        )


def id_prefixes(graded: str) -> str:
    """The usable ids' distinct prefixes (column ``prefix``) of ``graded``, a relation of
    :meth:`FeedbackWindow.graded`'s rows."""
    return (
        f"SELECT DISTINCT substr({ID}, 1, {PREFIX_DIGITS}) AS {identifier('prefix')} FROM {graded} "  # noqa: S608
        f"WHERE {identifier('fate')} = {literal(USABLE)}"
    )


def capture_hours(prefixes: Iterable[str], window: FeedbackWindow) -> list[str]:
    """The capture hours that may hold the predictions whose ids start with ``prefixes``, served in the window's
    ``max_age`` (a made-up id cannot widen the read)."""
    oldest, latest = _milliseconds(window.oldest), _milliseconds(window.end)
    hours: set[str] = set()
    for prefix in prefixes:
        first = int(prefix, 16) * _PREFIX_SPAN_MS
        last = first + _PREFIX_SPAN_MS - 1
        if first <= latest and last >= oldest:  # compared as numbers: a made-up id's time may be past year 9999
            start = _EPOCH + timedelta(milliseconds=max(first, oldest))
            end = _EPOCH + timedelta(milliseconds=min(last, latest))
            hours.update(hour_values(start, end + ARRIVAL_SLACK))
    return sorted(hours)


def captured(model_versions: Sequence[str], hours: Sequence[str], ids: str) -> str:
    """The first delivery of each prediction of ``model_versions`` captured in ``hours`` whose id ``ids`` (a query
    of prediction ids) names: :data:`CAPTURED_COLUMNS`. None to read: a query of no row."""
    if not model_versions or not hours:
        nulls = ", ".join(f"CAST(NULL AS VARCHAR) AS {identifier(name)}" for name in CAPTURED_COLUMNS)
        return f"SELECT {nulls} WHERE false"
    columns = ", ".join(identifier(name) for name in CAPTURED_COLUMNS)
    delivery = identifier("delivery")
    return (
        f"SELECT {columns} FROM (SELECT {columns}, row_number() OVER (PARTITION BY {ID} "  # noqa: S608
        f"ORDER BY {HOUR}, {VERSION}) AS {delivery} FROM {identifier(CAPTURES_TABLE)} "
        f"WHERE {in_list(VERSION, model_versions)} AND {in_list(HOUR, hours)} AND {ID} IN ({ids})) "
        f"WHERE {delivery} = 1"
    )


def _milliseconds(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(milliseconds=1)
