"""The Athena SQL of Assemble's feedback rows: captured predictions joined with their latest feedback, capped.

One chain of common table expressions (:meth:`FeedbackQuery.chain`) keeps the rules of
:mod:`functions.common.labelled` and Assemble's cap, read by three queries:

1. :meth:`FeedbackQuery.id_prefixes`: the distinct time prefixes of the usable feedback's prediction ids, from
   which :func:`capture_hours` names the capture hours to read (partition pruning without reading a capture);
2. :meth:`FeedbackQuery.unload`: the training rows, written by Athena to S3 as Parquet (the state machine runs it);
3. :meth:`FeedbackQuery.counts`: one row of counts for the manifest.

The rules, in the order they grade each feedback record of the last ``max_age`` (hour partitions, received by
``now``):

- ``unlabelled``: neither a label nor a finite value;
- ``superseded``: a later labelled record is about the same prediction (ISO 8601 UTC times sort as text);
- ``invalid_ids``: not 32 lowercase hex digits, or served after ``now`` (SQL cannot check the id's checksum: a
  well-formed made-up id finds no capture and counts as unmatched);
- ``expired``: served more than ``max_age`` before ``now`` (the id's 12 leading hex digits are the serving time in
  milliseconds, compared as text with :func:`functions.common.records.time_prefix`);
- the rest is joined with the captures of every model version (the first copy of a prediction Firehose delivered
  twice), pruned to the hours the ids name; the truth must fit the task of the model that served it, as its
  capture tells (a label for a classifier's, a finite value for a regressor's), else it is a misfit.

The cap keeps at most ``max_rows`` rows: callers take turns, each caller's rows ranked by a SHA-256 of the run's
version and the prediction id, the callers by one of the version and the caller, so the choice is reproducible for
the run and cannot be aimed at. Every column is a string (``functions.common.catalog``); every name and value
enters the text through :mod:`functions.common.sql` (hence the ``noqa: S608`` on the statements built here).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from functions.common import catalog, layout
from functions.common.layout import ARRIVAL_SLACK
from functions.common.records import PREDICTION_ID_LENGTH, TIME_DIGITS, time_prefix
from functions.common.sql import identifier as _c
from functions.common.sql import json_path, literal

# The id digits the first query groups by: 16**5 ms (about 17.5 minutes) per prefix, so a window of 31 days has
# at most about 2,600 prefixes whatever the traffic.
PREFIX_DIGITS = 7
_PREFIX_SPAN_MS = 16 ** (TIME_DIGITS - PREFIX_DIGITS)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The largest finite DOUBLE: NaN and infinities fall outside BETWEEN on both Athena and DuckDB.
_MAX_DOUBLE = "1.7976931348623157E308"
# How each feedback record is graded; the names are the counts' (functions.common.labelled.Dropped).
FATES = ("unlabelled", "superseded", "invalid_ids", "expired")
USABLE = "usable"
# The counts query's columns, before one ``covered_<i>`` per base column (how many kept rows have a value there).
COUNTS = ("records", *FATES, "unmatched", "misfits", "joined", "callers", "kept")


def _finite(column: str) -> str:
    return f"COALESCE(TRY_CAST({column} AS DOUBLE) BETWEEN -{_MAX_DOUBLE} AND {_MAX_DOUBLE}, false)"


def _hash(*parts: str) -> str:
    return f"to_hex(sha256(to_utf8({' || '.join(parts)})))"


def _in(column: str, values: Iterable[str]) -> str:
    return f"{column} IN ({', '.join(literal(value) for value in values)})"


@dataclass(frozen=True)
class FeedbackQuery:
    database: str
    # The base data's header: the output columns, in order; ``target`` is one of them.
    header: Sequence[str]
    target: str
    # The run's version: keys the cap's ranking.
    version: str
    now: datetime
    max_age: timedelta
    # Capture partitions to read: the model versions (injected projection: the query names them) and the hours
    # the ids name (capture_hours); none: no capture is read.
    model_versions: Sequence[str] = ()
    hours: Sequence[str] = ()
    # The most feedback rows (None: no cap).
    max_rows: int | None = None

    def _table(self, name: str) -> str:
        return f"{_c(self.database)}.{_c(name)}"

    def _captures(self) -> str:
        columns = ("prediction_id", "features", "label", "value")
        if not self.model_versions or not self.hours:
            nulls = ", ".join(f"CAST(NULL AS VARCHAR) AS {_c(name)}" for name in columns)
            return f"SELECT {nulls}, 1 AS delivery WHERE false"
        selected = ", ".join(f"c.{_c(name)}" for name in columns)
        return (
            f"SELECT {selected}, row_number() OVER (PARTITION BY c.{_c('prediction_id')} "  # noqa: S608
            f"ORDER BY c.{_c(catalog.HOUR_KEY.name)}, c.{_c(catalog.MODEL_VERSION_KEY.name)}) AS delivery "
            f"FROM {self._table(catalog.CAPTURES_TABLE)} c "
            f"WHERE {_in('c.' + _c(catalog.MODEL_VERSION_KEY.name), self.model_versions)} "
            f"AND {_in('c.' + _c(catalog.HOUR_KEY.name), self.hours)} "
            f"AND c.{_c('prediction_id')} IN (SELECT {_c('prediction_id')} FROM usable)"
        )

    def chain(self) -> str:
        """``WITH graded, usable, captured, joined, ranked, kept``: every query below selects from these."""
        pid, label, value, caller = (_c(name) for name in ("prediction_id", "label", "value", "caller"))
        hour = _c(catalog.HOUR_KEY.name)
        oldest = self.now - self.max_age
        labelled = f"({label} IS NOT NULL OR {_finite(value)})"
        shaped = f"COALESCE(regexp_like({pid}, {literal(f'^[0-9a-f]{{{PREDICTION_ID_LENGTH}}}$')}), false)"
        served = f"substr({pid}, 1, {TIME_DIGITS})"
        identity = (
            "COALESCE("
            + ", ".join(
                f"{literal(kind + ':')} || NULLIF(json_extract_scalar(u.{caller}, {json_path(kind)}), '')"
                for kind in ("principal", "api_key_id", "source_ip")
            )
            + ", '')"
        )
        capped = "" if self.max_rows is None else f" LIMIT {int(self.max_rows)}"
        seed = literal(self.version + "/")
        return (
            "WITH graded AS ("  # noqa: S608
            f"SELECT {pid}, {label}, {value}, {caller}, CASE"
            f" WHEN NOT {labelled} THEN 'unlabelled'"
            f" WHEN row_number() OVER (PARTITION BY {pid}, {labelled} ORDER BY {_c('time')} DESC, {label} DESC,"
            f" {value} DESC) > 1 THEN 'superseded'"
            f" WHEN NOT {shaped} OR {served} > {literal(time_prefix(self.now))} THEN 'invalid_ids'"
            f" WHEN {served} < {literal(time_prefix(oldest))} THEN 'expired'"
            f" ELSE '{USABLE}' END AS fate "
            f"FROM {self._table(catalog.FEEDBACK_TABLE)} "
            f"WHERE {hour} >= {literal(layout.hour_value(oldest))} AND {hour} <= "
            f"{literal(layout.hour_value(self.now))} AND {_c('time')} <= {literal(_iso(self.now))}), "
            f"usable AS (SELECT {pid}, {label}, {value}, {caller} FROM graded WHERE fate = '{USABLE}'), "
            f"captured AS ({self._captures()}), "
            f"joined AS (SELECT u.{pid}, c.features, c.{pid} IS NOT NULL AS has_capture, "
            f"{identity} AS caller_identity, "
            f"CASE WHEN c.{label} IS NOT NULL THEN u.{label}"
            f" WHEN TRY_CAST(c.{value} AS DOUBLE) IS NOT NULL AND {_finite('u.' + value)} THEN u.{value}"
            " END AS truth "
            f"FROM usable u LEFT JOIN captured c ON c.{pid} = u.{pid} AND c.delivery = 1), "
            f"ranked AS (SELECT {pid}, features, truth,"
            f" row_number() OVER (PARTITION BY caller_identity ORDER BY {_hash(seed, pid)}) AS turn,"
            f" {_hash(seed, 'caller_identity')} AS caller_rank "
            "FROM joined WHERE truth IS NOT NULL), "
            f"kept AS (SELECT {pid}, features, truth FROM ranked ORDER BY turn, caller_rank{capped}) "
        )

    def id_prefixes(self) -> str:
        return (
            f"{self.chain()}SELECT DISTINCT substr({_c('prediction_id')}, 1, {PREFIX_DIGITS}) AS prefix "  # noqa: S608
            f"FROM graded WHERE fate = '{USABLE}'"
        )

    def training_set(self) -> str:
        """The rows: exactly the header's columns, the captured feature values (missing: NULL) and the truth."""
        columns = [
            f"truth AS {_c(name)}"
            if name == self.target
            else f"json_extract_scalar(features, {json_path(name)}) AS {_c(name)}"
            for name in self.header
        ]
        return f"{self.chain()}SELECT {', '.join(columns)} FROM kept"  # noqa: S608

    def unload(self, location: str) -> str:
        """:meth:`training_set` written as Parquet under ``location`` (``s3://.../``, which must be empty)."""
        return f"UNLOAD ({self.training_set()}) TO {literal(location)} WITH (format = 'PARQUET')"

    def counts(self) -> str:
        """One row: :data:`COUNTS`, then ``covered_<i>``: the kept rows with a value for the header's i-th column."""
        fates = [f"count_if(g.fate = '{fate}') AS {fate}" for fate in FATES]
        covered = [
            f"count(json_extract_scalar(k.features, {json_path(name)})) AS covered_{index}"
            for index, name in enumerate(self.header)
        ]
        pid = _c("prediction_id")
        return (
            f"{self.chain()}SELECT count(*) AS records, {', '.join(fates)}, "  # noqa: S608
            "count_if(NOT j.has_capture) AS unmatched, count_if(j.has_capture AND j.truth IS NULL) AS misfits, "
            "count(j.truth) AS joined, count(DISTINCT CASE WHEN j.truth IS NOT NULL THEN j.caller_identity END) "
            f"AS callers, count(k.{pid}) AS kept, {', '.join(covered)} "
            f"FROM graded g LEFT JOIN joined j ON g.fate = '{USABLE}' AND j.{pid} = g.{pid} "
            f"LEFT JOIN kept k ON k.{pid} = j.{pid}"
        )


def capture_hours(prefixes: Iterable[str], now: datetime, max_age: timedelta) -> list[str]:
    """The capture hours that may hold the predictions whose ids start with ``prefixes`` (within the window)."""
    oldest, latest = _milliseconds(now - max_age), _milliseconds(now)
    hours: set[str] = set()
    for prefix in prefixes:
        first = int(prefix, 16) * _PREFIX_SPAN_MS
        last = first + _PREFIX_SPAN_MS - 1
        if first <= latest and last >= oldest:  # compared as numbers: a made-up id's time may be past year 9999
            start = _EPOCH + timedelta(milliseconds=max(first, oldest))
            end = _EPOCH + timedelta(milliseconds=min(last, latest))
            hours.update(layout.hour_values(start, end + ARRIVAL_SLACK))
    return sorted(hours)


def _milliseconds(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")
