"""The smallest Athena client Assemble needs: run one query in the deployment's workgroup, wait, read its rows.

Assemble's own queries are small by construction (distinct id time prefixes, one row of counts); the training set
itself never passes through here (the state machine's UNLOAD writes it). The workgroup enforces where results go.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_boto3_athena import AthenaClient

TERMINAL_STATES = ("SUCCEEDED", "FAILED", "CANCELLED")
# Polling: Athena's queries take seconds; the Lambda's timeout bounds the wait.
FIRST_POLL_SECONDS = 0.2
MAX_POLL_SECONDS = 2.0


class QueryFailed(Exception):
    """The query did not succeed; the message has Athena's reason."""


@dataclass(frozen=True)
class Athena:
    client: AthenaClient
    workgroup: str
    database: str
    sleep: Callable[[float], None] = time.sleep

    def rows(self, sql: str) -> list[dict[str, str | None]]:
        """The result rows of ``sql``, by column name (every value as Athena's text; NULL is None)."""
        query_id = self.client.start_query_execution(
            QueryString=sql, WorkGroup=self.workgroup, QueryExecutionContext={"Database": self.database}
        )["QueryExecutionId"]
        self._wait(query_id)
        rows: list[dict[str, str | None]] = []
        names: list[str] = []
        for page in self.client.get_paginator("get_query_results").paginate(QueryExecutionId=query_id):
            if not names:
                names = [column["Name"] for column in page["ResultSet"]["ResultSetMetadata"]["ColumnInfo"]]
            for row in page["ResultSet"]["Rows"]:
                rows.append({name: cell.get("VarCharValue") for name, cell in zip(names, row["Data"], strict=True)})
        # A SELECT's first result row repeats the column names.
        return rows[1:]

    def _wait(self, query_id: str) -> None:
        delay = FIRST_POLL_SECONDS
        while True:
            status = self.client.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]["Status"]
            if status["State"] in TERMINAL_STATES:
                break
            self.sleep(delay)
            delay = min(delay * 2, MAX_POLL_SECONDS)
        if status["State"] != "SUCCEEDED":
            reason = status.get("StateChangeReason") or "no reason given"
            raise QueryFailed(f"Athena query {query_id} {status['State'].lower()}: {reason}")
