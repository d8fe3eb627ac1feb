"""The local Athena's pure parts: partition projection, result files, and Athena SQL run through DuckDB.

``athena_catalog`` is standard library: imported here. The engine (sqlglot + DuckDB) exists only in LocalStack's
venv, so its tests run each query through ``athena_engine.run`` there, in a subprocess fed from a fake catalog and
S3; they are marked ``integration`` because that venv is built by ``make local-setup``, which ``make integration``
runs first (and skipped when it is missing).
"""

from __future__ import annotations

import gzip
import json
import re
import subprocess
from datetime import UTC, datetime
from typing import Any

import pytest
from driftloop_localstack.athena_catalog import (
    Predicate,
    QueryError,
    TableSpec,
    column_info,
    partition_prefix,
    partitions,
    result_csv,
    result_metadata,
    table_spec,
)

from localcloud.cloud import Layout

NOW = datetime(2026, 12, 1, 12, 30, tzinfo=UTC)
JSON_SERDE = {"SerializationLibrary": "org.openx.data.jsonserde.JsonSerDe"}


def glue_table(parameters: dict[str, str], keys: tuple[str, ...] = ("hour",), serde: Any = None) -> dict[str, Any]:
    return {
        "DatabaseName": "db",
        "Name": "captures",
        "PartitionKeys": [{"Name": key, "Type": "int" if key == "n" else "string"} for key in keys],
        "Parameters": parameters,
        "StorageDescriptor": {
            "Location": "s3://bucket/captures",
            "Columns": [
                {"Name": "prediction_id", "Type": "string"},
                {"Name": "prediction", "Type": "int"},
                {"Name": "features", "Type": "string"},
            ],
            "SerdeInfo": serde or JSON_SERDE,
        },
    }


HOURLY = {
    "projection.enabled": "true",
    "projection.hour.type": "date",
    "projection.hour.format": "yyyy/MM/dd/HH",
    "projection.hour.range": "NOW-3HOURS,NOW",
    "storage.location.template": "s3://bucket/captures/${hour}/",
}


def spec(parameters: dict[str, str], keys: tuple[str, ...] = ("hour",)) -> TableSpec:
    return table_spec(glue_table(parameters, keys))


# -- partition projection -> object prefixes -----------------------------------------------------------------


def test_date_projection_lists_every_hour_of_its_relative_range_under_the_template() -> None:
    table = spec(HOURLY)
    found = [partition_prefix(table, values) for values in partitions(table, {}, NOW)]
    assert found == [f"s3://bucket/captures/2026/12/01/{hour:02d}/" for hour in (9, 10, 11, 12)]


def test_equality_and_range_predicates_prune_projected_partitions() -> None:
    table = spec(HOURLY)
    assert partitions(table, {"hour": [Predicate("=", ("2026/12/01/10",))]}, NOW) == [{"hour": "2026/12/01/10"}]
    ranged = [Predicate(">", ("2026/12/01/09",)), Predicate("<=", ("2026/12/01/11",))]
    assert partitions(table, {"hour": ranged}, NOW) == [{"hour": "2026/12/01/10"}, {"hour": "2026/12/01/11"}]


def test_enum_and_integer_projection_make_hive_style_prefixes_without_a_template() -> None:
    table = spec(
        {
            "projection.enabled": "true",
            "projection.version.type": "enum",
            "projection.version.values": "v1,v2",
            "projection.n.type": "integer",
            "projection.n.range": "1,12",
            "projection.n.digits": "2",
        },
        keys=("version", "n"),
    )
    chosen = partitions(table, {"n": [Predicate(">=", ("9",)), Predicate("in", ("10", "11", "3"))]}, NOW)
    assert [partition_prefix(table, values) for values in chosen] == [
        "s3://bucket/captures/version=v1/n=10/",
        "s3://bucket/captures/version=v1/n=11/",
        "s3://bucket/captures/version=v2/n=10/",
        "s3://bucket/captures/version=v2/n=11/",
    ]


def test_injected_projection_takes_its_values_from_the_query_and_refuses_a_query_without_them() -> None:
    table = spec({"projection.enabled": "true", "projection.hour.type": "injected"})
    assert partitions(table, {"hour": [Predicate("in", ("b", "a"))]}, NOW) == [{"hour": "a"}, {"hour": "b"}]
    with pytest.raises(QueryError, match="CONSTRAINT_VIOLATION"):
        partitions(table, {"hour": [Predicate(">", ("a",))]}, NOW)


