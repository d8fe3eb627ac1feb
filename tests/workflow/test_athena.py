"""The workflow's Athena adapter: one query in the workgroup, waited for, its rows by column name."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import pytest

from functions.workflow.athena import MAX_POLL_SECONDS, Athena, QueryFailed
from tests.workflow.local_athena import DATABASE, LocalAthena

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


class Slow(LocalAthena):
    """Athena that reports a query running for a few polls first."""

    def __init__(self, s3: S3Client, polls: int) -> None:
        super().__init__(s3)
        self.polls = polls
        self.started: list[dict[str, Any]] = []

    def start_query_execution(self, **request: Any) -> dict[str, Any]:
        self.started.append(request)
        return super().start_query_execution(**request)

    def get_query_execution(self, QueryExecutionId: str) -> dict[str, Any]:  # noqa: N803 (boto3's name)
        if self.polls:
            self.polls -= 1
            return {"QueryExecution": {"Status": {"State": "RUNNING"}}}
        return super().get_query_execution(QueryExecutionId)


def test_a_query_runs_in_the_workgroup_and_database_and_is_waited_for_with_backoff(s3: S3Client) -> None:
    engine, waits = Slow(s3, polls=6), list[float]()
    athena = Athena(cast(Any, engine), "driftloop-test", DATABASE, sleep=waits.append)

    rows = athena.rows("SELECT 1 AS one, CAST(NULL AS VARCHAR) AS nothing")

    assert rows == [{"one": "1", "nothing": None}]
    [started] = engine.started
    assert started["WorkGroup"] == "driftloop-test"
    assert started["QueryExecutionContext"] == {"Database": DATABASE}
    assert waits == sorted(waits) and waits[-1] == MAX_POLL_SECONDS and len(waits) == 6


def test_a_failed_query_raises_with_athenas_reason(s3: S3Client) -> None:
    athena = Athena(cast(Any, LocalAthena(s3)), "driftloop-test", DATABASE, sleep=lambda _: None)
    with pytest.raises(QueryFailed, match=r"Athena query query-0 failed: .*TABLE_NOT_FOUND: driftloop_test\.nowhere"):
        athena.rows("SELECT * FROM nowhere")
