"""CloudWatch Logs filter patterns for JSON log events, as AWS matches them (pure: no LocalStack import).

LocalStack 2026.3.0's CloudWatch Logs matches every event against every pattern (its ``get_pattern_matcher`` is a
stub "patched in pro"): a subscription filter ships the whole log group. :mod:`.log_subscriptions` puts
:func:`compile_pattern` in its place. What is implemented, following "Filter pattern syntax for metric filters,
subscription filters, and filter log events" (CloudWatch Logs User Guide), JSON log events:

- the empty pattern matches every event;
- ``{ SELECTOR OPERATOR VALUE }`` with ``&&`` and ``||`` (``&&`` binds tighter) and parentheses; a selector is
  ``$`` followed by ``.name`` and ``[index]`` steps;
- strings: ``=`` and ``!=``, the value double-quoted or a bare word, ``*`` matching any run of characters; a string
  value only matches a JSON string, case-sensitively;
- numbers: ``=``, ``!=``, ``<``, ``<=``, ``>``, ``>=`` against a JSON number;
- an event whose message is not a JSON object, or that lacks the selected member, matches no comparison.

Refused with :class:`UnsupportedPattern` (never matched loosely): term and space-delimited patterns, ``IS TRUE``/
``IS FALSE``/``IS NULL``, ``EXISTS``/``NOT EXISTS``, regular expressions (``%...%``) and anything else not listed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Matcher = Callable[[str], bool]

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<op>&&|\|\||!=|<=|>=|=|<|>|\(|\)|\{|\})
      | (?P<selector>\$(?:\.[A-Za-z_@][\w@-]*|\[\d+\])+)
      | (?P<number>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w*]))
      | (?P<word>[\w*.:/@-]+)
    )""",
    re.VERBOSE,
)
_COMPARISONS = ("=", "!=", "<", "<=", ">", ">=")


class UnsupportedPattern(ValueError):
    """A filter pattern this emulation does not implement (or that is not valid)."""


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str


def compile_pattern(pattern: str) -> Matcher:
    """A function telling whether a log event's message matches ``pattern``; raises :class:`UnsupportedPattern`."""
    text = pattern.strip()
    if not text:
        return lambda _message: True
    if not text.startswith("{") or not text.endswith("}"):
        raise UnsupportedPattern(f"filter pattern {pattern!r}: only JSON patterns {{ $.member = value }} are emulated")
    parser = _Parser(_tokens(text, pattern), pattern)
    parser.expect("{")
    test = parser.expression()
    parser.expect("}")
    if parser.position != len(parser.tokens):
        raise parser.fail("unexpected text after the closing brace")
    return lambda message: _test_message(test, message)


def _tokens(text: str, pattern: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        found = _TOKEN.match(text, position)
        if found is None or found.end() == position:
            raise UnsupportedPattern(f"filter pattern {pattern!r}: cannot read {text[position:].strip()[:20]!r}")
        kind = found.lastgroup or ""
        tokens.append(_Token(kind, found.group(kind)))
        position = found.end()
    return tokens


Test = Callable[[Any], bool]


class _Parser:
    def __init__(self, tokens: list[_Token], pattern: str) -> None:
        self.tokens = tokens
        self.pattern = pattern
        self.position = 0

    def fail(self, detail: str) -> UnsupportedPattern:
        return UnsupportedPattern(f"filter pattern {self.pattern!r}: {detail}")

    def peek(self) -> _Token | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.peek()
        if token is None:
            raise self.fail("unexpected end")
        self.position += 1
        return token

    def expect(self, text: str) -> None:
        token = self.take()
        if token.text != text:
            raise self.fail(f"expected {text!r}, got {token.text!r}")

    def expression(self) -> Test:
        alternatives = [self.conjunction()]
        while (token := self.peek()) is not None and token.text == "||":
            self.take()
            alternatives.append(self.conjunction())
        return alternatives[0] if len(alternatives) == 1 else (lambda doc: any(test(doc) for test in alternatives))

    def conjunction(self) -> Test:
        parts = [self.term()]
        while (token := self.peek()) is not None and token.text == "&&":
            self.take()
            parts.append(self.term())
        return parts[0] if len(parts) == 1 else (lambda doc: all(test(doc) for test in parts))

    def term(self) -> Test:
        token = self.take()
        if token.text == "(":
            test = self.expression()
            self.expect(")")
            return test
        if token.kind != "selector":
            raise self.fail(f"expected a selector ($.member), got {token.text!r}")
        path = _path(token.text)
        operator = self.take()
        if operator.text not in _COMPARISONS:
            raise self.fail(f"{operator.text!r} after {token.text}: only {', '.join(_COMPARISONS)} are emulated")
        value = self.take()
        if value.kind == "number":
            return _number_test(path, operator.text, float(value.text))
        if value.kind in ("string", "word"):
            if operator.text not in ("=", "!="):
                raise self.fail(f"a string value takes = or !=, not {operator.text}")
            text = json.loads(value.text) if value.kind == "string" else value.text
            return _string_test(path, operator.text == "=", text)
        raise self.fail(f"expected a value after {token.text} {operator.text}, got {value.text!r}")


def _path(selector: str) -> tuple[str | int, ...]:
    steps: list[str | int] = []
    for name, index in re.findall(r"\.([^.\[]+)|\[(\d+)\]", selector[1:]):
        steps.append(int(index) if index else name)
    return tuple(steps)


_MISSING = object()


def _select(document: Any, path: tuple[str | int, ...]) -> Any:
    for step in path:
        in_list = isinstance(step, int) and isinstance(document, list) and step < len(document)
        in_object = isinstance(step, str) and isinstance(document, dict) and step in document
        if not (in_list or in_object):
            return _MISSING
        document = document[step]
    return document


def _string_test(path: tuple[str | int, ...], equal: bool, expected: str) -> Test:
    # Only "*" is a wildcard (any run of characters, none included); everything else is literal.
    compiled = re.compile(".*".join(map(re.escape, expected.split("*"))), re.DOTALL) if "*" in expected else None

    def test(document: Any) -> bool:
        value = _select(document, path)
        if not isinstance(value, str):
            return False
        same = bool(compiled.fullmatch(value)) if compiled is not None else value == expected
        return same is equal

    return test


def _number_test(path: tuple[str | int, ...], operator: str, expected: float) -> Test:
    compare: dict[str, Callable[[float], bool]] = {
        "=": lambda v: v == expected,
        "!=": lambda v: v != expected,
        "<": lambda v: v < expected,
        "<=": lambda v: v <= expected,
        ">": lambda v: v > expected,
        ">=": lambda v: v >= expected,
    }

    def test(document: Any) -> bool:
        value = _select(document, path)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        return compare[operator](float(value))

    return test


def _test_message(test: Test, message: str) -> bool:
    try:
        document = json.loads(message)
    except ValueError:
        return False
    return isinstance(document, dict) and test(document)
