"""Quoting: every name and value from users' data round-trips through Athena SQL translated for DuckDB (the local
cloud's engine): the column or JSON member is found, and nothing else runs."""

from __future__ import annotations

import json
import math

import duckdb
import pytest
import sqlglot

from functions.common.sql import UnsafeText, identifier, json_path, literal, number

NAMES = [
    "plain",
    "it's",
    'say "hi"',
    "back`tick",
    "semi;colon; DROP TABLE captures; --",
    "a.b",
    "x[0]",
    'a"]',
    "$",
    "*",
    "back\\slash",
    "new\nline",
    "ünïcødé 名前",
    "select",
    "from",
    "NULL",
    "' OR '1'='1",
    '") OR ("1"="1',
]


def run(athena_sql: str) -> list[tuple[object, ...]]:
    """Athena SQL as the local cloud runs it: translated by sqlglot, executed by DuckDB (exactly one statement)."""
    [statement] = sqlglot.transpile(athena_sql, read="athena", write="duckdb")
    relation = duckdb.sql(statement)
    assert relation is not None
    return relation.fetchall()


@pytest.mark.parametrize("name", NAMES)
def test_an_identifier_names_exactly_its_column(name: str) -> None:
    rows = run(f"SELECT {identifier(name)} FROM (SELECT 42 AS {identifier(name)}, 0 AS {identifier(name + 'x')})")
    assert rows == [(42,)]


@pytest.mark.parametrize("name", NAMES)
def test_a_literal_is_exactly_its_value(name: str) -> None:
    assert run(f"SELECT {literal(name)}") == [(name,)]


@pytest.mark.parametrize("name", NAMES)
def test_a_json_path_selects_exactly_its_member(name: str) -> None:
    document = json.dumps({name: 42, name + "x": 1, "a": {"b": 2}}, ensure_ascii=False)
    assert run(f"SELECT json_extract_scalar({literal(document)}, {json_path(name)})") == [("42",)]


def test_a_number_is_a_double_literal_of_exactly_its_value() -> None:
    for value in (0.1, 0.30000000000000004, -3, 1e-5, 1e20, 5e-324, 1.7976931348623157e308):
        [(found,)] = run(f"SELECT {number(value)}")
        assert isinstance(found, float)
        assert found == value


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, True])
def test_a_number_that_is_not_finite_is_refused(value: float) -> None:
    with pytest.raises(UnsafeText):
        number(value)


def test_text_with_a_nul_character_or_an_empty_name_is_refused() -> None:
    for quote in (identifier, literal, json_path):
        with pytest.raises(UnsafeText):
            quote("a\x00b")
    with pytest.raises(UnsafeText):
        identifier("")
