"""Athena queries over the Glue catalog and S3 of a real local cloud (driftloop_localstack.athena).

Stock LocalStack 2026.3.0 has neither Athena nor Glue: without the extension's ``athena:default`` and
``glue:default`` providers every call here fails ("not included in your license plan" / service not enabled).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.plugins.local_cloud import unique

pytestmark = pytest.mark.integration

Client = Callable[..., Any]
TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED")
HOURS = ("2026/12/01/10", "2026/12/01/11", "2026/12/01/12")


def wait_until_done(athena: Any, query_id: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        execution: dict[str, Any] = athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]
        if execution["Status"]["State"] in TERMINAL:
            return execution
        assert time.monotonic() < deadline, f"still {execution['Status']['State']} after {timeout:.0f} s"
        time.sleep(0.1)


@pytest.fixture
def captures(local_client: Client) -> dict[str, Any]:
    """A JSON-lines table, gzip-compressed objects, partitioned by hour with date projection; sizes per hour."""
    s3, glue = local_client("s3"), local_client("glue")
    bucket, database = unique("athena"), unique("db").replace("-", "_")
    s3.create_bucket(Bucket=bucket)
    sizes: dict[str, int] = {}
    for index, hour in enumerate(HOURS):
        for part in range(2):
            records = [
                {"prediction_id": f"{hour}-{part}-{n}", "prediction": n % 2, "features": {"tenure (months)": n + index}}
                for n in range(10)
            ]
            body = gzip.compress("".join(json.dumps(r) + "\n" for r in records).encode())
            s3.put_object(Bucket=bucket, Key=f"captures/{hour}/part-{part}.json.gz", Body=body)
            sizes[hour] = sizes.get(hour, 0) + len(body)
    glue.create_database(DatabaseInput={"Name": database})
    glue.create_table(
        DatabaseName=database,
        TableInput={
            "Name": "captures",
            "TableType": "EXTERNAL_TABLE",
            "PartitionKeys": [{"Name": "hour", "Type": "string"}],
            "Parameters": {
                "projection.enabled": "true",
                "projection.hour.type": "date",
                "projection.hour.format": "yyyy/MM/dd/HH",
                "projection.hour.range": "2026/11/01/00,NOW",
                "projection.hour.interval.unit": "HOURS",
                "storage.location.template": f"s3://{bucket}/captures/${{hour}}/",
            },
            "StorageDescriptor": {
                "Location": f"s3://{bucket}/captures/",
                "Columns": [
                    {"Name": "prediction_id", "Type": "string"},
                    {"Name": "prediction", "Type": "int"},
                    {"Name": "features", "Type": "string"},
                ],
                "InputFormat": "org.apache.hadoop.mapred.TextInputFormat",
                "OutputFormat": "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
                "SerdeInfo": {"SerializationLibrary": "org.openx.data.jsonserde.JsonSerDe"},
            },
        },
    )
    return {"bucket": bucket, "database": database, "sizes": sizes}


def test_glue_catalog_keeps_databases_and_tables(local_client: Client, captures: dict[str, Any]) -> None:
    glue = local_client("glue")
    assert glue.get_database(Name=captures["database"])["Database"]["Name"] == captures["database"]
    table = glue.get_table(DatabaseName=captures["database"], Name="captures")["Table"]
    assert table["Parameters"]["projection.hour.type"] == "date"
    assert [t["Name"] for t in glue.get_tables(DatabaseName=captures["database"])["TableList"]] == ["captures"]
    glue.delete_table(DatabaseName=captures["database"], Name="captures")
    assert glue.get_tables(DatabaseName=captures["database"])["TableList"] == []


def test_group_by_query_reads_only_the_pruned_partition_and_writes_athenas_results(
    local_client: Client, captures: dict[str, Any]
) -> None:
    athena, s3 = local_client("athena"), local_client("s3")
    query = (
        "SELECT prediction, COUNT(*) AS n, "
        """SUM(TRY_CAST(json_extract_scalar(features, '$["tenure (months)"]') AS DOUBLE)) AS tenure """
        f"FROM {captures['database']}.captures WHERE hour = '{HOURS[1]}' GROUP BY prediction ORDER BY prediction"
    )
    output = f"s3://{captures['bucket']}/results/"
    query_id = athena.start_query_execution(QueryString=query, ResultConfiguration={"OutputLocation": output})[
        "QueryExecutionId"
    ]

    execution = wait_until_done(athena, query_id)

    assert execution["Status"]["State"] == "SUCCEEDED", execution["Status"]
    assert execution["ResultConfiguration"]["OutputLocation"] == f"{output}{query_id}.csv"
    assert execution["Statistics"]["DataScannedInBytes"] == captures["sizes"][HOURS[1]]
    first = athena.get_query_results(QueryExecutionId=query_id, MaxResults=2)
    rows = first["ResultSet"]["Rows"]
    rest = athena.get_query_results(QueryExecutionId=query_id, NextToken=first["NextToken"])["ResultSet"]["Rows"]
    values = [[cell.get("VarCharValue") for cell in row["Data"]] for row in rows + rest]
    # tenure = n + 1 in the second hour, two objects: even n (prediction 0) sum to 2 * (1+3+5+7+9) = 50, odd to 60.
    assert values == [["prediction", "n", "tenure"], ["0", "10", "50.0"], ["1", "10", "60.0"]]
    types = [c["Type"] for c in first["ResultSet"]["ResultSetMetadata"]["ColumnInfo"]]
    assert types == ["integer", "bigint", "double"]
    body = s3.get_object(Bucket=captures["bucket"], Key=f"results/{query_id}.csv")["Body"].read().decode()
    assert list(csv.reader(io.StringIO(body))) == values
    assert body.startswith('"prediction","n","tenure"\n"0","10","50.0"\n')
    metadata = s3.get_object(Bucket=captures["bucket"], Key=f"results/{query_id}.csv.metadata")["Body"].read()
    assert [c["Name"] for c in json.loads(metadata)["ColumnInfo"]] == ["prediction", "n", "tenure"]


def test_failing_query_reports_failed_with_the_engines_message(local_client: Client, captures: dict[str, Any]) -> None:
    athena = local_client("athena")
    query_id = athena.start_query_execution(
        QueryString="SELECT no_such_column FROM captures WHERE hour = '2026/12/01/10'",
        QueryExecutionContext={"Database": captures["database"]},
        ResultConfiguration={"OutputLocation": f"s3://{captures['bucket']}/results/"},
    )["QueryExecutionId"]

    status = wait_until_done(athena, query_id)["Status"]

    assert status["State"] == "FAILED"
    assert "no_such_column" in status["StateChangeReason"]
    assert "Binder" in status["StateChangeReason"]
    with pytest.raises(athena.exceptions.InvalidRequestException, match="FAILED"):
        athena.get_query_results(QueryExecutionId=query_id)


def test_unload_is_refused_with_a_clear_error(local_client: Client, captures: dict[str, Any]) -> None:
    athena = local_client("athena")
    query_id = athena.start_query_execution(
        QueryString=f"UNLOAD (SELECT 1) TO 's3://{captures['bucket']}/out/' WITH (format = 'PARQUET')",
        ResultConfiguration={"OutputLocation": f"s3://{captures['bucket']}/results/"},
    )["QueryExecutionId"]

    status = wait_until_done(athena, query_id)["Status"]

    assert status["State"] == "FAILED"
    assert "UNLOAD" in status["StateChangeReason"]


def test_stopped_running_query_is_cancelled_and_writes_no_results(
    local_client: Client, captures: dict[str, Any]
) -> None:
    athena, s3 = local_client("athena"), local_client("s3")
    query_id = athena.start_query_execution(
        QueryString="SELECT SUM(a.x * b.y) FROM range(100000000) AS a(x), range(1000) AS b(y)",
        ResultConfiguration={"OutputLocation": f"s3://{captures['bucket']}/results/"},
    )["QueryExecutionId"]
    deadline = time.monotonic() + 20
    while athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]["Status"]["State"] == "QUEUED":
        assert time.monotonic() < deadline
        time.sleep(0.05)

    athena.stop_query_execution(QueryExecutionId=query_id)
    status = wait_until_done(athena, query_id, timeout=20)["Status"]
    time.sleep(0.5)

    assert status["State"] == "CANCELLED"
    assert athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]["Status"]["State"] == "CANCELLED"
    assert "Contents" not in s3.list_objects_v2(Bucket=captures["bucket"], Prefix=f"results/{query_id}")


def test_work_groups_output_location_is_used_when_the_call_names_none(
    local_client: Client, captures: dict[str, Any]
) -> None:
    athena, s3 = local_client("athena"), local_client("s3")
    work_group = unique("wg")
    athena.create_work_group(
        Name=work_group,
        Configuration={"ResultConfiguration": {"OutputLocation": f"s3://{captures['bucket']}/wg-results/"}},
    )
    query_id = athena.start_query_execution(QueryString="SELECT 1 AS one", WorkGroup=work_group)["QueryExecutionId"]

    execution = wait_until_done(athena, query_id)

    assert execution["Status"]["State"] == "SUCCEEDED", execution["Status"]
    assert execution["ResultConfiguration"]["OutputLocation"] == f"s3://{captures['bucket']}/wg-results/{query_id}.csv"
    body = s3.get_object(Bucket=captures["bucket"], Key=f"wg-results/{query_id}.csv")["Body"].read()
    assert body == b'"one"\n"1"\n'
    with pytest.raises(athena.exceptions.InvalidRequestException, match="No output location"):
        athena.start_query_execution(QueryString="SELECT 1")
