"""The Athena SQL of Assemble's feedback rows: captured predictions joined with their latest feedback, capped.

One chain of common table expressions (:meth:`FeedbackQuery.chain`) takes the join's rules from
:mod:`functions.common.labelled_sql` (feedback received in the last ``max_age``, graded; the first delivery of
each capture of every model version, pruned to the hours the ids name; the truth must fit the task of the model
that served it, as its capture tells) and adds Assemble's rule for new values and its cap, read by these queries:

1. :meth:`FeedbackQuery.id_prefixes`: the distinct time prefixes of the usable feedback's prediction ids, from
   which :func:`functions.common.labelled_sql.capture_hours` names the capture hours to read;
2. :meth:`FeedbackQuery.unload`: the training rows, written by Athena to S3 as Parquet (the state machine runs it);
3. :meth:`FeedbackQuery.counts`: one row of counts for the manifest, and :meth:`FeedbackQuery.new_values`: the
   new values' rows and callers.

Before the cap, a row is held out when one of its values is new (:class:`KnownValues`: a category the trusted
data never had, a number below or above its range) and fewer than ``min_callers`` distinct callers used that
value (a numeric feature's side counts as one value): one caller, under any number of sessions, cannot teach the
model a region of the feature space nobody else has seen.

The cap keeps at most ``max_rows`` rows: callers take turns, each caller's rows ranked by a SHA-256 of the run's
version and the prediction id, the callers by one of the version and the caller, so the choice is reproducible for
the run and cannot be aimed at. Every column is a string (``functions.common.catalog``); every name and value
enters the text through :mod:`functions.common.sql` (hence the ``noqa: S608`` on the statements built here).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from functions.common.labelled_sql import (
    FATES,
    USABLE,
    FeedbackWindow,
    captured,
    finite,
    fitted_truth,
    id_prefixes,
)
from functions.common.sql import identifier as _c
from functions.common.sql import json_path, literal, number

# The counts query's columns, before one ``covered_<i>`` per base column (how many kept rows have a value there).
COUNTS = ("records", *FATES, "unmatched", "misfits", "joined", "callers", "held", "kept")
# The columns of :meth:`KnownValues.novel`, and of :meth:`FeedbackQuery.new_values`.
NOVEL_COLUMNS = ("prediction_id", "caller", "feature", "value")
NEW_VALUE_COLUMNS = ("feature", "value", "rows", "callers")
_CALLER, _FEATURE, _VALUE = (_c(name) for name in NOVEL_COLUMNS[1:])
# A numeric value outside the trusted range is new as its side of the range.
BELOW, ABOVE = "below", "above"
# new_values lists at most this many values (the result travels in the state) and cuts each to this many characters.
MAX_NEW_VALUES = 50
MAX_VALUE_CHARS = 100


@dataclass(frozen=True)
class KnownValues:
    """What the trusted data had: each categorical feature's categories and each numeric feature's range; a value
    outside them is new and enters training only when ``min_callers`` distinct callers used it."""

    min_callers: int
    categories: Mapping[str, Sequence[str]] = field(default_factory=dict)
    ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    def novel(self, joined: str, caller: str) -> str:
        """The new values of ``joined``'s rows with a truth: ``prediction_id, caller, feature, value``."""
        pid = _c("prediction_id")
        parts = []
        for name, known in self.categories.items():
            value = f"json_extract_scalar(features, {json_path(name)})"
            unknown = f" AND {value} NOT IN ({', '.join(literal(item) for item in known)})" if known else ""
            parts.append((name, value, f"{value} IS NOT NULL{unknown}"))
        for name, (low, high) in self.ranges.items():
            measured = finite(f"json_extract_scalar(features, {json_path(name)})")
            side = f"CASE WHEN {measured} < {number(low)} THEN {literal(BELOW)} ELSE {literal(ABOVE)} END"
            parts.append((name, side, f"({measured} < {number(low)} OR {measured} > {number(high)})"))
        if not parts:
            return (
                "SELECT " + ", ".join(f"CAST(NULL AS VARCHAR) AS {_c(name)}" for name in NOVEL_COLUMNS) + " WHERE false"
            )
        return " UNION ALL ".join(
            f"SELECT {pid}, {caller} AS {_CALLER}, {literal(name)} AS {_FEATURE}, {value} AS {_VALUE} "  # noqa: S608
            f"FROM {joined} WHERE truth IS NOT NULL AND {new}"
            for name, value, new in parts
        )


