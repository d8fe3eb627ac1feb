"""The pure parts of the local Athena: a Glue table's storage, partition projection, and Athena's result files.

Standard library only, so that the project's unit tests import it directly. The engine (DuckDB, sqlglot) is in
:mod:`driftloop_localstack.athena_engine`, the LocalStack provider in :mod:`driftloop_localstack.athena`.

Partition projection follows Athena's documented table properties: ``projection.enabled``,
``projection.<key>.type`` (``enum``, ``integer``, ``date``, ``injected``) with ``values``, ``range``, ``interval``,
``digits``, ``format``, ``interval.unit``, and ``storage.location.template`` (``${key}`` placeholders; default
Hive-style ``<location><key>=<value>/``).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

JSON, CSV, PARQUET = "json", "csv", "parquet"
# The comparison operators a predicate on a partition column may use to prune (others read every partition).
OPERATORS = ("=", "in", "<", "<=", ">", ">=")


class QueryError(Exception):
    """A query Athena would fail: ``str(exc)`` is the StateChangeReason, prefixed with Athena's error name."""


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # Glue (Hive) type, e.g. "string", "bigint", "decimal(10,2)"


@dataclass(frozen=True)
class Predicate:
    """``<partition column> <op> <value(s)>`` from a query's WHERE clause (values as the SQL literal's text)."""

    op: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class TableSpec:
    database: str
    name: str
    location: str
    columns: tuple[Column, ...]
    partition_keys: tuple[Column, ...]
    data_format: str
    serde_parameters: Mapping[str, str] = field(default_factory=dict)
    parameters: Mapping[str, str] = field(default_factory=dict)

    @property
    def projected(self) -> bool:
        return str(self.parameters.get("projection.enabled", "")).lower() == "true"

    @property
    def header_lines(self) -> int:
        return int(self.parameters.get("skip.header.line.count") or 0)


def table_spec(table: Mapping[str, Any]) -> TableSpec:
    """A Glue ``GetTable`` ``Table`` as the engine needs it; refuses what the local Athena cannot read."""
    name = f"{table.get('DatabaseName')}.{table.get('Name')}"
    storage = table.get("StorageDescriptor") or {}
    location = str(storage.get("Location") or "")
    if not location.startswith("s3://"):
        raise QueryError(f"HIVE_METASTORE_ERROR: table {name} has no s3:// location")
    serde = storage.get("SerdeInfo") or {}
    return TableSpec(
        database=str(table.get("DatabaseName")),
        name=str(table.get("Name")),
        location=location if location.endswith("/") else location + "/",
        columns=tuple(Column(c["Name"].lower(), c["Type"].lower()) for c in storage.get("Columns") or []),
        partition_keys=tuple(Column(c["Name"].lower(), c["Type"].lower()) for c in table.get("PartitionKeys") or []),
        data_format=_data_format(name, serde, storage),
        serde_parameters=dict(serde.get("Parameters") or {}),
        parameters=dict(table.get("Parameters") or {}),
    )


def _data_format(name: str, serde: Mapping[str, Any], storage: Mapping[str, Any]) -> str:
    library = str(serde.get("SerializationLibrary") or "").lower()
    input_format = str(storage.get("InputFormat") or "").lower()
    if "json" in library:
        return JSON
    if "parquet" in library or "parquet" in input_format:
        return PARQUET
    if "csv" in library or "lazysimpleserde" in library:
        return CSV
    raise QueryError(f"HIVE_UNSUPPORTED_FORMAT: table {name}: SerDe {library or '(none)'} is not supported locally")