def test_tables_in_formats_the_local_engine_cannot_read_are_refused() -> None:
    with pytest.raises(QueryError, match="HIVE_UNSUPPORTED_FORMAT"):
        table_spec(glue_table({}, serde={"SerializationLibrary": "org.apache.hadoop.hive.serde2.avro.AvroSerDe"}))
    csv_table = table_spec(glue_table({}, serde={"SerializationLibrary": "org.apache.hadoop.hive.serde2.OpenCSVSerde"}))
    assert csv_table.data_format == "csv"


# -- result files --------------------------------------------------------------------------------------------


def test_result_csv_quotes_every_value_and_leaves_nulls_empty_as_athena_does() -> None:
    body = result_csv(["name", "n"], [['say "hi"', "1"], [None, "2"]])
    assert body == '"name","n"\n"say ""hi""","1"\n,"2"\n'


def test_result_metadata_describes_columns_with_athenas_type_names() -> None:
    infos = [column_info("n", "BIGINT"), column_info("amount", "DECIMAL(18,3)"), column_info("bin", "VARCHAR")]
    assert [(i["Type"], i["Precision"], i["Scale"]) for i in infos] == [
        ("bigint", 0, 0),
        ("decimal", 18, 3),
        ("varchar", 0, 0),
    ]
    assert json.loads(result_metadata(infos))["ColumnInfo"][2]["Name"] == "bin"


# -- queries through the engine (LocalStack's venv) ----------------------------------------------------------

ENGINE = """
import json, sys
from driftloop_localstack import athena_catalog, athena_engine

document = json.load(sys.stdin)
objects = {key: bytes.fromhex(body) for key, body in document["objects"].items()}
tables = {name: athena_catalog.table_spec(table) for name, table in document["tables"].items()}


def get_table(database, name):
    try:
        return tables[f"{database}.{name}"]
    except KeyError:
        raise athena_catalog.QueryError(f"TABLE_NOT_FOUND: {database}.{name}") from None


def list_objects(bucket, prefix):
    return [
        (key.split("/", 1)[1], len(body))
        for key, body in sorted(objects.items())
        if key.startswith(f"{bucket}/{prefix}")
    ]


def put_object(bucket, key, body):
    objects[f"{bucket}/{key}"] = body


try:
    if document.get("parse_only"):
        unload = athena_engine.unload_statement(document["sql"])
        answer = {"unload": None if unload is None else vars(unload)}
    else:
        result = athena_engine.run(
            document["sql"], "db", get_table, list_objects, lambda b, k: objects[f"{b}/{k}"], put_object,
            athena_engine.connect(),
        )
        answer = {
            "types": [c["Type"] for c in result.column_info],
            "rows": result.rows,
            "scanned": result.scanned_bytes,
            "update_count": result.update_count,
            "written": {uri: objects[uri.removeprefix("s3://")].hex() for uri in result.written},
        }
        if athena_engine.substatement(document["sql"]) == "SELECT":
            answer["translated"] = athena_engine.translate(document["sql"])
except athena_catalog.QueryError as exc:
    answer = {"error": str(exc)}
print(json.dumps(answer))
"""


def lines(*records: dict[str, Any]) -> bytes:
    return "".join(json.dumps(record) + "\n" for record in records).encode()


HOUR_10 = gzip.compress(
    lines(
        {"prediction_id": "a", "prediction": 1, "features": {"tenure (months)": 3, 'odd "name`;': "x"}},
        {"prediction_id": "b", "prediction": 0, "features": {"tenure (months)": "n/a"}},
        {"prediction_id": "c", "prediction": 1, "features": {"tenure (months)": 30}},
    )
)
HOUR_11 = lines({"prediction_id": "d", "prediction": 0, "features": {"tenure (months)": 12}})


