"""The one Athena client adapter: run a query in the deployment's workgroup and read its (small) result.

A query runs in the workgroup (which owns the results location and the scan limits) with the deployment's Glue
database as its context, so the SQL names tables bare (:mod:`functions.common.catalog`). :meth:`Athena.run`
starts it, polls ``GetQueryExecution`` with a bounded backoff until a final state or the caller's deadline (then
stops it with ``StopQueryExecution``), raises :class:`QueryFailed` with Athena's ``StateChangeReason`` when it
failed or was cancelled, pages ``GetQueryResults`` and returns the rows (the header row skipped, values as text
or None) with the bytes the query scanned. Meant for aggregates: the rows are held in memory.

The client is boto3's Athena client in AWS, the tests' own engine (the local cloud's DuckDB) in unit tests.
Standard library only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_athena import AthenaClient

SUCCEEDED = "SUCCEEDED"
FAILED_STATES = ("FAILED", "CANCELLED")
# Polling: the first wait, each next one 1.5 times longer, never longer than the last.
FIRST_POLL_SECONDS = 0.2
MAX_POLL_SECONDS = 5.0
PAGE_SIZE = 1000


class QueryFailed(RuntimeError):
    """A query that did not succeed: its id, final state and Athena's reason."""

    def __init__(self, query_id: str, state: str, reason: str) -> None:
        super().__init__(f"Athena query {query_id} {state}: {reason}")
        self.query_id = query_id
        self.state = state
        self.reason = reason


class QueryTimedOut(QueryFailed):
    """A query still running at the caller's deadline; it was stopped."""


Row = tuple[str | None, ...]


@dataclass(frozen=True)
class QueryResult:
    query_id: str
    columns: tuple[str, ...]
    rows: list[Row]
    scanned_bytes: int

    def records(self) -> list[dict[str, str | None]]:
        """The rows by column name."""
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def lambda_deadline(context: Any, margin_seconds: float) -> float:
    """The :func:`time.monotonic` time ``margin_seconds`` before the Lambda invocation ``context`` times out."""
    remaining_seconds: float = context.get_remaining_time_in_millis() / 1000
    return time.monotonic() + remaining_seconds - margin_seconds


class Athena:
    """Queries in ``workgroup`` against ``database``, each to finish before ``deadline`` (a :func:`time.monotonic`
    time: the Lambda's own end, less a margin to report)."""

    def __init__(
        self,
        client: AthenaClient,
        workgroup: str,
        database: str,
        deadline: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self.workgroup = workgroup
        self.database = database
        self.deadline = deadline
        self._clock = clock
        self._sleep = sleep

    def run(self, sql: str) -> QueryResult:
        started = self._client.start_query_execution(
            QueryString=sql, WorkGroup=self.workgroup, QueryExecutionContext={"Database": self.database}
        )
        query_id = str(started["QueryExecutionId"])
        execution = self._wait(query_id)
        scanned = int((execution.get("Statistics") or {}).get("DataScannedInBytes") or 0)
        columns, rows = self._results(query_id)
        return QueryResult(query_id, columns, rows, scanned)

    def _wait(self, query_id: str) -> Mapping[str, Any]:
        delay = FIRST_POLL_SECONDS
        while True:
            execution: Mapping[str, Any] = self._client.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]
            status = execution.get("Status") or {}
            state = str(status.get("State"))
            if state == SUCCEEDED:
                return execution
            if state in FAILED_STATES:
                raise QueryFailed(query_id, state, str(status.get("StateChangeReason") or "no reason given"))
            remaining = self.deadline - self._clock()
            if remaining <= 0:
                self._client.stop_query_execution(QueryExecutionId=query_id)
                raise QueryTimedOut(query_id, state, "still running at the deadline: stopped")
            self._sleep(min(delay, remaining))
            delay = min(delay * 1.5, MAX_POLL_SECONDS)

    def _results(self, query_id: str) -> tuple[tuple[str, ...], list[Row]]:
        columns: tuple[str, ...] = ()
        rows: list[Row] = []
        token: str | None = None
        first = True
        while True:
            request: dict[str, Any] = {"QueryExecutionId": query_id, "MaxResults": PAGE_SIZE}
            if token:
                request["NextToken"] = token
            page = self._client.get_query_results(**request)
            result_set = page.get("ResultSet") or {}
            if first:
                info = (result_set.get("ResultSetMetadata") or {}).get("ColumnInfo") or []
                columns = tuple(str(column["Name"]) for column in info)
            page_rows = result_set.get("Rows") or []
            # The first row of a SELECT's first page is the column names.
            rows.extend(_values(row) for row in page_rows[1 if first else 0 :])
            first = False
            token = page.get("NextToken")
            if not token:
                return columns, rows


def _values(row: Mapping[str, Any]) -> Row:
    data: Sequence[Mapping[str, Any]] = row.get("Data") or []
    return tuple(None if "VarCharValue" not in value else str(value["VarCharValue"]) for value in data)