def split_s3_uri(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


# -- partition projection ------------------------------------------------------------------------------------

_JAVA_DATE = (("yyyy", "%Y"), ("MM", "%m"), ("dd", "%d"), ("HH", "%H"), ("mm", "%M"), ("ss", "%S"))
_UNITS = {
    "YEARS": "yyyy",
    "MONTHS": "MM",
    "WEEKS": "dd",
    "DAYS": "dd",
    "HOURS": "HH",
    "MINUTES": "mm",
    "SECONDS": "ss",
}
_RELATIVE = re.compile(r"^NOW\s*(?:([+-])\s*(\d+)\s*(YEARS?|MONTHS?|WEEKS?|DAYS?|HOURS?|MINUTES?|SECONDS?))?$", re.I)


def _strftime(java_format: str) -> str:
    out = java_format
    for java, python in _JAVA_DATE:
        out = out.replace(java, python)
    return out


def _shift(moment: datetime, amount: int, unit: str) -> datetime:
    unit = unit.upper().rstrip("S") + "S"
    if unit in ("YEARS", "MONTHS"):
        months = moment.year * 12 + moment.month - 1 + amount * (12 if unit == "YEARS" else 1)
        return moment.replace(year=months // 12, month=months % 12 + 1)
    seconds = {"WEEKS": 604800, "DAYS": 86400, "HOURS": 3600, "MINUTES": 60, "SECONDS": 1}[unit]
    return moment + timedelta(seconds=amount * seconds)


def _date_bound(text: str, python_format: str, now: datetime) -> datetime:
    relative = _RELATIVE.match(text.strip())
    if relative:
        sign, amount, unit = relative.groups()
        return _shift(now, (-1 if sign == "-" else 1) * int(amount), unit) if unit else now
    return datetime.strptime(text.strip(), python_format).replace(tzinfo=UTC)


def projected_values(spec: TableSpec, key: Column, now: datetime) -> list[str] | None:
    """Every value partition projection gives ``key`` (None for ``injected``: the query must name them)."""
    prefix = f"projection.{key.name}."
    kind = str(spec.parameters.get(prefix + "type") or "").lower()
    setting = spec.parameters.get
    if kind == "injected":
        return None
    if kind == "enum":
        return [value.strip() for value in str(setting(prefix + "values") or "").split(",") if value.strip()]
    if kind == "integer":
        first, last = (int(bound) for bound in str(setting(prefix + "range")).split(","))
        step = int(setting(prefix + "interval") or 1)
        digits = int(setting(prefix + "digits") or 0)
        return [str(value).zfill(digits) for value in range(first, last + 1, step)]
    if kind == "date":
        java = str(setting(prefix + "format") or "")
        python = _strftime(java)
        low, high = (_date_bound(bound, python, now) for bound in str(setting(prefix + "range")).split(","))
        unit = str(setting(prefix + "interval.unit") or "").upper() or next(
            (unit for unit, token in reversed(_UNITS.items()) if token in java), "DAYS"
        )
        step = int(setting(prefix + "interval") or 1)
        values, moment = [], low
        while moment <= high:
            values.append(moment.strftime(python))
            moment = _shift(moment, step, unit)
        return values
    raise QueryError(f"HIVE_METASTORE_ERROR: table {spec.database}.{spec.name}: {prefix}type {kind!r} is not known")


def _typed(key: Column, value: str) -> Any:
    return int(value) if key.type in ("int", "integer", "bigint", "smallint", "tinyint") else value


def matches(key: Column, value: str, predicates: Iterable[Predicate]) -> bool:
    """Whether a partition value satisfies every predicate (integers compare as numbers, the rest as text)."""
    own = _typed(key, value)
    for predicate in predicates:
        others = [_typed(key, literal) for literal in predicate.values]
        if predicate.op in ("=", "in"):
            if own not in others:
                return False
        elif not {"<": own < others[0], "<=": own <= others[0], ">": own > others[0], ">=": own >= others[0]}[
            predicate.op
        ]:
            return False
    return True


def partitions(
    spec: TableSpec, predicates: Mapping[str, Sequence[Predicate]], now: datetime | None = None
) -> list[dict[str, str]]:
    """The projected partitions (key -> value) a query with these predicates reads, pruned."""
    now = now or datetime.now(UTC)
    choices = []
    for key in spec.partition_keys:
        own = predicates.get(key.name, ())
        values = projected_values(spec, key, now)
        if values is None:
            static = [p for p in own if p.op in ("=", "in")]
            if not static:
                raise QueryError(
                    f"CONSTRAINT_VIOLATION: For the injected projected partition column {key.name}, the WHERE "
                    "clause must contain only static equality conditions, and at least one such condition must "
                    "be present."
                )
            values = sorted(set(static[0].values))
        choices.append([value for value in values if matches(key, value, own)])
    names = [key.name for key in spec.partition_keys]
    return [dict(zip(names, combination, strict=True)) for combination in itertools.product(*choices)]


def partition_prefix(spec: TableSpec, values: Mapping[str, str]) -> str:
    """The s3:// prefix of one partition: the storage location template, or Hive-style under the location."""
    template = spec.parameters.get("storage.location.template")
    if not template:
        return spec.location + "".join(f"{key.name}={values[key.name]}/" for key in spec.partition_keys)
    prefix = re.sub(r"\$\{([^}]+)\}", lambda m: values[m.group(1).lower()], template)
    return prefix if prefix.endswith("/") else prefix + "/"


def hive_values(spec: TableSpec, key: str) -> dict[str, str] | None:
    """Partition values from a Hive-style object key under the location (tables without projection)."""
    found = dict(part.split("=", 1) for part in key.split("/")[:-1] if "=" in part)
    names = [k.name for k in spec.partition_keys]
    if not all(name in found for name in names):
        return None
    return {name: found[name] for name in names}


def is_data_object(key: str, size: int) -> bool:
    """Athena skips "folders", empty objects and files whose name starts with ``_`` or ``.``."""
    name = key.rsplit("/", 1)[-1]
    return bool(name) and size > 0 and not name.startswith(("_", "."))


# -- results -------------------------------------------------------------------------------------------------


def csv_field(value: str | None) -> str:
    """Athena's result CSV: every value double-quoted (quotes doubled), NULL as an empty unquoted field."""
    return "" if value is None else '"' + value.replace('"', '""') + '"'


def result_csv(columns: Sequence[str], rows: Iterable[Sequence[str | None]]) -> str:
    lines = [",".join(csv_field(name) for name in columns)]
    lines += [",".join(csv_field(value) for value in row) for row in rows]
    return "\n".join(lines) + "\n"


def result_metadata(column_info: Sequence[Mapping[str, Any]]) -> str:
    """The ``.csv.metadata`` beside the results: here the ResultSetMetadata as JSON (Athena's is binary)."""
    return json.dumps({"ColumnInfo": list(column_info)}, indent=1)


def column_info(name: str, duckdb_type: str) -> dict[str, Any]:
    """Athena's ColumnInfo for a result column of DuckDB type ``duckdb_type`` (e.g. ``DECIMAL(18,3)``)."""
    upper = duckdb_type.upper()
    info: dict[str, Any] = {
        "CatalogName": "hive",
        "SchemaName": "",
        "TableName": "",
        "Name": name,
        "Label": name,
        "Nullable": "UNKNOWN",
        "CaseSensitive": False,
        "Precision": 0,
        "Scale": 0,
    }
    decimal = re.match(r"DECIMAL\((\d+),\s*(\d+)\)", upper)
    if decimal:
        info.update(Type="decimal", Precision=int(decimal.group(1)), Scale=int(decimal.group(2)))
    elif upper.endswith("[]") or upper.startswith("LIST"):
        info["Type"] = "array"
    elif upper.startswith("MAP"):
        info["Type"] = "map"
    elif upper.startswith("STRUCT"):
        info["Type"] = "row"
    else:
        info["Type"] = {
            "BIGINT": "bigint",
            "HUGEINT": "decimal",
            "INTEGER": "integer",
            "SMALLINT": "smallint",
            "TINYINT": "tinyint",
            "DOUBLE": "double",
            "FLOAT": "float",
            "BOOLEAN": "boolean",
            "DATE": "date",
            "TIMESTAMP": "timestamp",
            "TIMESTAMP WITH TIME ZONE": "timestamp with time zone",
            "BLOB": "varbinary",
            "JSON": "json",
        }.get(upper, "varchar")
        info["CaseSensitive"] = info["Type"] == "varchar"
    return info


def text(value: Any) -> str | None:
    """A result value as Athena prints it."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="milliseconds")
    return str(value)


# Glue (Hive) column types -> DuckDB; complex types are read as their JSON text (see the README's differences).
_DUCKDB_TYPES = {
    "string": "VARCHAR",
    "int": "INTEGER",
    "integer": "INTEGER",
    "bigint": "BIGINT",
    "smallint": "SMALLINT",
    "tinyint": "TINYINT",
    "double": "DOUBLE",
    "float": "FLOAT",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
    "binary": "BLOB",
}


def duckdb_type(glue_type: str) -> str:
    if glue_type.startswith("decimal"):
        return glue_type.upper()
    return _DUCKDB_TYPES.get(glue_type.split("(")[0], "VARCHAR")
