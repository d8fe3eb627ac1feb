"""Athena SQL run by DuckDB: sqlglot translates the dialect, the Glue catalog and S3 objects supply the tables.

A query names tables ``database.table`` (or ``table`` in the execution context's database). Each occurrence of a
catalog table in the query becomes a DuckDB view over the S3 objects of the partitions it reads: partition
projection gives the candidate partitions, and simple predicates on partition columns in the same SELECT's WHERE
(``=``, ``IN``, ``<``, ``<=``, ``>``, ``>=``, ``BETWEEN`` against literals, joined by ``AND``) prune them; any
other predicate is left to DuckDB after reading every candidate partition. Objects are fetched through the
callbacks given (LocalStack's in-process S3 client), never by DuckDB itself: DuckDB's httpfs is an extension
downloaded at run time, and autoloading is switched off.
"""

from __future__ import annotations

import gzip
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import sqlglot
from sqlglot import exp

from driftloop_localstack.athena_catalog import (
    CSV,
    JSON,
    Column,
    Predicate,
    QueryError,
    TableSpec,
    column_info,
    duckdb_type,
    hive_values,
    is_data_object,
    matches,
    partition_prefix,
    partitions,
    split_s3_uri,
    text,
)

# (bucket, prefix) -> [(key, size)] and (bucket, key) -> bytes: LocalStack's S3.
ListObjects = Callable[[str, str], list[tuple[str, int]]]
GetObject = Callable[[str, str], bytes]
GetTable = Callable[[str, str], TableSpec]

_COMPARISONS: Mapping[type[exp.Expr], str] = {
    exp.EQ: "=",
    exp.LT: "<",
    exp.LTE: "<=",
    exp.GT: ">",
    exp.GTE: ">=",
}
_FLIPPED = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "=": "="}
REFUSED = (
    "NOT_SUPPORTED: the local Athena runs SELECT queries only (UNLOAD, CTAS, INSERT and DDL are not supported yet)"
)


@dataclass
class TableRead:
    """One occurrence of a catalog table in a query: which table, under which DuckDB name, with what predicates."""

    spec: TableSpec
    view: str
    predicates: dict[str, list[Predicate]] = field(default_factory=dict)


@dataclass
class Plan:
    sql: str  # DuckDB's SQL, reading the views
    reads: list[TableRead]


def translate(sql: str) -> str:
    """Athena SQL as DuckDB SQL, tables as named: what :func:`plan` makes of a query before it swaps in the views
    (for tests and for reading what DuckDB runs)."""
    return str(_parse(sql).sql(dialect="duckdb"))


def _parse(sql: str) -> exp.Expr:
    try:
        statements = [s for s in sqlglot.parse(sql, read="athena") if s is not None]
    except sqlglot.errors.ParseError as exc:
        raise QueryError(f"SYNTAX_ERROR: {exc}") from exc
    if len(statements) != 1:
        raise QueryError("SYNTAX_ERROR: exactly one statement is allowed")
    if not isinstance(statements[0], exp.Query):
        raise QueryError(REFUSED)
    return statements[0]


def plan(sql: str, default_database: str | None, get_table: GetTable) -> Plan:
    tree = _parse(sql)
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    reads: list[TableRead] = []
    for table in list(tree.find_all(exp.Table)):
        if not table.name or (not table.db and table.name.lower() in ctes):
            continue
        database = table.db or default_database
        if not database:
            raise QueryError(f"SCHEMA_NOT_FOUND: no database given for table {table.name}")
        spec = get_table(database.lower(), table.name.lower())
        read = TableRead(spec, f"__driftloop_t{len(reads)}", _predicates(table, spec))
        reads.append(read)
        alias = table.alias or table.name
        table.set("catalog", None)
        table.set("db", None)
        table.set("this", exp.to_identifier(read.view, quoted=True))
        table.set("alias", exp.TableAlias(this=exp.to_identifier(alias, quoted=True)))
    return Plan(tree.sql(dialect="duckdb"), reads)