def _hash(*parts: str) -> str:
    return f"to_hex(sha256(to_utf8({' || '.join(parts)})))"


@dataclass(frozen=True)
class FeedbackQuery:
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
    # The trusted data's values (None: no reference, no row is held out as new).
    known: KnownValues | None = None

    @property
    def window(self) -> FeedbackWindow:
        """The feedback of the last ``max_age``, about predictions of any model (each capture tells its task)."""
        return FeedbackWindow(self.now - self.max_age, self.now, self.max_age)

    def chain(self) -> str:
        """``WITH graded, usable, captured, joined, novel, vouched, held, ranked, kept``: every query below selects
        from these."""
        pid, label, value, caller = (_c(name) for name in ("prediction_id", "label", "value", "caller"))
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
        usable_ids = f"SELECT {pid} FROM usable"  # noqa: S608
        known = self.known or KnownValues(min_callers=1)
        return (
            f"WITH graded AS ({self.window.graded()}), "  # noqa: S608
            f"usable AS (SELECT {pid}, {label}, {value}, {caller} FROM graded WHERE fate = '{USABLE}'), "
            f"captured AS ({captured(self.model_versions, self.hours, usable_ids)}), "
            f"joined AS (SELECT u.{pid}, c.features, c.{pid} IS NOT NULL AS has_capture, "
            f"{identity} AS caller_identity, {fitted_truth('u', 'c')} AS truth "
            f"FROM usable u LEFT JOIN captured c ON c.{pid} = u.{pid}), "
            f"novel AS ({known.novel('joined', 'caller_identity')}), "
            f"vouched AS (SELECT {_FEATURE}, {_VALUE} FROM novel GROUP BY {_FEATURE}, {_VALUE} "
            f"HAVING count(DISTINCT {_CALLER}) >= {int(known.min_callers)}), "
            f"held AS (SELECT DISTINCT n.{pid} FROM novel n LEFT JOIN vouched v "
            f"ON v.{_FEATURE} = n.{_FEATURE} AND v.{_VALUE} = n.{_VALUE} WHERE v.{_FEATURE} IS NULL), "
            f"ranked AS (SELECT {pid}, features, truth,"
            f" row_number() OVER (PARTITION BY caller_identity ORDER BY {_hash(seed, pid)}) AS turn,"
            f" {_hash(seed, 'caller_identity')} AS caller_rank "
            f"FROM joined WHERE truth IS NOT NULL AND {pid} NOT IN (SELECT {pid} FROM held)), "
            f"kept AS (SELECT {pid}, features, truth FROM ranked ORDER BY turn, caller_rank{capped}) "
        )

    def id_prefixes(self) -> str:
        return self.chain() + id_prefixes("graded")

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
            f"AS callers, count(h.{pid}) AS held, count(k.{pid}) AS kept, {', '.join(covered)} "
            f"FROM graded g LEFT JOIN joined j ON g.fate = '{USABLE}' AND j.{pid} = g.{pid} "
            f"LEFT JOIN held h ON h.{pid} = j.{pid} LEFT JOIN kept k ON k.{pid} = j.{pid}"
        )

    def new_values(self) -> str:
        """Each new value (:data:`NEW_VALUE_COLUMNS`): its feature, its text (cut to :data:`MAX_VALUE_CHARS`) or
        side, the rows and the distinct callers that used it; the most used first, at most
        :data:`MAX_NEW_VALUES` + 1 (so the reader knows whether there are more)."""
        pid, rows, callers = (_c(name) for name in ("prediction_id", *NEW_VALUE_COLUMNS[2:]))
        # Counted by the whole value, cut only for the answer.
        counted = (
            f"SELECT {_FEATURE}, {_VALUE}, count(DISTINCT {pid}) AS {rows}, "  # noqa: S608
            f"count(DISTINCT {_CALLER}) AS {callers} FROM novel GROUP BY {_FEATURE}, {_VALUE}"
        )
        return (
            f"{self.chain()}SELECT {_FEATURE}, substr({_VALUE}, 1, {MAX_VALUE_CHARS}) AS {_VALUE}, "  # noqa: S608
            f"{rows}, {callers} FROM ({counted}) ORDER BY {rows} DESC, {_FEATURE}, {_VALUE} "
            f"LIMIT {MAX_NEW_VALUES + 1}"
        )
