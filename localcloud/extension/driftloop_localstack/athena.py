"""Local Athena and Glue Data Catalog providers for LocalStack's open-source runtime, which has neither.

- ``glue:default``: every Glue operation goes to LocalStack's moto fork, whose backend keeps the Data Catalog
  (databases, tables, partitions); nothing runs (no crawlers, no jobs).
- ``athena:default``: ``StartQueryExecution``, ``GetQueryExecution``, ``GetQueryResults`` and
  ``StopQueryExecution`` run SELECT and UNLOAD queries with DuckDB (:mod:`driftloop_localstack.athena_engine`)
  over the objects of the instance's S3, tables described in that Glue catalog; results are written where Athena
  writes them: a SELECT's ``<OutputLocation><QueryExecutionId>.csv`` and ``.csv.metadata``, an UNLOAD's data
  manifest ``<QueryExecutionId>-manifest.csv`` (the files it wrote) and ``<QueryExecutionId>.metadata``. Every
  other Athena operation (work groups, named queries, ...) is moto's, which records without running; the work
  group a query names gives its output location as on AWS.

Queries run one thread each, QUEUED -> RUNNING -> SUCCEEDED / FAILED / CANCELLED. Executions live in memory.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from localstack.aws.api import CommonServiceException, RequestContext, handler
from localstack.aws.skeleton import DispatchTable, create_dispatch_table
from localstack.aws.spec import load_service
from localstack.services.plugins import Service, ServiceLifecycleHook, aws_provider

from driftloop_localstack import pagination
from driftloop_localstack.athena_catalog import (
    QueryError,
    TableSpec,
    result_csv,
    result_metadata,
    split_s3_uri,
    table_spec,
)

LOG = logging.getLogger(__name__)

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"
TERMINAL = (SUCCEEDED, FAILED, CANCELLED)
MAX_RESULTS = 1000


def _invalid(message: str) -> CommonServiceException:
    return CommonServiceException("InvalidRequestException", message, status_code=400, sender_fault=True)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Execution:
    id: str
    query: str
    database: str | None
    output: str  # s3://<OutputLocation>/<id>: a SELECT's results are <id>.csv, an UNLOAD's manifest <id>-manifest.csv
    work_group: str
    substatement: str  # SELECT or UNLOAD
    submitted: datetime = field(default_factory=_now)
    state: str = QUEUED
    reason: str | None = None
    started: float | None = None
    completed: datetime | None = None
    scanned: int = 0
    column_info: list[dict[str, Any]] = field(default_factory=list)
    rows: list[list[str | None]] = field(default_factory=list)
    update_count: int = 0
    cancel: threading.Event = field(default_factory=threading.Event)
    connection: Any = None  # the DuckDB connection while the query runs (interrupted by StopQueryExecution)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def manifest(self) -> str:
        return self.output + "-manifest.csv"

    def describe(self) -> dict[str, Any]:
        unload = self.substatement == "UNLOAD"
        with self.lock:
            status: dict[str, Any] = {"State": self.state, "SubmissionDateTime": self.submitted}
            if self.reason:
                status["StateChangeReason"] = self.reason
            if self.state == FAILED:
                status["AthenaError"] = {"ErrorCategory": 2, "ErrorMessage": self.reason or ""}
            elapsed = 0
            if self.completed:
                status["CompletionDateTime"] = self.completed
                elapsed = int((self.completed - self.submitted).total_seconds() * 1000)
            context = {"Catalog": "AwsDataCatalog", **({"Database": self.database} if self.database else {})}
            statistics: dict[str, Any] = {
                "EngineExecutionTimeInMillis": elapsed,
                "DataScannedInBytes": self.scanned,
                "TotalExecutionTimeInMillis": elapsed,
                "QueryQueueTimeInMillis": 0,
            }
            if unload:  # as for INSERT INTO: the manifest of the files written (or meant to be, on failure)
                statistics["DataManifestLocation"] = self.manifest
            return {
                "QueryExecutionId": self.id,
                "Query": self.query,
                "StatementType": "DML",
                "SubstatementType": self.substatement,
                "ResultConfiguration": {"OutputLocation": self.output if unload else self.output + ".csv"},
                "QueryExecutionContext": context,
                "Status": status,
                "Statistics": statistics,
                "WorkGroup": self.work_group,
                "EngineVersion": {"SelectedEngineVersion": "AUTO", "EffectiveEngineVersion": "Athena engine version 3"},
            }

    def finish(self, state: str, reason: str | None = None) -> bool:
        with self.lock:
            if self.state in TERMINAL:
                return False
            self.state, self.reason, self.completed = state, reason, _now()
            return True


class AthenaProvider(ServiceLifecycleHook):
    """Query executions per (account, region), run on threads against the instance's Glue catalog and S3."""

    service = "athena"

    def __init__(self, clients: Callable[[str, str], Any] | None = None) -> None:
        self._clients = clients or _internal_clients
        self._executions: dict[tuple[str, str], dict[str, Execution]] = {}
        self._lock = threading.Lock()

    def on_before_state_reset(self) -> None:
        with self._lock:
            executions = [e for region in self._executions.values() for e in region.values()]
            self._executions.clear()
        for execution in executions:
            self._cancel(execution, "state reset")

    def on_before_stop(self) -> None:
        self.on_before_state_reset()

    def _get(self, context: RequestContext, query_id: Any) -> Execution:
        with self._lock:
            execution = self._executions.get((context.account_id, context.region), {}).get(str(query_id or ""))
        if execution is None:
            raise _invalid(f"QueryExecution {query_id} was not found")
        return execution

    @handler("StartQueryExecution", expand=False)
    def start_query_execution(self, context: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
        from driftloop_localstack import athena_engine

        clients = self._clients(context.account_id, context.region)
        work_group = str(request.get("WorkGroup") or "primary")
        output = _output_location(clients, work_group, request.get("ResultConfiguration") or {})
        query_id = str(uuid.uuid4())
        query = str(request.get("QueryString") or "")
        execution = Execution(
            id=query_id,
            query=query,
            database=(request.get("QueryExecutionContext") or {}).get("Database"),
            output=output.rstrip("/") + f"/{query_id}",
            work_group=work_group,
            substatement=athena_engine.substatement(query),
        )
        with self._lock:
            self._executions.setdefault((context.account_id, context.region), {})[query_id] = execution
        threading.Thread(target=self._run, args=(execution, clients), name=f"athena-{query_id}", daemon=True).start()
        return {"QueryExecutionId": query_id}

    @handler("GetQueryExecution", expand=False)
    def get_query_execution(self, context: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
        return {"QueryExecution": self._get(context, request.get("QueryExecutionId")).describe()}

    @handler("StopQueryExecution", expand=False)
    def stop_query_execution(self, context: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
        self._cancel(self._get(context, request.get("QueryExecutionId")), "Query cancelled by user")
        return {}

    def _cancel(self, execution: Execution, reason: str) -> None:
        execution.cancel.set()
        if execution.finish(CANCELLED, reason):
            with execution.lock:  # the runner closes the connection under the same lock
                if execution.connection is not None:
                    execution.connection.interrupt()

    @handler("GetQueryResults", expand=False)
    def get_query_results(self, context: RequestContext, request: dict[str, Any]) -> dict[str, Any]:
        execution = self._get(context, request.get("QueryExecutionId"))
        with execution.lock:
            state, reason = execution.state, execution.reason
        if state in (QUEUED, RUNNING):
            raise _invalid(f"Query has not yet finished. Current state: {state}")
        if state != SUCCEEDED:
            raise _invalid(f"Query did not finish successfully. Final query state: {state}\n{reason or ''}".strip())
        size = int(request.get("MaxResults") or MAX_RESULTS)
        if not 1 <= size <= MAX_RESULTS:
            raise _invalid(f"MaxResults must be between 1 and {MAX_RESULTS}")
        try:
            start = pagination.offset_of(request.get("NextToken"))
        except pagination.InvalidToken as exc:
            raise _invalid(str(exc)) from exc
        # the header is the first row of the first page, as in Athena; an UNLOAD has no rows, only its count
        header = [[info["Name"] for info in execution.column_info]] if execution.column_info else []
        rows = header + execution.rows
        page = rows[start : start + size]
        response: dict[str, Any] = {
            "ResultSet": {
                "Rows": [{"Data": [{} if v is None else {"VarCharValue": v} for v in row]} for row in page],
                "ResultSetMetadata": {"ColumnInfo": execution.column_info},
            },
            "UpdateCount": execution.update_count,
        }
        if start + size < len(rows):
            response["NextToken"] = pagination.next_token(start + size)
        return response

    def _run(self, execution: Execution, clients: Any) -> None:
        from driftloop_localstack import athena_engine

        connection = athena_engine.connect()
        with execution.lock:
            if execution.state != QUEUED:
                connection.close()
                return
            execution.state, execution.connection = RUNNING, connection
        try:
            result = athena_engine.run(
                execution.query,
                execution.database,
                lambda database, name: _get_table(clients, database, name),
                lambda bucket, prefix: _list_objects(clients.s3, bucket, prefix),
                lambda bucket, key: clients.s3.get_object(Bucket=bucket, Key=key)["Body"].read(),
                lambda bucket, key, body: clients.s3.put_object(Bucket=bucket, Key=key, Body=body),
                connection,
            )
            if execution.cancel.is_set():
                return
            bucket, key = split_s3_uri(execution.output)
            if execution.substatement == "UNLOAD":
                manifest = "".join(uri + "\n" for uri in result.written)
                clients.s3.put_object(Bucket=bucket, Key=key + "-manifest.csv", Body=manifest.encode())
                clients.s3.put_object(Bucket=bucket, Key=key + ".metadata", Body=result_metadata([]))
            else:
                names = [info["Name"] for info in result.column_info]
                clients.s3.put_object(Bucket=bucket, Key=key + ".csv", Body=result_csv(names, result.rows).encode())
                clients.s3.put_object(
                    Bucket=bucket, Key=key + ".csv.metadata", Body=result_metadata(result.column_info)
                )
            with execution.lock:
                execution.column_info, execution.rows = result.column_info, result.rows
                execution.scanned, execution.update_count = result.scanned_bytes, result.update_count
            execution.finish(SUCCEEDED)
        except QueryError as exc:
            execution.finish(FAILED, str(exc))
        except Exception as exc:  # the query fails, as Athena reports any error: in its state, not the API call
            if not execution.cancel.is_set():
                LOG.exception("local Athena query %s failed", execution.id)
            execution.finish(FAILED, f"INTERNAL_ERROR_QUERY_ENGINE: {type(exc).__name__}: {exc}")
        finally:
            with execution.lock:
                execution.connection = None
                connection.close()


def _output_location(clients: Any, work_group: str, given: dict[str, Any]) -> str:
    """The call's OutputLocation, unless the work group (moto's record of it) has one it enforces or the call
    has none; the work group's other settings are not applied."""
    found = clients.athena.get_work_group(WorkGroup=work_group).get("WorkGroup")
    if found is None and work_group != "primary":
        raise _invalid(f"WorkGroup {work_group} is not found.")
    configuration = (found or {}).get("Configuration") or {}
    own = (configuration.get("ResultConfiguration") or {}).get("OutputLocation")
    enforced = configuration.get("EnforceWorkGroupConfiguration", True)
    output = own if own and (enforced or not given.get("OutputLocation")) else given.get("OutputLocation")
    if not output:
        raise _invalid(
            "No output location provided. An output location is required either through the Workgroup result "
            "configuration setting or as an API input."
        )
    if not str(output).startswith("s3://"):
        raise _invalid(f"OutputLocation must be an s3:// URI, not {output!r}")
    return str(output)


def _get_table(clients: Any, database: str, name: str) -> TableSpec:
    try:
        table = clients.glue.get_table(DatabaseName=database, Name=name)["Table"]
    except clients.glue.exceptions.EntityNotFoundException as exc:
        raise QueryError(f"TABLE_NOT_FOUND: Table 'awsdatacatalog.{database}.{name}' does not exist") from exc
    return table_spec(table)


def _list_objects(s3: Any, bucket: str, prefix: str) -> list[tuple[str, int]]:
    found = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        found += [(item["Key"], int(item["Size"])) for item in page.get("Contents") or []]
    return found


def _internal_clients(account_id: str, region: str) -> Any:
    from localstack.aws.connect import connect_to

    return connect_to(aws_access_key_id=account_id, region_name=region)


def _with_moto(service: str, provider: object) -> DispatchTable:
    """The provider's own operations, moto's for every other operation of ``service``."""
    from localstack.services.moto import call_moto

    def moto(context: RequestContext, request: Any) -> Any:
        return call_moto(context)

    table: DispatchTable = dict(create_dispatch_table(provider))
    for operation in load_service(service).operation_names:
        table.setdefault(operation, moto)
    return table


class GlueProvider(ServiceLifecycleHook):
    """No operations of its own: the catalog is moto's."""

    service = "glue"


@aws_provider(api="athena")
def athena() -> Service:
    return Service.for_provider(AthenaProvider(), dispatch_table_factory=lambda p: _with_moto("athena", p))


@aws_provider(api="glue")
def glue() -> Service:
    return Service.for_provider(GlueProvider(), dispatch_table_factory=lambda p: _with_moto("glue", p))
