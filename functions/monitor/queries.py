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
- :func:`feedback_query`: the feedback received in the window, each record's fate as the one join's rules
  (:mod:`functions.common.labelled_sql`) grade it for the champion's task, and the distinct id prefixes of the
  usable ones, from which :func:`functions.common.labelled_sql.capture_hours` names the capture hours to read;
- :func:`join_query`: the usable feedback joined to the champion's captures of those hours only (the first delivery
  of each), aggregated: (true, predicted) counts for a classifier, error sums for a regressor.

An id's checksum cannot be computed in SQL: a well-shaped id with a bad checksum is usable here, matches no
capture and is counted unmatched (the Python join counted it as an invalid id).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from functions.common.bundle import MISSING_CATEGORY, Task, positive_label
from functions.common.catalog import CAPTURES_TABLE
from functions.common.distribution import Baseline, NumericSummary, Summary
from functions.common.labelled_sql import (
    ID,
    PREFIX_DIGITS,
    USABLE,
    VERSION,
    FeedbackWindow,
    captured,
    finite,
    hours_between,
    time_within,
    truth,
)
from functions.common.sql import identifier, json_path, literal, number
from functions.monitor.drift import MISSING
from functions.monitor.quality import Labelled

_CAPTURES = identifier(CAPTURES_TABLE)


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


def _json_number(column: str, key: str) -> str:
    """Member ``key`` of a JSON object column when it is a JSON number (a string, boolean or null is not)."""
    return finite(f"json_format(json_extract({identifier(column)}, {json_path(key)}))")


def _json_text(column: str, key: str) -> str:
    return f"json_extract_scalar({identifier(column)}, {json_path(key)})"


def missing_token(text: str, tokens: Iterable[str]) -> str:
    """Whether a captured value's JSON scalar text ``text`` is one of the champion's missing tokens
    (``ModelMetadata.missing_tokens``): serving reads such a string as a missing value, and so does the monitor."""
    spelled = ", ".join(literal(token) for token in sorted(set(tokens)))
    return f"{text} IN ({spelled})" if spelled else "FALSE"


def _bin(value: str, summary: Summary) -> str:
    """The bin number of ``value`` (a column of the inner query) in ``summary``'s bins."""
    if isinstance(summary, NumericSummary):
        cases = "".join(f" WHEN {value} <= {number(edge)} THEN {index}" for index, edge in enumerate(summary.edges))
        return f"CASE WHEN {value} IS NULL THEN {MISSING}{cases} ELSE {len(summary.edges)} END"
    categories = list(summary.proportions)
    cases = "".join(f" WHEN {value} = {literal(name)} THEN {index}" for index, name in enumerate(categories))
    missing = f"{value} IS NULL OR {value} = {literal(MISSING_CATEGORY)}"
    return f"CASE WHEN {missing} THEN {MISSING}{cases} ELSE {len(categories)} END"


def window_filter(window: Window) -> str:
    """The captures ``window`` reads: the champion's, served in it (its hours bound what is scanned)."""
    return " AND ".join(
        [
            f"{VERSION} = {literal(window.version)}",
            hours_between(window.start, window.end),
            time_within(window.start, window.end),
        ]
    )


# -- drift ----------------------------------------------------------------------------------------------------


def feature_distributions(baseline: Baseline, missing_tokens: Sequence[str] = ()) -> list[Distribution]:
    """Each baseline feature, read from the capture's ``features`` object. A categorical value that is one of
    ``missing_tokens`` reads as missing (a numeric one does already: a string is not a JSON number)."""

    def categorical(name: str) -> str:
        text = _json_text("features", name)
        return f"CASE WHEN {missing_token(text, missing_tokens)} THEN NULL ELSE {text} END"

    return [
        Distribution(
            name,
            summary,
            _json_number("features", name) if isinstance(summary, NumericSummary) else categorical(name),
        )
        for name, summary in baseline.features.items()
    ]


def prediction_distributions(
    baseline: Baseline, task: Task, classes: Sequence[str], positive: str | None = None
) -> list[Distribution]:
    """What the model answered: ``label`` (and ``positive_probability``, binary: the probability of its positive
    class, ``positive`` or else ``classes[1]``, as training's baseline has it), or ``value`` (regression)."""
    if task == "regression":
        return [Distribution("value", baseline.prediction, finite(identifier("value")))]
    found = [Distribution("label", baseline.prediction, identifier("label"))]
    if baseline.positive_probability is not None and len(classes) == 2:
        probability = _json_number("probabilities", str(positive_label(classes, positive)))
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
    return (
        f"SELECT {''.join(b + ', ' for b in bins)}count(*) AS {identifier('n')} "  # noqa: S608
        f"FROM (SELECT {binned or '1 AS one'} FROM (SELECT {read} FROM {_CAPTURES} WHERE {window_filter(window)})) "
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


def feedback_query(feedback: FeedbackWindow) -> str:
    """Rows ``(status, prefix, n)``: feedback records per fate, the usable ones per id prefix."""
    status, prefix, fate = identifier("status"), identifier("prefix"), identifier("fate")
    return (
        f"SELECT {fate} AS {status}, CASE WHEN {fate} = {literal(USABLE)} THEN substr({ID}, 1, {PREFIX_DIGITS}) END "  # noqa: S608
        f"AS {prefix}, count(*) AS {identifier('n')} FROM ({feedback.graded()}) GROUP BY 1, 2"
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


def join_query(window: Window, feedback: FeedbackWindow, hours: Sequence[str]) -> str:
    """The usable feedback joined to the champion's captures of ``hours``. Classification: rows ``(truth,
    predicted, n)``; regression: one row ``(matched, scored, squared, absolute)``, the error sums over the pairs
    whose prediction is a finite number."""
    if feedback.task is None:
        raise ValueError("the monitor's join grades feedback for the champion's task")
    task = feedback.task
    graded, usable, pairs = identifier("graded"), identifier("usable"), identifier("pairs")
    f, c = identifier("f"), identifier("c")
    truth_, predicted = identifier("truth"), identifier("predicted")
    answer = truth(task, f"{c}.{identifier('label')}", f"{c}.{identifier('value')}")
    usable_ids = f"SELECT {ID} FROM {usable}"  # noqa: S608
    chain = (
        f"WITH {graded} AS ({feedback.graded()}), "  # noqa: S608
        f"{usable} AS (SELECT {ID}, {truth(task)} AS {truth_} FROM {graded} "
        f"WHERE {identifier('fate')} = {literal(USABLE)}), "
        f"{pairs} AS (SELECT {f}.{truth_}, {answer} AS {predicted} FROM {usable} AS {f} "
        f"JOIN ({captured([window.version], hours, usable_ids)}) AS {c} ON {c}.{ID} = {f}.{ID}) "
    )
    if task == "regression":
        error = f"({predicted} - {truth_})"
        return (
            f"{chain}SELECT count(*) AS {identifier('matched')}, count({error}) AS {identifier('scored')}, "  # noqa: S608
            f"sum({error} * {error}) AS {identifier('squared')}, sum(abs({error})) AS {identifier('absolute')} "
            f"FROM {pairs}"
        )
    return f"{chain}SELECT {truth_}, {predicted}, count(*) AS {identifier('n')} FROM {pairs} GROUP BY 1, 2"  # noqa: S608


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
