"""Request bodies as JSON: strict decoding, no ambiguous keys, the explanation of refused numbers and bytes, and
JSON type names for errors.

orjson decodes every body. It refuses NaN, Infinity and numbers beyond the float range, which a client may well
send by mistake; for those the standard library's lenient parser reads the body again so that validation can name
the instance and field in a 422 (a number beyond the float range reads as :data:`OUT_OF_RANGE`, not as Infinity).
orjson also refuses lone UTF-16 surrogates (``"\\ud800"``): those are not text, so they stay a 400 like any other
malformed body, and are never echoed back in an error; so does a byte that is not UTF-8, named by its offset.

orjson lets the last of repeated keys win (``{"instances": [row], "instances": []}``), so a body could mean two
things: every repeated key is refused with a 422 naming it and its object. Finding them takes a second, slower
parse; a cheap count rules them out first for nearly every body (:func:`_surely_unique`).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson

from functions.inference.errors import MalformedJson, Problem, ValidationFailed


class _OutOfRange:
    """The value a JSON number beyond the 64-bit float range reads as in the lenient reading (``1e400``)."""

    __slots__ = ()


OUT_OF_RANGE: Any = _OutOfRange()
OUT_OF_RANGE_PROBLEM = "out of range: the number is beyond a 64-bit float (magnitude at most 1.8e308)"
_JSON_TYPES = {
    str: "string",
    int: "number",
    float: "number",
    _OutOfRange: "number",
    bool: "boolean",
    dict: "object",
    list: "array",
}


def decode(body: bytes, explain: Callable[[Any], object], collection: str) -> Any:
    """The body's JSON value; else ``explain`` may raise a precise error from a lenient reading, or MalformedJson.

    ``explain`` only ever explains an error: whatever it returns, an invalid body ends in MalformedJson. A body
    that repeats a key is a ValidationFailed; ``collection`` is the array whose items the problems' ``instance``
    indexes.
    """
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        error = f"the body is not valid JSON: {exc}"
    else:
        if not _surely_unique(value, body):
            try:
                _refuse_repeats(*_read(body, lenient=False), collection)
            except RecursionError:  # orjson reads deeper nesting than the standard parser
                raise MalformedJson("the body nests too deeply to be read") from None
        return value
    try:
        text = body.decode()
    except UnicodeDecodeError as exc:
        raise MalformedJson(f"the body is not valid UTF-8: {exc.reason} at byte offset {exc.start}") from None
    try:
        lenient, repeated = _read(text, lenient=True)
        # Encoding text as UTF-8 fails only on lone surrogates, which the standard parser lets through.
        json.dumps(lenient, ensure_ascii=False, default=lambda _: None).encode()
    except (ValueError, RecursionError):  # UnicodeError is a ValueError
        pass
    else:
        _refuse_repeats(lenient, repeated, collection)
        explain(lenient)
    raise MalformedJson(error)


def json_type(value: Any) -> str:
    """The JSON type name of a decoded value, for error messages."""
    if value is None:
        return "null"
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _surely_unique(value: Any, body: bytes) -> bool:
    """True when the text cannot repeat a key; False when it may (then only the slow parse can tell).

    Every member of an object in the text has its own ``:`` outside strings, and each parsed key stands for at least
    one member. First, at C speed: the keys of the top object and of the objects directly in its values (the
    instances, the feedback items) are at most the members, which are at most the body's colons; when they equal
    the colons, no key can be repeated. Colons inside strings or deeper objects defeat that count; then the parsed
    value written back by orjson has one colon per parsed key plus each colon of a parsed string, all as raw bytes.
    When the body escapes no colon (``\\u003a``), its strings' colons are raw too, and a dropped repeat would only
    add colons to the body: equal counts again rule repeats out.
    """
    colons = body.count(b":")
    if type(value) is dict and _shallow_keys(value) == colons:
        return True
    if b"\\u003" in body:
        return False
    try:
        return orjson.dumps(value).count(b":") == colons
    except orjson.JSONEncodeError:  # nested deeper than orjson writes, though not than it reads
        return False


def _shallow_keys(value: dict[str, Any]) -> int:
    """The keys of ``value`` and of the objects that are its values or items of its arrays' values."""
    keys = len(value)
    for member in value.values():
        if type(member) is dict:
            keys += len(member)
        elif type(member) is list and member:
            if set(map(type, member)) == {dict}:
                keys += sum(map(len, member))
            else:
                keys += sum(len(item) for item in member if type(item) is dict)
    return keys


# The objects that repeat a key, by id, each with how often each of its keys was given.
_Repeated = dict[int, tuple[dict[str, Any], Counter[str]]]


def _read(text: str | bytes, *, lenient: bool) -> tuple[Any, _Repeated]:
    """The standard parser's reading of ``text`` and the objects in it that repeat a key.

    ``lenient``: NaN and Infinity read as floats, a number beyond the float range as :data:`OUT_OF_RANGE`.
    """
    repeated: _Repeated = {}

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if len(obj) < len(pairs):
            # Holding the object keeps its id from being reused by a later one, should a repeat drop it.
            repeated[id(obj)] = (obj, Counter(key for key, _ in pairs))
        return obj

    if lenient:
        return json.loads(text, object_pairs_hook=unique, parse_constant=float, parse_float=_lenient_float), repeated
    return json.loads(text, object_pairs_hook=unique), repeated


def _lenient_float(text: str) -> Any:
    number = float(text)
    return number if number - number == 0 else OUT_OF_RANGE  # inf - inf is NaN


def _refuse_repeats(value: Any, repeated: _Repeated, collection: str) -> None:
    """ValidationFailed with a Problem per repeated key, in document order (``instance``: the item of
    ``collection`` it is in, if any, and the problem names its object by JSON Pointer)."""
    if not repeated:
        return
    problems = []
    pending: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while pending:
        node, path = pending.pop()
        if type(node) is dict:
            if id(node) in repeated:
                item = path[1] if len(path) > 1 and path[0] == collection else None
                instance = item if type(item) is int else None
                where = "".join("/" + str(step).replace("~", "~0").replace("/", "~1") for step in path)
                place = f"in the object at {where}" if path else "at the top level"
                for key, count in repeated[id(node)][1].items():
                    if count > 1:
                        problems.append(Problem(instance, key, f"repeated key: given {count} times {place}"))
            pending += [(child, (*path, key)) for key, child in reversed(node.items())]
        elif type(node) is list:
            pending += [(child, (*path, index)) for index, child in reversed(list(enumerate(node)))]
    count = len(problems)
    raise ValidationFailed(
        f"the body repeats {count} key{'s' if count > 1 else ''}, so what it means is ambiguous: send each key once",
        problems,
    )
