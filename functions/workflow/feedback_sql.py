"""The Athena SQL of Assemble's feedback rows: captured predictions joined with their latest feedback, capped.

One chain of common table expressions (:meth:`FeedbackQuery.chain`) takes the join's rules from
:mod:`functions.common.labelled_sql` (feedback received in the last ``max_age``, graded; the first delivery of
each capture of every model version, pruned to the hours the ids name; the truth must fit the task of the model
that served it, as its capture tells) and adds Assemble's cap, read by three queries:

1. :meth:`FeedbackQuery.id_prefixes`: the distinct time prefixes of the usable feedback's prediction ids, from
   which :func:`functions.common.labelled_sql.capture_hours` names the capture hours to read;
2. :meth:`FeedbackQuery.unload`: the training rows, written by Athena to S3 as Parquet (the state machine runs it);
3. :meth:`FeedbackQuery.counts`: one row of counts for the manifest.

The cap keeps at most ``max_rows`` rows: callers take turns, each caller's rows ranked by a SHA-256 of the run's
version and the prediction id, the callers by one of the version and the caller, so the choice is reproducible for
the run and cannot be aimed at. Every column is a string (``functions.common.catalog``); every name and value
enters the text through :mod:`functions.common.sql` (hence the ``noqa: S608`` on the statements built here).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from functions.common.labelled_sql import (
    FATES,
    USABLE,
    FeedbackWindow,
    captured,
    fitted_truth,
    id_prefixes,
)
from functions.common.sql import identifier as _c
from functions.common.sql import json_path, literal

# The counts query's columns, before one ``covered_<i>`` per base column (how many kept rows have a value there).
COUNTS = ("records", *FATES, "unmatched", "misfits", "joined", "callers", "kept")


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

    @property
    def window(self) -> FeedbackWindow:
        """The feedback of the last ``max_age``, about predictions of any model (each capture tells its task)."""
        return FeedbackWindow(self.now - self.max_age, self.now, self.max_age)

    def chain(self) -> str:
        """``WITH graded, usable, captured, joined, ranked, kept``: every query below selects from these."""
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
        return (
            f"WITH graded AS ({self.window.graded()}), "  # noqa: S608
            f"usable AS (SELECT {pid}, {label}, {value}, {caller} FROM graded WHERE fate = '{USABLE}'), "
            f"captured AS ({captured(self.model_versions, self.hours, usable_ids)}), "
            f"joined AS (SELECT u.{pid}, c.features, c.{pid} IS NOT NULL AS has_capture, "
            f"{identity} AS caller_identity, {fitted_truth('u', 'c')} AS truth "
            f"FROM usable u LEFT JOIN captured c ON c.{pid} = u.{pid}), "
            f"ranked AS (SELECT {pid}, features, truth,"
            f" row_number() OVER (PARTITION BY caller_identity ORDER BY {_hash(seed, pid)}) AS turn,"
            f" {_hash(seed, 'caller_identity')} AS caller_rank "
            "FROM joined WHERE truth IS NOT NULL), "
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
            f"AS callers, count(k.{pid}) AS kept, {', '.join(covered)} "
            f"FROM graded g LEFT JOIN joined j ON g.fate = '{USABLE}' AND j.{pid} = g.{pid} "
            f"LEFT JOIN kept k ON k.{pid} = j.{pid}"
        )