@pytest.fixture(scope="module")
def engine() -> Any:
    python = Layout().localstack_python
    if not python.exists() or subprocess.run([str(python), "-c", "import duckdb, sqlglot"], check=False).returncode:
        pytest.skip("LocalStack's venv with duckdb and sqlglot is missing: make local-setup")
    parameters = {**HOURLY, "projection.hour.range": "2026/12/01/00,2026/12/01/23"}

    def run(
        sql: str,
        tables: dict[str, Any] | None = None,
        objects: dict[str, bytes] | None = None,
        parse_only: bool = False,
    ) -> dict[str, Any]:
        """``sql`` over db.captures (two hours of JSON lines, one gzip) plus ``tables`` and ``objects``; the files
        an UNLOAD writes come back as ``written`` (URI -> hex bytes). ``parse_only``: the UNLOAD statement's parts."""
        objects = {
            "bucket/captures/2026/12/01/10/part-0.json.gz": HOUR_10,
            "bucket/captures/2026/12/01/11/part-0.json": HOUR_11,
            "bucket/captures/2026/12/01/11/_SUCCESS": b"x",
            **(objects or {}),
        }
        document = {
            "sql": sql,
            "tables": {"db.captures": glue_table(parameters), **(tables or {})},
            "objects": {key: body.hex() for key, body in objects.items()},
            "parse_only": parse_only,
        }
        done = subprocess.run(
            [str(python), "-c", ENGINE], input=json.dumps(document), capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr
        answer: dict[str, Any] = json.loads(done.stdout)
        return answer

    return run


TENURE = """TRY_CAST(json_extract_scalar(features, '$["tenure (months)"]') AS DOUBLE)"""


@pytest.mark.integration
def test_binning_query_of_the_monitor_runs_on_duckdb_over_the_pruned_partition(engine: Any) -> None:
    answer = engine(
        f"SELECT CASE WHEN {TENURE} IS NULL THEN -1 WHEN {TENURE} < 10 THEN 0 ELSE 1 END AS bin, COUNT(*) AS n "
        "FROM db.captures WHERE hour = '2026/12/01/10' GROUP BY 1 ORDER BY 1"
    )
    assert answer.get("error") is None, answer
    assert answer["rows"] == [["-1", "1"], ["0", "1"], ["1", "1"]]
    assert answer["types"] == ["integer", "bigint"]
    assert answer["scanned"] == len(HOUR_10)
    assert "->>" in answer["translated"] or "JSON_EXTRACT" in answer["translated"].upper()


@pytest.mark.integration
def test_query_without_partition_predicates_reads_every_partition_but_no_marker_files(engine: Any) -> None:
    answer = engine("SELECT hour, COUNT(*) AS n FROM captures c GROUP BY c.hour ORDER BY hour")
    assert answer["rows"] == [["2026/12/01/10", "3"], ["2026/12/01/11", "1"]]
    assert answer["scanned"] == len(HOUR_10) + len(HOUR_11)


@pytest.mark.integration
def test_quoted_identifiers_holding_quotes_backticks_and_semicolons_survive_translation(engine: Any) -> None:
    answer = engine(
        """SELECT json_extract_scalar(features, '$["odd \\"name`;"]') AS "odd ""name`;" """
        "FROM db.captures WHERE hour = '2026/12/01/10' AND prediction_id = 'a'"
    )
    assert answer.get("error") is None, answer
    assert answer["rows"] == [["x"]]
    assert answer["scanned"] == len(HOUR_10)  # the partition predicate still prunes beside another one


@pytest.mark.integration
def test_ctas_and_insert_are_refused_and_engine_errors_name_the_problem(engine: Any) -> None:
    ctas = engine("CREATE TABLE db.t2 WITH (format = 'PARQUET') AS SELECT * FROM db.captures")["error"]
    assert ctas.startswith("NOT_SUPPORTED") and "UNLOAD" in ctas
    assert engine("INSERT INTO db.captures SELECT * FROM db.captures")["error"].startswith("NOT_SUPPORTED")
    assert "missing_column" in engine("SELECT missing_column FROM db.captures")["error"]


@pytest.mark.integration
def test_partition_predicates_prune_only_the_table_they_qualify(engine: Any) -> None:
    answer = engine(
        "SELECT COUNT(*) AS n FROM db.captures a JOIN captures b ON a.prediction_id = b.prediction_id "
        "WHERE a.hour = '2026/12/01/11'"
    )
    assert answer["rows"] == [["1"]]
    assert answer["scanned"] == len(HOUR_11) + (len(HOUR_10) + len(HOUR_11))


@pytest.mark.integration
def test_integer_division_truncates_as_in_athena(engine: Any) -> None:
    answer = engine("SELECT COUNT(*) / 2 AS half, -7 / 2 AS negative, 7.0 / 2 AS exact FROM db.captures")
    assert answer["rows"] == [["2", "-3", "3.5"]]


def unpartitioned(name: str, serde: dict[str, Any], parameters: dict[str, str] | None = None) -> dict[str, Any]:
    table = glue_table(parameters or {}, keys=())
    table["Name"] = name
    table["StorageDescriptor"]["Location"] = f"s3://bucket/{name}/"
    table["StorageDescriptor"]["SerdeInfo"] = serde
    return table


@pytest.mark.integration
def test_parquet_and_csv_tables_are_read_with_their_glue_columns(engine: Any) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    table = pa.table({"prediction_id": ["p"], "prediction": [1], "features": ["{}"], "extra": [0.5]})
    pq.write_table(table, sink)
    parquet = unpartitioned(
        "scores", {"SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"}
    )
    csv = unpartitioned(
        "labels",
        {
            "SerializationLibrary": "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe",
            "Parameters": {"field.delim": "|"},
        },
        {"skip.header.line.count": "1"},
    )

    answer = engine(
        "SELECT s.prediction_id, s.prediction + l.prediction AS total, l.features FROM scores s "
        "JOIN labels l ON s.prediction_id = l.prediction_id",
        tables={"db.scores": parquet, "db.labels": csv},
        objects={
            "bucket/scores/part-0.parquet": sink.getvalue().to_pybytes(),
            "bucket/labels/part-0.csv": b"prediction_id|prediction|features\np|2|a,b\n",
        },
    )

    assert answer.get("error") is None, answer
    assert answer["rows"] == [["p", "3", "a,b"]]


# -- UNLOAD --------------------------------------------------------------------------------------------------------

# Athena names UNLOAD's files <Trino query id>_<uuid>, gzip-compressed text ending in .gz, Parquet bare.
ATHENA_FILE = r"\d{8}_\d{6}_\d{5}_[a-z0-9]{5}_[0-9a-f-]{36}"


@pytest.mark.integration
def test_unload_statement_is_split_by_tokens_so_parentheses_and_quotes_in_strings_stay_in_the_select(
    engine: Any,
) -> None:
    select = """SELECT ')' AS "a)", 'it''s (' AS b, (1 + 2) AS c FROM t WHERE d = ')'"""
    sql = f"""unload ({select}) -- the select\n TO 's3://bucket/a ''b''/' WITH (format = 'TEXTFILE', """
    sql += "field_delimiter = '|', partitioned_by = ARRAY['c']);"

    answer = engine(sql, parse_only=True)["unload"]

    assert answer == {
        "select": select,
        "target": "s3://bucket/a 'b'/",
        "format": "TEXTFILE",
        "compression": "gzip",
        "field_delimiter": "|",
        "partitioned_by": ["c"],
    }
    assert engine("SELECT 1", parse_only=True)["unload"] is None


@pytest.mark.integration
@pytest.mark.parametrize(
    ("sql", "error"),
    [
        ("UNLOAD (SELECT 1 TO 's3://b/p/' WITH (format = 'JSON')", "SYNTAX_ERROR: UNLOAD: expected ')' closing"),
        ("UNLOAD (SELECT 1) TO 's3://b/p/'", "SYNTAX_ERROR: UNLOAD: expected WITH"),
        ("UNLOAD (SELECT 1) TO 's3://b/p/' WITH (format = 'JSON'); DROP TABLE x", "expected the end of the statement"),
        ("UNLOAD (SELECT 1) TO s3 WITH (format = 'JSON')", "expected the target as a string literal"),
        ("UNLOAD (SELECT 1) TO 'b/p/' WITH (format = 'JSON')", "INVALID_TABLE_PROPERTY: UNLOAD's target must be"),
        ("UNLOAD (SELECT 1) TO 's3://b/p/' WITH (compression = 'gzip')", "requires the format property"),
        ("UNLOAD (SELECT 1) TO 's3://b/p/' WITH (format = 'JSON', mode = 'x')", "UNLOAD has no property 'mode'"),
        ("UNLOAD (SELECT 1) TO 's3://b/p/' WITH (format = 'ORC')", "NOT_SUPPORTED: UNLOAD to ORC"),
        ("UNLOAD (SELECT 1) TO 's3://b/p/' WITH (format = 'CSV')", "is not one of ORC, PARQUET, AVRO, JSON, TEXTFILE"),
        ("UNLOAD (SELECT 1) TO 's3://b/p/' WITH (format = 'JSON', compression = 'zstd')", "compression 'zstd'"),
        ("UNLOAD (SELECT 1) TO 's3://b/p/' WITH (format = 'TEXTFILE', field_delimiter = '||')", "one character"),
        ("UNLOAD (SELECT 1) TO 's3://b/p/' WITH (format = 'JSON', partitioned_by = 'a')", "partitioned_by takes"),
    ],
)
def test_malformed_or_unsupported_unload_fails_with_a_precise_error(engine: Any, sql: str, error: str) -> None:
    assert error in engine(sql, parse_only=True)["error"]


@pytest.mark.integration
def test_unload_writes_gzip_parquet_by_default_under_an_empty_target_with_athenas_file_names(engine: Any) -> None:
    import io

    import pyarrow.parquet as pq

    answer = engine(
        "UNLOAD (SELECT prediction_id, prediction FROM db.captures WHERE hour = '2026/12/01/10' ORDER BY 1) "
        "TO 's3://bucket/assembled/v1/' WITH (format = 'PARQUET')"
    )

    assert answer.get("error") is None, answer
    assert answer["update_count"] == 3 and answer["rows"] == [] and answer["scanned"] == len(HOUR_10)
    [(uri, body)] = answer["written"].items()
    assert re.fullmatch(f"s3://bucket/assembled/v1/{ATHENA_FILE}", uri)
    parquet = pq.ParquetFile(io.BytesIO(bytes.fromhex(body)))
    assert parquet.read().to_pylist() == [
        {"prediction_id": "a", "prediction": 1},
        {"prediction_id": "b", "prediction": 0},
        {"prediction_id": "c", "prediction": 1},
    ]
    assert parquet.metadata.row_group(0).column(0).compression == "GZIP"


@pytest.mark.integration
def test_unload_to_json_and_textfile_writes_gzip_lines_as_athena_does(engine: Any) -> None:
    select = "SELECT prediction_id, NULLIF(prediction, 0) AS p FROM db.captures WHERE hour = '2026/12/01/10' ORDER BY 1"

    json_lines = engine(f"UNLOAD ({select}) TO 's3://bucket/json/' WITH (format = 'JSON')")
    text = engine(f"UNLOAD ({select}) TO 's3://bucket/text/' WITH (format = 'TEXTFILE')")
    comma = engine(f"UNLOAD ({select}) TO 's3://bucket/csv/' WITH (format = 'TEXTFILE', field_delimiter = ',')")

    [(uri, body)] = json_lines["written"].items()
    assert re.fullmatch(f"s3://bucket/json/{ATHENA_FILE}\\.gz", uri)
    records = [json.loads(line) for line in gzip.decompress(bytes.fromhex(body)).splitlines()]
    assert records == [
        {"prediction_id": "a", "p": 1},
        {"prediction_id": "b", "p": None},
        {"prediction_id": "c", "p": 1},
    ]
    # Hive's text: the \x01 delimiter by default, \N for NULL, nothing quoted, no header.
    assert gzip.decompress(bytes.fromhex(next(iter(text["written"].values())))) == b"a\x011\nb\x01\\N\nc\x011\n"
    assert gzip.decompress(bytes.fromhex(next(iter(comma["written"].values())))) == b"a,1\nb,\\N\nc,1\n"


@pytest.mark.integration
def test_unload_never_writes_into_a_target_holding_objects(engine: Any) -> None:
    answer = engine(
        "UNLOAD (SELECT 1 AS one) TO 's3://bucket/captures/2026/12/01/' WITH (format = 'JSON')",
    )

    assert answer["error"].startswith("HIVE_PATH_ALREADY_EXISTS: Target directory for UNLOAD already exists")
    assert "s3://bucket/captures/2026/12/01/" in answer["error"]


@pytest.mark.integration
def test_partitioned_unload_writes_hive_folders_without_the_partition_column_even_beside_earlier_files(
    engine: Any,
) -> None:
    answer = engine(
        "UNLOAD (SELECT prediction_id, prediction FROM db.captures) "
        "TO 's3://bucket/parts/' WITH (format = 'JSON', partitioned_by = ARRAY['prediction'])",
        objects={"bucket/parts/prediction=9/earlier.gz": b"x"},
    )
    misplaced = engine(
        "UNLOAD (SELECT prediction, prediction_id FROM db.captures) "
        "TO 's3://bucket/other/' WITH (format = 'JSON', partitioned_by = ARRAY['prediction'])"
    )

    assert answer.get("error") is None, answer
    assert answer["update_count"] == 4
    found = {
        uri.rsplit("/", 2)[1]: sorted(gzip.decompress(bytes.fromhex(body)).decode().split())
        for uri, body in answer["written"].items()
    }
    assert found == {
        "prediction=0": ['{"prediction_id":"b"}', '{"prediction_id":"d"}'],
        "prediction=1": ['{"prediction_id":"a"}', '{"prediction_id":"c"}'],
    }
    assert "must be the last columns of the SELECT" in misplaced["error"]
