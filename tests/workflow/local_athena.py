"""Athena for the workflow's unit tests: the local cloud's engine (sqlglot + DuckDB) over moto's S3, reading the
Glue tables ``functions.common.catalog`` describes, behind the few boto3 calls ``functions.workflow.athena`` makes.

The engine runs SELECTs only (UNLOAD is the local cloud's Athena provider's); :meth:`LocalAthena.unload` does what
the state machine's UNLOAD does with the SELECT inside: Parquet files without a suffix under the location, with
the column names lowercased as Athena writes them.
"""

from __future__ import annotations

import io
import itertools
import re
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

import tests.local.conftest  # noqa: F401  (puts the local cloud's extension on sys.path)
from functions.common import catalog
from tests.plugins.aws import DATA_BUCKET

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

from driftloop_localstack import athena_catalog, athena_engine

DATABASE = "driftloop_test"
_UNLOAD = re.compile(r"UNLOAD \((?P<select>.*)\) TO '(?P<location>s3://[^']*)' WITH \(format = 'PARQUET'\)\Z", re.S)


def glue_table(name: str, prefix: str) -> dict[str, Any]:
    """The Glue table the data stack creates for ``name`` over ``s3://<data bucket>/<prefix>``."""
    captures = name == catalog.CAPTURES_TABLE
    keys = catalog.CAPTURE_PARTITION_KEYS if captures else catalog.FEEDBACK_PARTITION_KEYS
    template = f"s3://{DATA_BUCKET}/{prefix}" + "".join(f"{key.name}=${{{key.name}}}/" for key in keys)
    return {
        "DatabaseName": DATABASE,
        "Name": name,
        "PartitionKeys": [{"Name": key.name, "Type": key.type} for key in keys],
        "Parameters": catalog.projection_parameters(template, injected_version=captures),
        "StorageDescriptor": {
            "Location": f"s3://{DATA_BUCKET}/{prefix}",
            "Columns": [
                {"Name": column.name, "Type": column.type}
                for column in (catalog.CAPTURE_COLUMNS if captures else catalog.FEEDBACK_COLUMNS)
            ],
            "SerdeInfo": {"SerializationLibrary": catalog.JSON_SERDE},
        },
    }


class LocalAthena:
    """A boto3 Athena client's start/get/results calls, each query run at once."""

    def __init__(self, s3: S3Client, capture_prefix: str = "captures/", feedback_prefix: str = "feedback/") -> None:
        self._s3 = s3
        self._tables = {
            catalog.CAPTURES_TABLE: athena_catalog.table_spec(glue_table(catalog.CAPTURES_TABLE, capture_prefix)),
            catalog.FEEDBACK_TABLE: athena_catalog.table_spec(glue_table(catalog.FEEDBACK_TABLE, feedback_prefix)),
        }
        self._results: dict[str, athena_engine.Result | str] = {}
        self._ids = itertools.count()
        self.queries: list[str] = []
        self.scanned = 0

    def run(self, sql: str) -> athena_engine.Result:
        """``sql`` through the engine; raises the engine's QueryError as Athena would fail the query."""
        self.queries.append(sql)
        result = athena_engine.run(sql, DATABASE, self._table, self._list, self._get, athena_engine.connect())
        self.scanned += result.scanned_bytes
        return result

    def select(self, sql: str) -> list[dict[str, str | None]]:
        result = self.run(sql)
        names = [column["Name"] for column in result.column_info]
        return [dict(zip(names, row, strict=True)) for row in result.rows]

    def unload(self, sql: str) -> list[str]:
        """Run an ``UNLOAD (...) TO 's3://...' WITH (format = 'PARQUET')`` as Athena would; the keys written."""
        match = _UNLOAD.match(sql)
        assert match, sql
        result = self.run(match["select"])
        names = [column["Name"].lower() for column in result.column_info]
        bucket, prefix = athena_catalog.split_s3_uri(match["location"])
        listed = self._s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
        assert not listed.get("Contents"), f"UNLOAD's location {match['location']} must be empty"
        if not result.rows:
            return []
        columns = {name: pa.array([row[i] for row in result.rows], pa.string()) for i, name in enumerate(names)}
        buffer = io.BytesIO()
        pq.write_table(pa.table(columns), buffer)
        key = f"{prefix}20261207_000000_00000_abcde_0a1b2c3d"
        self._s3.put_object(Bucket=bucket, Key=key, Body=buffer.getvalue())
        return [key]

    # -- boto3's Athena client ---------------------------------------------------------------------------------

    def start_query_execution(self, **request: Any) -> dict[str, Any]:
        assert request["QueryExecutionContext"] == {"Database": DATABASE}
        query_id = f"query-{next(self._ids)}"
        try:
            self._results[query_id] = self.run(request["QueryString"])
        except athena_catalog.QueryError as exc:
            self._results[query_id] = str(exc)
        return {"QueryExecutionId": query_id}

    def get_query_execution(self, QueryExecutionId: str) -> dict[str, Any]:  # noqa: N803 (boto3's name)
        result = self._results[QueryExecutionId]
        if isinstance(result, str):
            return {"QueryExecution": {"Status": {"State": "FAILED", "StateChangeReason": result}}}
        return {"QueryExecution": {"Status": {"State": "SUCCEEDED"}}}

    def get_paginator(self, name: str) -> Any:
        assert name == "get_query_results"
        return self

    def paginate(self, QueryExecutionId: str) -> list[dict[str, Any]]:  # noqa: N803
        result = self._results[QueryExecutionId]
        assert not isinstance(result, str)
        names = [column["Name"] for column in result.column_info]
        rows = [names, *result.rows]
        return [
            {
                "ResultSet": {
                    "ResultSetMetadata": {"ColumnInfo": result.column_info},
                    "Rows": [{"Data": [{} if v is None else {"VarCharValue": v} for v in row]} for row in rows],
                }
            }
        ]

    # -- the engine's catalog and S3 ----------------------------------------------------------------------------

    def _table(self, database: str, name: str) -> athena_catalog.TableSpec:
        if database != DATABASE or name not in self._tables:
            raise athena_catalog.QueryError(f"TABLE_NOT_FOUND: {database}.{name}")
        return self._tables[name]

    def _list(self, bucket: str, prefix: str) -> list[tuple[str, int]]:
        paginator = self._s3.get_paginator("list_objects_v2")
        return [
            (item["Key"], item["Size"])
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix)
            for item in page.get("Contents", [])
        ]

    def _get(self, bucket: str, key: str) -> bytes:
        return self._s3.get_object(Bucket=bucket, Key=key)["Body"].read()
