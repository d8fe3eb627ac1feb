"""Quoting for the Athena SQL the loop generates: the one place a name or a value becomes SQL text.

Feature names, model versions, prefixes and callers come from users' data and API callers; every one that enters a
query goes through :func:`identifier`, :func:`literal` or :func:`json_path`, never through an f-string of its own.
The quoted forms are the subset Athena (Trino) and the local cloud's DuckDB read alike.
"""

from __future__ import annotations

import math


class UnsafeText(ValueError):
    """A name or value that no quoting makes safe (a NUL character: Athena and DuckDB would cut the text there)."""


def _checked(text: str, what: str) -> str:
    if not isinstance(text, str):
        raise UnsafeText(f"a SQL {what} is text, got {type(text).__name__}")
    if "\x00" in text:
        raise UnsafeText(f"a SQL {what} cannot hold a NUL character: {text!r}")
    return text


def identifier(name: str) -> str:
    """A column, table or alias name as a delimited identifier: ``"name"``, inner double quotes doubled."""
    if not _checked(name, "identifier"):
        raise UnsafeText("a SQL identifier cannot be empty")
    return '"' + name.replace('"', '""') + '"'


def literal(value: str) -> str:
    """A string value as a SQL string literal: ``'value'``, inner single quotes doubled (no backslash escapes in
    either dialect)."""
    return "'" + _checked(value, "string literal").replace("'", "''") + "'"


def number(value: float) -> str:
    """A finite number as a DOUBLE literal in scientific notation (``0.25E0``): a plain ``0.25`` would be a
    DECIMAL in Athena and DuckDB, compared with a DOUBLE column after a cast of their own."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise UnsafeText(f"a SQL number is finite, got {value!r}")
    text = repr(float(value))
    return text if "e" in text else text + "E0"


def json_path(key: str) -> str:
    """The JSON path literal selecting member ``key`` of an object, for ``json_extract_scalar(column, <path>)``:
    ``'$["key"]'``, with only ``"`` and ``\\`` escaped by a backslash (so quotes, dots and brackets stay part of the
    name). Not ``json.dumps``: the local cloud's DuckDB does not read ``\\n`` or ``\\u`` escapes in a path, so a
    key with a newline or non-ASCII text is written as it is."""
    escaped = _checked(key, "JSON member name").replace("\\", "\\\\").replace('"', '\\"')
    return literal(f'$["{escaped}"]')
