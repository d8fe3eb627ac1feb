"""Athena for unit tests: the local cloud's engine (sqlglot + DuckDB, ``athena_engine.run``) behind the adapter's
client protocol, over moto S3 and the Glue tables :mod:`functions.common.catalog` describes.

Every query the functions generate runs here as real SQL, through the same path as on the local cloud: the
catalog's tables with partition projection, the partitions a query's predicates name, gzip JSON lines. A query
runs when it is started; its state, statistics and result pages are then read back as from Athena.
"""

from __future__ import annotations

import itertools
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest

from functions.common import catalog
from functions.common.athena import Athena

EXTENSION = Path(__file__).resolve().parents[2] / "localcloud" / "extension"
if str(EXTENSION) not in sys.path:
    sys.path.insert(0, str(EXTENSION))

from driftloop_localstack import athena_engine  # noqa: E402
from driftloop_localstack.athena_catalog import QueryError, TableSpec, table_spec  # noqa: E402

from tests.plugins.aws import DATA_BUCKET  # noqa: E402

if TYPE_CHECKING:
    from mypy_boto3_athena import AthenaClient
    from mypy_boto3_s3 import S3Client

DATABASE = "driftloop_test"
WORKGROUP = "driftloop-test"
CAPTURE_PREFIX = "captures/"
FEEDBACK_PREFIX = "feedback/"


def glue_table(name: str, location: str, template: str) -> dict[str, Any]:
    """A table of :mod:`functions.common.catalog` as Glue's GetTable returns it."""
    captures = name == catalog.CAPTURES_TABLE
    columns = catalog.CAPTURE_COLUMNS if captures else catalog.FEEDBACK_COLUMNS
    keys = catalog.CAPTURE_PARTITION_KEYS if captures else catalog.FEEDBACK_PARTITION_KEYS
    return {
        "DatabaseName": DATABASE,
        "Name": name,
        "PartitionKeys": [{"Name": key.name, "Type": key.type} for key in keys],
        "Parameters": catalog.projection_parameters(template, injected_version=captures),
        "StorageDescriptor": {
            "Location": location,
            "Columns": [{"Name": column.name, "Type": column.type} for column in columns],
            "InputFormat": catalog.INPUT_FORMAT,
            "OutputFormat": catalog.OUTPUT_FORMAT,
            "SerdeInfo": {"SerializationLibrary": catalog.JSON_SERDE},
        },
    }


def tables(bucket: str = DATA_BUCKET) -> dict[str, TableSpec]:
    root = f"s3://{bucket}/"
    captures = f"{root}{CAPTURE_PREFIX}"
    feedback = f"{root}{FEEDBACK_PREFIX}"
    return {
        catalog.CAPTURES_TABLE: table_spec(
            glue_table(catalog.CAPTURES_TABLE, captures, root + catalog.capture_partition_template(CAPTURE_PREFIX))
        ),
        catalog.FEEDBACK_TABLE: table_spec(
            glue_table(catalog.FEEDBACK_TABLE, feedback, root + catalog.feedback_partition_template(FEEDBACK_PREFIX))
        ),
    }


class LocalAthena:
    """The four Athena calls of :class:`functions.common.athena.AthenaClient`, each query run when started."""

    def __init__(self, s3: S3Client, specs: Mapping[str, TableSpec]) -> None:
        self._s3 = s3
        self._specs = specs
        self._ids = itertools.count(1)
        self.executions: dict[str, dict[str, Any]] = {}
        self.results: dict[str, athena_engine.Result] = {}
        self.queries: list[str] = []

    def _table(self, database: str, name: str) -> TableSpec:
        if database != DATABASE or name not in self._specs:
            raise QueryError(f"TABLE_NOT_FOUND: {database}.{name}")
        return self._specs[name]

    def _list(self, bucket: str, prefix: str) -> list[tuple[str, int]]:
        paginator = self._s3.get_paginator("list_objects_v2")
        return [
            (item["Key"], item["Size"])
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix)
            for item in page.get("Contents", [])
        ]

    def _get(self, bucket: str, key: str) -> bytes:
        return self._s3.get_object(Bucket=bucket, Key=key)["Body"].read()

    def _put(self, bucket: str, key: str, body: bytes) -> None:
        self._s3.put_object(Bucket=bucket, Key=key, Body=body)

    def start_query_execution(self, **request: Any) -> Mapping[str, Any]:
        query_id = f"q-{next(self._ids)}"
        sql = request["QueryString"]
        self.queries.append(sql)
        assert request["WorkGroup"] == WORKGROUP
        database = request["QueryExecutionContext"]["Database"]
        status: dict[str, Any] = {"State": "SUCCEEDED"}
        scanned = 0
        try:
            result = athena_engine.run(
                sql, database, self._table, self._list, self._get, self._put, athena_engine.connect()
            )
        except QueryError as exc:
            status = {"State": "FAILED", "StateChangeReason": str(exc)}
        else:
            self.results[query_id] = result
            scanned = result.scanned_bytes
        self.executions[query_id] = {
            "QueryExecutionId": query_id,
            "Status": status,
            "Statistics": {"DataScannedInBytes": scanned},
        }
        return {"QueryExecutionId": query_id}

    def get_query_execution(self, **request: Any) -> Mapping[str, Any]:
        return {"QueryExecution": self.executions[request["QueryExecutionId"]]}

    def get_query_results(self, **request: Any) -> Mapping[str, Any]:
        result = self.results[request["QueryExecutionId"]]
        header = [[str(info["Name"]) for info in result.column_info]]
        rows = header + result.rows
        start = int(request.get("NextToken") or 0)
        end = start + int(request.get("MaxResults", 1000))
        page: dict[str, Any] = {
            "ResultSet": {
                "ResultSetMetadata": {"ColumnInfo": result.column_info},
                "Rows": [{"Data": [{} if v is None else {"VarCharValue": v} for v in row]} for row in rows[start:end]],
            }
        }
        if end < len(rows):
            page["NextToken"] = str(end)
        return page

    def stop_query_execution(self, **request: Any) -> Mapping[str, Any]:
        self.executions[request["QueryExecutionId"]]["Status"] = {"State": "CANCELLED"}
        return {}


@pytest.fixture
def local_athena(s3: S3Client) -> LocalAthena:
    return LocalAthena(s3, tables())


def adapter(client: LocalAthena) -> Athena:
    """The adapter over ``client`` (boto3's client to the functions), with a minute to spare for every run."""
    return Athena(cast("AthenaClient", client), WORKGROUP, DATABASE, time.monotonic() + 60)


@pytest.fixture
def athena(local_athena: LocalAthena) -> Athena:
    return adapter(local_athena)
