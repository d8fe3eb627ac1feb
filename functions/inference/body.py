"""Request bodies as JSON: strict decoding, the explanation of refused numbers, and JSON type names for errors.

orjson decodes every body. It refuses NaN, Infinity and numbers beyond the float range, which a client may well
send by mistake; for those the standard library's lenient parser reads the body again so that validation can name
the instance and field in a 422. orjson also refuses lone UTF-16 surrogates (``"\\ud800"``): those are not text,
so they stay a 400 like any other malformed body, and are never echoed back in an error.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson

from functions.inference.errors import MalformedJson

_JSON_TYPES = {str: "string", int: "number", float: "number", bool: "boolean", dict: "object", list: "array"}


def decode(body: bytes, explain: Callable[[Any], object]) -> Any:
    """The body's JSON value; else ``explain`` may raise a precise error from a lenient reading, or MalformedJson.

    ``explain`` only ever explains an error: whatever it returns, an invalid body ends in MalformedJson.
    """
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        error = f"the body is not valid JSON: {exc}"
    try:
        lenient = json.loads(body.decode(), parse_constant=float)
        # Encoding text as UTF-8 fails only on lone surrogates, which the standard parser lets through.
        json.dumps(lenient, ensure_ascii=False).encode()
    except (ValueError, RecursionError):  # UnicodeError is a ValueError
        pass
    else:
        explain(lenient)
    raise MalformedJson(error)


def json_type(value: Any) -> str:
    """The JSON type name of a decoded value, for error messages."""
    if value is None:
        return "null"
    return _JSON_TYPES.get(type(value), type(value).__name__)
