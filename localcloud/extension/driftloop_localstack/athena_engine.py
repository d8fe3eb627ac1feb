"""Athena SQL run by DuckDB: sqlglot translates the dialect, the Glue catalog and S3 objects supply the tables.

Two statements run: ``SELECT`` (rows back) and ``UNLOAD (<select>) TO 's3://...' WITH (...)`` (the rows written
to S3 as Athena writes them: see :func:`unload_statement` and :func:`run`). sqlglot has no grammar for UNLOAD (it
falls back to an opaque command), so :func:`unload_statement` splits it with sqlglot's own tokenizer: the SELECT
between the balanced parentheses, the TO string literal and the WITH property list.

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
import secrets
import string
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import sqlglot
from sqlglot import exp
from sqlglot.tokenizer_core import Token, TokenType

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
PutObject = Callable[[str, str, bytes], None]
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
    "NOT_SUPPORTED: the local Athena runs SELECT and UNLOAD queries only (CREATE TABLE AS, INSERT and DDL are not "
    "supported locally: write with UNLOAD, create tables with Glue's CreateTable)"
)
SELECT, UNLOAD = "SELECT", "UNLOAD"  # Athena's SubstatementType of the two statements


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


# -- UNLOAD ----------------------------------------------------------------------------------------------------

# Athena's UNLOAD formats -> DuckDB's COPY format, and each one's compressions (the first is Athena's default).
# ORC and AVRO: DuckDB writes neither.
_UNLOAD_FORMATS: Mapping[str, tuple[str, tuple[str, ...]]] = {
    "PARQUET": ("parquet", ("gzip", "snappy", "zstd")),
    "JSON": ("json", ("gzip",)),
    "TEXTFILE": ("csv", ("gzip",)),
}
_UNLOAD_PROPERTIES = ("format", "compression", "field_delimiter", "partitioned_by")
HIVE_DEFAULT_DELIMITER = "\x01"


@dataclass(frozen=True)
class Unload:
    """``UNLOAD (<select>) TO '<target>' WITH (...)``, checked against what Athena accepts."""

    select: str
    target: str  # s3://bucket/prefix/
    format: str  # PARQUET, JSON or TEXTFILE
    compression: str  # gzip, snappy, zstd
    field_delimiter: str
    partitioned_by: tuple[str, ...] = ()


def _tokens(sql: str) -> list[Token]:
    try:
        return list(sqlglot.Dialect.get_or_raise("athena").tokenize(sql))
    except sqlglot.errors.TokenError as exc:
        raise QueryError(f"SYNTAX_ERROR: {exc}") from exc


def substatement(sql: str) -> str:
    """Athena's SubstatementType of a query text: UNLOAD or SELECT (what the rest fails as, later)."""
    try:
        first = _tokens(sql)[:1]
    except QueryError:
        return SELECT
    return UNLOAD if first and first[0].text.upper() == UNLOAD else SELECT


def unload_statement(sql: str) -> Unload | None:
    """The UNLOAD statement ``sql`` is, None for any other statement; raises :class:`QueryError` as Athena fails
    a malformed one."""
    head = _tokens(sql)
    if not head or head[0].text.upper() != UNLOAD:
        return None
    rest = sql[head[0].end + 1 :]  # the athena tokenizer reads UNLOAD as a command: the rest as one string
    tokens = _tokens(rest)
    position = 0

    def syntax(expected: str) -> QueryError:
        found = repr(tokens[position].text) if position < len(tokens) else "end of input"
        return QueryError(f"SYNTAX_ERROR: UNLOAD: expected {expected}, found {found}")

    def take(expected: str, *types: TokenType, text: str | None = None) -> Token:
        nonlocal position
        if position >= len(tokens):
            raise syntax(expected)
        token = tokens[position]
        if (types and token.token_type not in types) or (text and token.text.upper() != text):
            raise syntax(expected)
        position += 1
        return token

    opening = take("'(' before the SELECT", TokenType.L_PAREN)
    depth = 1
    while depth:
        token = take("')' closing the SELECT")
        depth += {TokenType.L_PAREN: 1, TokenType.R_PAREN: -1}.get(token.token_type, 0)
    select = rest[opening.end + 1 : tokens[position - 1].start].strip()
    take("TO", text="TO")
    target = take("the target as a string literal", TokenType.STRING).text
    take("WITH", TokenType.WITH)
    take("'(' opening the properties", TokenType.L_PAREN)
    properties: dict[str, str | tuple[str, ...]] = {}
    while True:
        name = take("a property name").text.lower()
        take("'='", TokenType.EQ)
        if position < len(tokens) and tokens[position].token_type == TokenType.ARRAY:
            position += 1
            take("'['", TokenType.L_BRACKET)
            values = [take("a string literal", TokenType.STRING).text]
            while take("',' or ']'", TokenType.COMMA, TokenType.R_BRACKET).token_type == TokenType.COMMA:
                values.append(take("a string literal", TokenType.STRING).text)
            properties[name] = tuple(values)
        else:
            properties[name] = take("a string literal", TokenType.STRING).text
        if take("',' or ')'", TokenType.COMMA, TokenType.R_PAREN).token_type == TokenType.R_PAREN:
            break
    while position < len(tokens) and tokens[position].token_type == TokenType.SEMICOLON:
        position += 1
    if position < len(tokens):
        raise syntax("the end of the statement")
    return _checked_unload(select, target, properties)