def _predicates(table: exp.Table, spec: TableSpec) -> dict[str, list[Predicate]]:
    """Predicates on ``table``'s partition columns that every row the query reads from it must satisfy."""
    select = table.find_ancestor(exp.Select)
    where = select.args.get("where") if select else None
    if select is None or where is None:
        return {}
    sources = [t for t in select.find_all(exp.Table) if t.find_ancestor(exp.Select) is select]
    names = {table.alias_or_name.lower(), table.name.lower()}
    keys = {key.name for key in spec.partition_keys}
    found: dict[str, list[Predicate]] = {}

    def own_column(node: exp.Expr) -> str | None:
        if not isinstance(node, exp.Column) or node.name.lower() not in keys:
            return None
        qualifier = node.table.lower()
        return node.name.lower() if (qualifier in names or (not qualifier and len(sources) == 1)) else None

    for conjunct in where.this.flatten() if isinstance(where.this, exp.And) else [where.this]:
        conjunct = conjunct.unnest()
        if type(conjunct) in _COMPARISONS:
            op = _COMPARISONS[type(conjunct)]
            left, right = conjunct.this, conjunct.expression
            if own_column(right) and isinstance(left, exp.Literal):
                left, right, op = right, left, _FLIPPED[op]
            key = own_column(left)
            if key and isinstance(right, exp.Literal):
                found.setdefault(key, []).append(Predicate(op, (right.this,)))
        elif isinstance(conjunct, exp.In) and not conjunct.args.get("query"):
            key = own_column(conjunct.this)
            literals = conjunct.expressions
            if key and literals and all(isinstance(v, exp.Literal) for v in literals):
                found.setdefault(key, []).append(Predicate("in", tuple(v.this for v in literals)))
        elif isinstance(conjunct, exp.Between):
            key = own_column(conjunct.this)
            low, high = conjunct.args.get("low"), conjunct.args.get("high")
            if key and isinstance(low, exp.Literal) and isinstance(high, exp.Literal):
                found.setdefault(key, []).extend([Predicate(">=", (low.this,)), Predicate("<=", (high.this,))])
    return found


@dataclass
class Objects:
    """The S3 objects one table read covers: (key, size, partition values)."""

    bucket: str
    entries: list[tuple[str, int, dict[str, str]]]

    @property
    def scanned_bytes(self) -> int:
        return sum(size for _, size, _ in self.entries)


def objects(read: TableRead, list_objects: ListObjects) -> Objects:
    """The objects of the partitions the read covers, from one listing under their common prefix."""
    spec = read.spec
    if not spec.partition_keys:
        bucket, prefix = split_s3_uri(spec.location)
        return Objects(bucket, [(k, s, {}) for k, s in list_objects(bucket, prefix) if is_data_object(k, s)])
    if not spec.projected:
        bucket, prefix = split_s3_uri(spec.location)
        entries = []
        for key, size in list_objects(bucket, prefix):
            values = hive_values(spec, key.removeprefix(prefix))
            if values is not None and is_data_object(key, size) and _kept(read, values):
                entries.append((key, size, values))
        return Objects(bucket, entries)
    wanted = {partition_prefix(spec, values): values for values in partitions(spec, read.predicates)}
    if not wanted:
        return Objects(split_s3_uri(spec.location)[0], [])
    buckets = {split_s3_uri(prefix)[0] for prefix in wanted}
    if len(buckets) != 1:
        raise QueryError("NOT_SUPPORTED: a storage.location.template spanning buckets is not supported locally")
    bucket = buckets.pop()
    common = _common_folder([split_s3_uri(prefix)[1] for prefix in wanted])
    entries = []
    for key, size in list_objects(bucket, common):
        values = next((wanted[p] for p in _prefixes(bucket, key) if p in wanted), None)
        if values is not None and is_data_object(key, size):
            entries.append((key, size, values))
    return Objects(bucket, entries)


def _common_folder(keys: list[str]) -> str:
    """The longest ``a/b/`` every key starts with (partitions' prefixes end with ``/``)."""
    folders = [key.split("/")[:-1] for key in keys]
    common: list[str] = []
    for parts in zip(*folders, strict=False):
        if len(set(parts)) != 1:
            break
        common.append(parts[0])
    return "".join(part + "/" for part in common)


def _prefixes(bucket: str, key: str) -> Iterator[str]:
    for index, char in enumerate(key):
        if char == "/":
            yield f"s3://{bucket}/{key[: index + 1]}"


def _kept(read: TableRead, values: Mapping[str, str]) -> bool:
    return all(matches(key, values[key.name], read.predicates.get(key.name, ())) for key in read.spec.partition_keys)


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _cast(value: str, column: Column) -> str:
    return f"CAST({value} AS {duckdb_type(column.type)}) AS {_identifier(column.name)}"


