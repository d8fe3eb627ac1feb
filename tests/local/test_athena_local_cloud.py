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

from localcloud.cloud import INFO_PATH, Cloud, fetch_json
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


def test_unload_writes_its_files_the_data_manifest_and_metadata_and_counts_the_rows(
    local_client: Client, captures: dict[str, Any]
) -> None:
    athena, s3 = local_client("athena"), local_client("s3")
    bucket = captures["bucket"]
    query_id = athena.start_query_execution(
        QueryString=f"UNLOAD (SELECT prediction_id FROM captures WHERE hour = '{HOURS[0]}') "
        f"TO 's3://{bucket}/assembled/v1/' WITH (format = 'JSON')",
        QueryExecutionContext={"Database": captures["database"]},
        ResultConfiguration={"OutputLocation": f"s3://{bucket}/results/"},
    )["QueryExecutionId"]

    execution = wait_until_done(athena, query_id)

    assert execution["Status"]["State"] == "SUCCEEDED", execution["Status"]
    assert execution["SubstatementType"] == "UNLOAD"
    assert execution["ResultConfiguration"]["OutputLocation"] == f"s3://{bucket}/results/{query_id}"
    assert execution["Statistics"]["DataManifestLocation"] == f"s3://{bucket}/results/{query_id}-manifest.csv"
    assert execution["Statistics"]["DataScannedInBytes"] == captures["sizes"][HOURS[0]]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="assembled/v1/")["Contents"]]
    manifest = s3.get_object(Bucket=bucket, Key=f"results/{query_id}-manifest.csv")["Body"].read().decode()
    assert manifest.splitlines() == [f"s3://{bucket}/{key}" for key in keys]
    lines = b"".join(gzip.decompress(s3.get_object(Bucket=bucket, Key=key)["Body"].read()) for key in keys)
    assert len(lines.splitlines()) == 20
    s3.head_object(Bucket=bucket, Key=f"results/{query_id}.metadata")
    results = athena.get_query_results(QueryExecutionId=query_id)
    assert results["UpdateCount"] == 20
    assert results["ResultSet"]["Rows"] == []
    again = athena.start_query_execution(
        QueryString=f"UNLOAD (SELECT 1 AS one) TO 's3://{bucket}/assembled/v1/' WITH (format = 'JSON')",
        ResultConfiguration={"OutputLocation": f"s3://{bucket}/results/"},
    )["QueryExecutionId"]
    assert "HIVE_PATH_ALREADY_EXISTS" in wait_until_done(athena, again)["Status"]["StateChangeReason"]


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


def enforced_work_group(athena: Any, bucket: str) -> str:
    name = unique("wg")
    athena.create_work_group(
        Name=name,
        Configuration={
            "ResultConfiguration": {"OutputLocation": f"s3://{bucket}/enforced/"},
            "EnforceWorkGroupConfiguration": True,
        },
    )
    return name


def test_work_group_that_enforces_its_configuration_overrides_the_calls_output_location(
    local_client: Client, captures: dict[str, Any]
) -> None:
    athena = local_client("athena")
    work_group = enforced_work_group(athena, captures["bucket"])
    query_id = athena.start_query_execution(
        QueryString="SELECT 1 AS one",
        WorkGroup=work_group,
        ResultConfiguration={"OutputLocation": f"s3://{captures['bucket']}/mine/"},
    )["QueryExecutionId"]

    execution = wait_until_done(athena, query_id)

    assert execution["ResultConfiguration"]["OutputLocation"] == f"s3://{captures['bucket']}/enforced/{query_id}.csv"
    assert execution["WorkGroup"] == work_group


# -- Step Functions: arn:aws:states:::athena:* (driftloop_localstack.stepfunctions_athena) ---------------------