def _checked_unload(select: str, target: str, properties: Mapping[str, str | tuple[str, ...]]) -> Unload:
    unknown = sorted(set(properties) - set(_UNLOAD_PROPERTIES))
    if unknown:
        raise QueryError(f"INVALID_TABLE_PROPERTY: UNLOAD has no property {unknown[0]!r}")
    text = {name: value for name, value in properties.items() if isinstance(value, str)}
    arrays = {name for name, value in properties.items() if not isinstance(value, str)}
    if arrays - {"partitioned_by"} or "partitioned_by" in text:
        raise QueryError("INVALID_TABLE_PROPERTY: partitioned_by takes ARRAY['column', ...], the others a string")
    if not target.startswith("s3://") or not target.removeprefix("s3://").split("/", 1)[0]:
        raise QueryError(f"INVALID_TABLE_PROPERTY: UNLOAD's target must be an s3://bucket/prefix/ URI, not {target!r}")
    if "format" not in text:
        raise QueryError("INVALID_TABLE_PROPERTY: UNLOAD requires the format property")
    kind = text["format"].upper()
    if kind in ("ORC", "AVRO"):
        raise QueryError(f"NOT_SUPPORTED: UNLOAD to {kind} is not supported locally (PARQUET, JSON, TEXTFILE are)")
    if kind not in _UNLOAD_FORMATS:
        raise QueryError(
            f"INVALID_TABLE_PROPERTY: UNLOAD format {text['format']!r} is not one of ORC, PARQUET, AVRO, JSON, TEXTFILE"
        )
    compressions = _UNLOAD_FORMATS[kind][1]
    compression = text.get("compression", compressions[0]).lower()
    if compression not in compressions:
        raise QueryError(
            f"NOT_SUPPORTED: UNLOAD compression {compression!r} for {kind} is not supported locally "
            f"({', '.join(compressions)} {'is' if len(compressions) == 1 else 'are'})"
        )
    delimiter = text.get("field_delimiter", HIVE_DEFAULT_DELIMITER)
    if len(delimiter) != 1:
        raise QueryError(f"INVALID_TABLE_PROPERTY: field_delimiter must be one character, not {delimiter!r}")
    partitioned = properties.get("partitioned_by", ())
    return Unload(
        select=select,
        target=target if target.endswith("/") else target + "/",
        format=kind,
        compression=compression,
        field_delimiter=delimiter,
        partitioned_by=tuple(str(column) for column in partitioned),
    )


def _file_stem(now: datetime) -> str:
    """A Trino query id (``20261207_041500_00001_ab3cd``): the start of the names Athena gives UNLOAD's files."""
    alphabet = string.ascii_lowercase + string.digits
    suffix = "".join(secrets.choice(alphabet) for _ in range(5))
    return f"{now:%Y%m%d_%H%M%S}_{secrets.randbelow(100000):05d}_{suffix}"