def _reader(spec: TableSpec, files: list[str]) -> str:
    """DuckDB's table function reading ``files`` with the table's columns (plus the file name, to join partitions)."""
    paths = "[" + ", ".join(_literal(path) for path in files) + "]"
    columns = "{" + ", ".join(f"{_literal(c.name)}: {_literal(duckdb_type(c.type))}" for c in spec.columns) + "}"
    if spec.data_format == JSON:
        return f"read_json({paths}, format='newline_delimited', columns={columns}, filename='__driftloop_file')"
    if spec.data_format == CSV:
        params = spec.serde_parameters
        delimiter = params.get("separatorChar") or params.get("field.delim") or ","
        quote = params.get("quoteChar") or '"'
        return (
            f"read_csv({paths}, columns={columns}, delim={_literal(delimiter)}, quote={_literal(quote)}, "
            f"skip={spec.header_lines}, header=false, filename='__driftloop_file')"
        )
    return f"read_parquet({paths}, union_by_name=true, filename='__driftloop_file')"


def create_view(
    connection: duckdb.DuckDBPyConnection, read: TableRead, found: Objects, get_object: GetObject, work_dir: Path
) -> None:
    """A view named ``read.view`` with the table's columns then its partition keys, over the fetched objects."""
    spec = read.spec
    files, partition_rows = [], []
    for index, (key, _, values) in enumerate(found.entries):
        body = get_object(found.bucket, key)
        if body[:2] == b"\x1f\x8b":  # Athena reads gzip objects (by their .gz name) transparently
            body = gzip.decompress(body)
        path = work_dir / f"{read.view}-{index}"
        path.write_bytes(body)
        files.append(str(path))
        partition_rows.append((str(path), values))
    # Every name in the SQL below is quoted by _identifier, every value by _literal or passed as a parameter.
    data = [_cast(f"r.{_identifier(c.name)}", c) for c in spec.columns]
    keys = [_cast(f"p.{_identifier(k.name)}", k) for k in spec.partition_keys]
    if not files:
        nulls = [_cast("NULL", c) for c in (*spec.columns, *spec.partition_keys)]
        connection.execute(f"CREATE TEMP VIEW {_identifier(read.view)} AS SELECT {', '.join(nulls)} WHERE false")
        return
    partition_table = _identifier(read.view + "_partitions")
    key_columns = "".join(f", {_identifier(k.name)} VARCHAR" for k in spec.partition_keys)
    connection.execute(f"CREATE TEMP TABLE {partition_table} (__driftloop_file VARCHAR{key_columns})")
    connection.executemany(
        f"INSERT INTO {partition_table} VALUES ({', '.join('?' * (1 + len(spec.partition_keys)))})",  # noqa: S608
        [[path, *(values[k.name] for k in spec.partition_keys)] for path, values in partition_rows],
    )
    columns = ", ".join(data + keys)
    source = f"{_reader(spec, files)} AS r JOIN {partition_table} AS p USING (__driftloop_file)"
    connection.execute(f"CREATE TEMP VIEW {_identifier(read.view)} AS SELECT {columns} FROM {source}")  # noqa: S608


def connect() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that never downloads an extension (json and parquet are built into the wheel) and
    divides integers as Trino does (sqlglot leaves ``/`` alone: DuckDB's own would give 3.5 for 7 / 2)."""
    return duckdb.connect(
        config={
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "integer_division": True,
            "threads": 2,
        }
    )


@dataclass
class Result:
    column_info: list[dict[str, Any]]
    rows: list[list[str | None]]
    scanned_bytes: int


def run(
    sql: str,
    default_database: str | None,
    get_table: GetTable,
    list_objects: ListObjects,
    get_object: GetObject,
    connection: duckdb.DuckDBPyConnection,
) -> Result:
    """Plan, fetch and execute one query on ``connection`` (which :meth:`interrupt` cancels)."""
    query = plan(sql, default_database, get_table)
    scanned = 0
    with tempfile.TemporaryDirectory(prefix="athena-") as work_dir:
        for read in query.reads:
            found = objects(read, list_objects)
            scanned += found.scanned_bytes
            create_view(connection, read, found, get_object, Path(work_dir))
        try:
            relation = connection.sql(query.sql)
            names, types = relation.columns, [str(t) for t in relation.types]
            rows = [[text(value) for value in row] for row in relation.fetchall()]
        except duckdb.Error as exc:
            raise QueryError(f"{type(exc).__name__}: {exc}") from exc
    return Result([column_info(n, t) for n, t in zip(names, types, strict=True)], rows, scanned)