def run_state_machine(local_client: Client, states: dict[str, Any], start: str, payload: dict[str, Any]) -> Any:
    sfn = local_client("stepfunctions")
    arn = sfn.create_state_machine(
        name=unique("athena"),
        definition=json.dumps({"StartAt": start, "States": states}),
        roleArn="arn:aws:iam::000000000000:role/driftloop-workflow",
    )["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=arn, input=json.dumps(payload))["executionArn"]
    deadline = time.monotonic() + 60
    while (described := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
        assert time.monotonic() < deadline, "the execution still runs after 60 s"
        time.sleep(0.2)
    return described, sfn.get_execution_history(executionArn=execution)["events"]


def query_states(output: str) -> dict[str, Any]:
    """The workflow's use: start an UNLOAD or SELECT and wait (.sync), then read the results."""
    return {
        "Query": {
            "Type": "Task",
            "Resource": "arn:aws:states:::athena:startQueryExecution.sync",
            "Parameters": {
                "QueryString.$": "$.query",
                "QueryExecutionContext": {"Database.$": "$.database"},
                "ResultConfiguration": {"OutputLocation": output},
            },
            "ResultSelector": {
                "id.$": "$.QueryExecution.QueryExecutionId",
                "state.$": "$.QueryExecution.Status.State",
                "scanned.$": "$.QueryExecution.Statistics.DataScannedInBytes",
            },
            "ResultPath": "$.query_execution",
            "Next": "Results",
        },
        "Results": {
            "Type": "Task",
            "Resource": "arn:aws:states:::athena:getQueryResults",
            "Parameters": {"QueryExecutionId.$": "$.query_execution.id"},
            "ResultSelector": {"rows.$": "$.ResultSet.Rows"},
            "ResultPath": "$.results",
            "End": True,
        },
    }


def test_sync_task_waits_for_the_query_and_returns_its_execution(
    local_client: Client, captures: dict[str, Any]
) -> None:
    query = f"SELECT COUNT(*) AS n FROM captures WHERE hour = '{HOURS[2]}'"
    described, _ = run_state_machine(
        local_client,
        query_states(f"s3://{captures['bucket']}/sfn/"),
        "Query",
        {"query": query, "database": captures["database"]},
    )

    assert described["status"] == "SUCCEEDED", described
    output = json.loads(described["output"])
    assert output["query_execution"]["state"] == "SUCCEEDED"
    assert output["query_execution"]["scanned"] == captures["sizes"][HOURS[2]]
    assert output["results"]["rows"] == [{"Data": [{"VarCharValue": "n"}]}, {"Data": [{"VarCharValue": "20"}]}]


def test_failed_query_fails_the_sync_task_with_its_execution_as_the_cause(
    local_client: Client, captures: dict[str, Any]
) -> None:
    states = query_states(f"s3://{captures['bucket']}/sfn/")
    states["Query"]["Catch"] = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Failed"}]
    states["Failed"] = {"Type": "Pass", "End": True}

    described, _ = run_state_machine(
        local_client,
        states,
        "Query",
        {"query": "SELECT no_such_column FROM captures", "database": captures["database"]},
    )

    assert described["status"] == "SUCCEEDED", described
    error = json.loads(described["output"])["error"]
    assert error["Error"] == "States.TaskFailed"
    cause = json.loads(error["Cause"])["QueryExecution"]
    assert cause["Status"]["State"] == "FAILED"
    assert "no_such_column" in cause["Status"]["StateChangeReason"]


def test_athena_api_error_fails_the_task_with_athenas_exception_name(local_client: Client) -> None:
    described, events = run_state_machine(
        local_client,
        {
            "Get": {
                "Type": "Task",
                "Resource": "arn:aws:states:::athena:getQueryExecution",
                "Parameters": {"QueryExecutionId": "00000000-0000-0000-0000-000000000000"},
                "End": True,
            }
        },
        "Get",
        {},
    )

    assert described["status"] == "FAILED"
    failed = next(e["taskFailedEventDetails"] for e in events if e["type"] == "TaskFailed")
    assert failed["error"] == "Athena.InvalidRequestException"
    assert "(Service: AmazonAthena; Status Code: 400; Error Code: InvalidRequestException" in failed["cause"]


# -- CloudFormation: AWS::Glue::Database, AWS::Glue::Table, AWS::Athena::WorkGroup ------------------------------


def analytics_template(bucket: str, database: str, work_group: str, projection_range: str) -> str:
    return json.dumps(
        {
            "Resources": {
                "Database": {
                    "Type": "AWS::Glue::Database",
                    "Properties": {"CatalogId": "000000000000", "DatabaseInput": {"Name": database}},
                },
                "Captures": {
                    "Type": "AWS::Glue::Table",
                    "Properties": {
                        "CatalogId": "000000000000",
                        "DatabaseName": {"Ref": "Database"},
                        "TableInput": {
                            "Name": "captures",
                            "TableType": "EXTERNAL_TABLE",
                            "PartitionKeys": [{"Name": "hour", "Type": "string"}],
                            "Parameters": {
                                "projection.enabled": "true",
                                "projection.hour.type": "date",
                                "projection.hour.format": "yyyy/MM/dd/HH",
                                "projection.hour.range": projection_range,
                                "projection.hour.interval.unit": "HOURS",
                                "storage.location.template": f"s3://{bucket}/captures/${{hour}}/",
                            },
                            "StorageDescriptor": {
                                "Location": f"s3://{bucket}/captures/",
                                "Columns": [{"Name": "prediction_id", "Type": "string"}],
                                "SerdeInfo": {"SerializationLibrary": "org.openx.data.jsonserde.JsonSerDe"},
                            },
                        },
                    },
                },
                "WorkGroup": {
                    "Type": "AWS::Athena::WorkGroup",
                    "Properties": {
                        "Name": work_group,
                        "WorkGroupConfiguration": {
                            "EnforceWorkGroupConfiguration": True,
                            "ResultConfiguration": {"OutputLocation": f"s3://{bucket}/stack-results/"},
                        },
                    },
                },
            },
            "Outputs": {
                "Database": {"Value": {"Ref": "Database"}},
                "Table": {"Value": {"Ref": "Captures"}},
                "WorkGroup": {"Value": {"Ref": "WorkGroup"}},
            },
        }
    )


def wait_for_stack(cloudformation: Any, name: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while (stack := cloudformation.describe_stacks(StackName=name)["Stacks"][0])["StackStatus"].endswith(
        "_IN_PROGRESS"
    ):
        assert time.monotonic() < deadline, stack["StackStatus"]
        time.sleep(0.3)
    return stack  # type: ignore[no-any-return]


def test_stack_creates_updates_and_deletes_the_glue_catalog_and_work_group_the_queries_use(
    local_client: Client, captures: dict[str, Any]
) -> None:
    cloudformation, glue, athena = local_client("cloudformation"), local_client("glue"), local_client("athena")
    bucket, stack = captures["bucket"], unique("analytics")
    database, work_group = unique("stackdb").replace("-", "_"), unique("stack-wg")
    cloudformation.create_stack(
        StackName=stack, TemplateBody=analytics_template(bucket, database, work_group, "2026/11/01/00,NOW")
    )
    created = wait_for_stack(cloudformation, stack)
    query_id = athena.start_query_execution(
        QueryString=f"SELECT COUNT(*) FROM {database}.captures WHERE hour = '{HOURS[1]}'", WorkGroup=work_group
    )["QueryExecutionId"]
    execution = wait_until_done(athena, query_id)

    cloudformation.update_stack(
        StackName=stack, TemplateBody=analytics_template(bucket, database, work_group, "2026/12/01/00,NOW")
    )
    updated = wait_for_stack(cloudformation, stack)
    table = glue.get_table(DatabaseName=database, Name="captures")["Table"]
    cloudformation.delete_stack(StackName=stack)
    cloudformation.get_waiter("stack_delete_complete").wait(
        StackName=stack, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )

    assert created["StackStatus"] == "CREATE_COMPLETE", created
    outputs = {o["OutputKey"]: o["OutputValue"] for o in created["Outputs"]}
    assert outputs == {"Database": database, "Table": "captures", "WorkGroup": work_group}
    assert execution["Status"]["State"] == "SUCCEEDED", execution["Status"]
    assert execution["ResultConfiguration"]["OutputLocation"] == f"s3://{bucket}/stack-results/{query_id}.csv"
    assert athena.get_query_results(QueryExecutionId=query_id)["ResultSet"]["Rows"][1]["Data"] == [
        {"VarCharValue": "20"}
    ]
    assert updated["StackStatus"] == "UPDATE_COMPLETE", updated
    assert table["Parameters"]["projection.hour.range"] == "2026/12/01/00,NOW"
    with pytest.raises(glue.exceptions.EntityNotFoundException):
        glue.get_database(Name=database)
    assert athena.get_work_group(WorkGroup=work_group).get("WorkGroup") is None


def test_extension_reports_the_resource_types_cloudformation_creates_for_the_deploy_check(local_cloud: Cloud) -> None:
    if not local_cloud.managed:
        pytest.skip("tests driftloop's extension: needs the managed local AWS, not DRIFTLOOP_LOCAL_ENDPOINT")

    types = (fetch_json(f"{local_cloud.endpoint}{INFO_PATH}") or {})["cloudformation"]["resource_types"]

    assert {"AWS::Glue::Database", "AWS::Glue::Table", "AWS::Athena::WorkGroup", "AWS::S3::Bucket"} <= set(types)
    assert "AWS::WAFv2::IPSet" not in types