def _copy_options(unload: Unload) -> str:
    """DuckDB's COPY options writing what Athena writes (TEXTFILE: Hive's LazySimpleSerDe text, ``\\N`` for NULL,
    nothing quoted; JSON: one object per line)."""
    options = [f"FORMAT {_UNLOAD_FORMATS[unload.format][0]}", f"COMPRESSION {unload.compression}"]
    if unload.format == "TEXTFILE":
        delimiter = _literal(unload.field_delimiter)
        options += [f"DELIMITER {delimiter}", "HEADER false", "QUOTE ''", "ESCAPE ''", "NULLSTR '\\N'"]
    if unload.partitioned_by:
        options.append(f"PARTITION_BY ({', '.join(_identifier(column) for column in unload.partitioned_by)})")
    return ", ".join(options)


def _write_unload(
    connection: duckdb.DuckDBPyConnection, sql: str, unload: Unload, work_dir: Path, put_object: PutObject
) -> tuple[list[str], int]:
    """Runs the SELECT into files under ``work_dir`` and puts them under the target; (their URIs, rows)."""
    columns = [name.lower() for name in connection.sql(sql).columns]
    wanted = [column.lower() for column in unload.partitioned_by]
    if wanted and columns[len(columns) - len(wanted) :] != wanted:
        raise QueryError(
            f"INVALID_TABLE_PROPERTY: partitioned_by columns {list(unload.partitioned_by)} must be the last "
            f"columns of the SELECT, which are {columns}"
        )
    if wanted and len(wanted) == len(columns):
        raise QueryError("INVALID_TABLE_PROPERTY: UNLOAD cannot partition by every column of the SELECT")
    out = work_dir / "unload"
    destination = out if wanted else out / "data"
    out.mkdir()
    written = connection.execute(f"COPY ({sql}) TO {_literal(str(destination))} ({_copy_options(unload)})")
    counted = written.fetchone()
    rows = int(counted[0]) if counted else 0
    bucket, prefix = split_s3_uri(unload.target)
    stem, uris = _file_stem(datetime.now(UTC)), []
    gz = ".gz" if unload.format != "PARQUET" else ""  # Athena names compressed text files *.gz, Parquet bare
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        folder = path.parent.relative_to(out).as_posix()
        key = prefix + ("" if folder == "." else folder + "/") + f"{stem}_{uuid.uuid4()}{gz}"
        put_object(bucket, key, path.read_bytes())
        uris.append(f"s3://{bucket}/{key}")
    return uris, rows


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
    """The DuckDB SQL of a SELECT and the catalog tables it reads."""
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
    written: list[str] = field(default_factory=list)  # UNLOAD: the s3:// URIs of the files, for the manifest
    update_count: int = 0  # UNLOAD: the rows written


def run(
    sql: str,
    default_database: str | None,
    get_table: GetTable,
    list_objects: ListObjects,
    get_object: GetObject,
    put_object: PutObject,
    connection: duckdb.DuckDBPyConnection,
) -> Result:
    """Plan, fetch and execute one query on ``connection`` (which :meth:`interrupt` cancels).

    An UNLOAD writes its files with ``put_object`` under its target, which must hold no object unless the UNLOAD
    writes partitions (Athena's rule: it never overwrites).
    """
    unload = unload_statement(sql)
    query = plan(unload.select if unload else sql, default_database, get_table)
    if unload and not unload.partitioned_by and list_objects(*split_s3_uri(unload.target)):
        raise QueryError(
            f"HIVE_PATH_ALREADY_EXISTS: Target directory for UNLOAD already exists: {unload.target}. UNLOAD never "
            "overwrites: delete the data at that location (or choose another) before retrying."
        )
    scanned = 0
    with tempfile.TemporaryDirectory(prefix="athena-") as work_dir:
        for read in query.reads:
            found = objects(read, list_objects)
            scanned += found.scanned_bytes
            create_view(connection, read, found, get_object, Path(work_dir))
        try:
            if unload:
                written, count = _write_unload(connection, query.sql, unload, Path(work_dir), put_object)
                return Result([], [], scanned, written, count)
            relation = connection.sql(query.sql)
            names, types = relation.columns, [str(t) for t in relation.types]
            rows = [[text(value) for value in row] for row in relation.fetchall()]
        except duckdb.Error as exc:
            raise QueryError(f"{type(exc).__name__}: {exc}") from exc
    return Result([column_info(n, t) for n, t in zip(names, types, strict=True)], rows, scanned)
