"""The Athena adapter's protocol: start, poll with a bounded backoff, stop at the deadline, fail with Athena's
reason, page the results."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import pytest

from functions.common.athena import MAX_POLL_SECONDS, Athena, QueryFailed, QueryTimedOut, lambda_deadline

if TYPE_CHECKING:
    from mypy_boto3_athena import AthenaClient


class ScriptedAthena:
    """An Athena whose query goes through ``states``, one per GetQueryExecution, then holds the last one."""

    def __init__(self, states: list[dict[str, Any]], rows: list[list[str | None]] | None = None, page: int = 2):
        self.states = states
        self.rows = rows or []
        self.page = page
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def start_query_execution(self, **request: Any) -> Mapping[str, Any]:
        self.calls.append(("start", request))
        return {"QueryExecutionId": "q-1"}

    def get_query_execution(self, **request: Any) -> Mapping[str, Any]:
        self.calls.append(("get", request))
        status = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        return {"QueryExecution": {"Status": status, "Statistics": {"DataScannedInBytes": 1234}}}

    def get_query_results(self, **request: Any) -> Mapping[str, Any]:
        self.calls.append(("results", request))
        rows: list[list[str | None]] = [["a", "b"], *self.rows]
        start = int(request.get("NextToken") or 0)
        end = start + min(self.page, request["MaxResults"])
        page: dict[str, Any] = {
            "ResultSet": {
                "ResultSetMetadata": {"ColumnInfo": [{"Name": "a"}, {"Name": "b"}]},
                "Rows": [{"Data": [{} if v is None else {"VarCharValue": v} for v in row]} for row in rows[start:end]],
            }
        }
        if end < len(rows):
            page["NextToken"] = str(end)
        return page

    def stop_query_execution(self, **request: Any) -> Mapping[str, Any]:
        self.calls.append(("stop", request))
        return {}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def adapter(client: ScriptedAthena, clock: Clock, deadline: float = 100.0) -> Athena:
    return Athena(cast("AthenaClient", client), "wg", "db", deadline, clock=clock.time, sleep=clock.sleep)


def test_a_query_runs_in_the_workgroup_with_the_database_and_returns_every_page_without_the_header() -> None:
    client = ScriptedAthena(
        [{"State": "QUEUED"}, {"State": "RUNNING"}, {"State": "SUCCEEDED"}],
        rows=[["1", None], ["2", "x"], ["3", "y"]],
    )

    result = adapter(client, Clock()).run("SELECT 1")

    assert client.calls[0] == (
        "start",
        {"QueryString": "SELECT 1", "WorkGroup": "wg", "QueryExecutionContext": {"Database": "db"}},
    )
    assert result.query_id == "q-1"
    assert result.columns == ("a", "b")
    assert result.rows == [("1", None), ("2", "x"), ("3", "y")]
    assert result.scanned_bytes == 1234
    assert [call for call, _ in client.calls].count("results") == 2


def test_the_rows_read_by_column_name_keep_nulls() -> None:
    client = ScriptedAthena([{"State": "SUCCEEDED"}], rows=[["1", None]])
    assert adapter(client, Clock()).run("SELECT 1").records() == [{"a": "1", "b": None}]


@dataclass(frozen=True)
class Invocation:
    remaining_ms: int

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def test_a_lambdas_deadline_is_its_remaining_time_less_the_margin() -> None:
    before = time.monotonic()
    deadline = lambda_deadline(Invocation(60_000), 15)
    assert before + 45 <= deadline <= time.monotonic() + 45


def test_polling_backs_off_up_to_a_bound() -> None:
    clock = Clock()
    client = ScriptedAthena([{"State": "RUNNING"}] * 30 + [{"State": "SUCCEEDED"}])

    adapter(client, clock, deadline=10_000).run("SELECT 1")

    assert clock.sleeps[0] < clock.sleeps[1] < clock.sleeps[2]
    assert max(clock.sleeps) == MAX_POLL_SECONDS


@pytest.mark.parametrize("state", ["FAILED", "CANCELLED"])
def test_a_query_that_does_not_succeed_raises_with_athenas_reason(state: str) -> None:
    client = ScriptedAthena([{"State": state, "StateChangeReason": "SYNTAX_ERROR: line 1:8"}])

    with pytest.raises(QueryFailed, match="SYNTAX_ERROR: line 1:8") as failure:
        adapter(client, Clock()).run("SELECT")

    assert (failure.value.query_id, failure.value.state) == ("q-1", state)
    assert "results" not in [call for call, _ in client.calls]


def test_a_query_still_running_at_the_deadline_is_stopped() -> None:
    clock = Clock()
    client = ScriptedAthena([{"State": "RUNNING"}])

    with pytest.raises(QueryTimedOut, match="deadline"):
        adapter(client, clock, deadline=3.0).run("SELECT 1")

    assert client.calls[-1] == ("stop", {"QueryExecutionId": "q-1"})
    # Never sleeps past the deadline.
    assert clock.now == pytest.approx(3.0)
