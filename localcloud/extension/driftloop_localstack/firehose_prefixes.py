"""Firehose custom S3 prefixes and dynamic partitioning, evaluated as AWS evaluates them (standard library only).

The pure half of ``firehose_partitioning`` (the LocalStack hook): it imports nothing from LocalStack, so it loads
and is unit-tested in the project's own venv. What it implements, per AWS's "Custom prefixes for Amazon S3
objects" and "Dynamic partitioning" documentation:

- expressions ``!{namespace:value}`` in ``Prefix`` and ``ErrorOutputPrefix``:

  - ``!{timestamp:<pattern>}``: a Java ``DateTimeFormatter`` pattern (``yyyy``, ``yy``, ``MM``, ``MMM``, ``dd``,
    ``DDD``, ``HH``, ``hh``, ``mm``, ``ss``, ``SSS``, ``EEE``, ``a``, quoted literals ``'...'``, any other
    punctuation) evaluated at the record's approximate arrival time, in UTC (or the stream's ``CustomTimeZone``);
    every ``timestamp`` expression of a prefix sees the same instant;
  - ``!{firehose:random-string}``: 11 random characters, a new one for each expression of each object;
  - ``!{firehose:error-output-type}`` (``ErrorOutputPrefix`` only): ``processing-failed`` for a record whose
    partition keys cannot be extracted (AWS's type for records a processor failed);
  - ``!{partitionKeyFromQuery:<key>}`` (``Prefix`` only, dynamic partitioning enabled): the key from the
    stream's ``MetadataExtraction`` processor;
  - ``!{partitionKeyFromLambda:<key>}`` is refused: driftloop does not use it, and it is not emulated;

- a ``MetadataExtractionQuery`` (engine ``JQ-1.6``) is the JQ subset people write for partitioning, an object of
  simple paths: ``{key: .field, other: .a.b, "quoted key": ."odd-name", first: .list[0], short}``. Anything else
  (pipes, functions, operators, literals) is refused with an explanation, as is a configuration AWS rejects
  (partition keys without dynamic partitioning, an expression prefix without ``ErrorOutputPrefix``, ...);
- delivery: the records of one call are grouped by their evaluated prefix, one S3 object per group, the record
  bytes concatenated as sent (AWS writes one object per partition per buffer flush). A prefix with expressions
  gets nothing appended (no ``YYYY/MM/dd/HH/``); a record whose partition keys cannot be extracted (not JSON, a
  key null, missing or empty) goes under ``ErrorOutputPrefix`` as a JSON line in AWS's format for records that
  failed processing: ``attemptsMade``, ``arrivalTimestamp``, ``errorCode``, ``errorMessage``,
  ``attemptEndingTimestamp``, ``rawData`` (base64).

A prefix without expressions is not this module's business: :meth:`DeliveryPlan.from_destination` returns None
and LocalStack's stock layout (``<prefix>/YYYY/MM/DD/HH/``) applies.

``CompressionFormat`` (:class:`Compression`), whatever the prefix: ``GZIP`` compresses each object (the error
output's too: Firehose compresses everything the destination writes) and names it ``....gz`` unless the
destination sets ``FileExtension``; ``UNCOMPRESSED`` writes the bytes as they are. ``ZIP``, ``Snappy`` and
``HADOOP_SNAPPY`` are refused: driftloop does not use them, and they are not emulated.
"""

from __future__ import annotations

import base64
import functools
import gzip
import json
import re
import secrets
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

PROCESSING_FAILED: Final[str] = "processing-failed"
EXTRACTION_ERROR_CODE: Final[str] = "DynamicPartitioning.MetadataExtractionFailed"
JQ_ENGINE: Final[str] = "JQ-1.6"
RANDOM_STRING_LENGTH: Final[int] = 11
# An ErrorOutputPrefix without expressions: AWS's default error layout follows it.
DEFAULT_ERROR_SUFFIX: Final[str] = "!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd/HH}/"

TIMESTAMP: Final[str] = "timestamp"
FIREHOSE: Final[str] = "firehose"
FROM_QUERY: Final[str] = "partitionKeyFromQuery"
FROM_LAMBDA: Final[str] = "partitionKeyFromLambda"
RANDOM_STRING: Final[str] = "random-string"
ERROR_OUTPUT_TYPE: Final[str] = "error-output-type"

_RANDOM_ALPHABET: Final[str] = string.ascii_lowercase + string.digits
_EXPRESSION: Final[re.Pattern[str]] = re.compile(r"!\{([^{}]*)\}")
_QUERY_HINT: Final[str] = (
    "driftloop's local Firehose evaluates only a JQ object of simple paths, such as {key: .field, other: .a.b}"
)


class ConfigurationError(ValueError):
    """A prefix or partitioning configuration AWS rejects, or one the local emulation cannot evaluate."""


class ExtractionError(ValueError):
    """A record's partition keys cannot be extracted: it goes to the error output prefix."""


def new_random_string() -> str:
    return "".join(secrets.choice(_RANDOM_ALPHABET) for _ in range(RANDOM_STRING_LENGTH))


# -- !{timestamp:...}: Java DateTimeFormatter patterns ------------------------------------------------------------

_MONTHS: Final[tuple[str, ...]] = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_DAYS: Final[tuple[str, ...]] = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

Formatter = Callable[[datetime], str]


def _number(value: Callable[[datetime], int], width: int) -> Formatter:
    return lambda moment: str(value(moment)).zfill(width)


def _text(names: Sequence[str], index: Callable[[datetime], int], count: int) -> Formatter:
    if count == 4:
        return lambda moment: names[index(moment)]
    if count == 5:
        return lambda moment: names[index(moment)][0]
    return lambda moment: names[index(moment)][:3]


def _literal(text: str) -> Formatter:
    return lambda moment: text


def _fraction(count: int) -> Formatter:
    return lambda moment: f"{moment.microsecond:06d}000"[:count]


# letter -> (the largest count Java accepts, how a count of it formats)
_NUMERIC: Final[dict[str, tuple[int, Callable[[datetime], int]]]] = {
    "d": (2, lambda m: m.day),
    "H": (2, lambda m: m.hour),
    "k": (2, lambda m: m.hour or 24),
    "K": (2, lambda m: m.hour % 12),
    "h": (2, lambda m: m.hour % 12 or 12),
    "m": (2, lambda m: m.minute),
    "s": (2, lambda m: m.second),
    "D": (3, lambda m: m.timetuple().tm_yday),
}


def _field(letter: str, count: int, pattern: str) -> Formatter:
    def too_many() -> ConfigurationError:
        return ConfigurationError(f"timestamp pattern {pattern!r}: too many pattern letters {letter * count!r}")

    if letter in "yu":
        if count == 2:
            return lambda moment: f"{moment.year % 100:02d}"
        return _number(lambda m: m.year, count)
    if letter in "ML":
        if count > 5:
            raise too_many()
        if count <= 2:
            return _number(lambda m: m.month, count)
        return _text(_MONTHS, lambda m: m.month - 1, count)
    if letter == "E":
        if count > 5:
            raise too_many()
        return _text(_DAYS, lambda m: m.weekday(), count)
    if letter == "a":
        if count > 1:
            raise too_many()
        return lambda moment: "AM" if moment.hour < 12 else "PM"
    if letter == "S":
        if count > 9:
            raise too_many()
        return _fraction(count)
    if letter in _NUMERIC:
        largest, value = _NUMERIC[letter]
        if count > largest:
            raise too_many()
        return _number(value, count)
    hint = " (week-based year: did you mean 'y'?)" if letter == "Y" else ""
    raise ConfigurationError(
        f"timestamp pattern {pattern!r}: pattern letter {letter!r}{hint} is not supported locally "
        "(supported: y u M L d D H h k K m s S E a and quoted text)"
    )


def compile_timestamp(pattern: str) -> Formatter:
    """A Java ``DateTimeFormatter`` pattern as a function of a datetime (in the zone it should be shown in)."""
    if not pattern:
        raise ConfigurationError("an empty timestamp pattern: !{timestamp:...} needs a pattern such as yyyy-MM-dd")
    pieces: list[Formatter] = []
    position = 0
    while position < len(pattern):
        char = pattern[position]
        if char == "'":
            literal, position = _quoted(pattern, position)
            pieces.append(_literal(literal))
        elif char.isascii() and char.isalpha():
            end = position
            while end < len(pattern) and pattern[end] == char:
                end += 1
            pieces.append(_field(char, end - position, pattern))
            position = end
        elif char in "[]{}#":
            raise ConfigurationError(f"timestamp pattern {pattern!r}: {char!r} is reserved (quote it: '{char}')")
        else:
            pieces.append(_literal(char))
            position += 1
    return lambda moment: "".join(piece(moment) for piece in pieces)


def _quoted(pattern: str, start: int) -> tuple[str, int]:
    """The literal text of the quote at ``start`` (``''`` is a quote) and the position after it."""
    if pattern.startswith("''", start):
        return "'", start + 2
    text: list[str] = []
    position = start + 1
    while True:
        end = pattern.find("'", position)
        if end < 0:
            raise ConfigurationError(f"timestamp pattern {pattern!r}: unterminated quote")
        text.append(pattern[position:end])
        if pattern.startswith("''", end):
            text.append("'")
            position = end + 2
            continue
        return "".join(text), end + 1


# -- prefixes ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expression:
    namespace: str
    value: str
    formatter: Formatter | None = None

    @property
    def text(self) -> str:
        return f"!{{{self.namespace}:{self.value}}}"


Rendered = tuple[str | None, ...]


@dataclass(frozen=True)
class Template:
    """A parsed prefix: literal text and expressions."""

    text: str
    parts: tuple[str | Expression, ...]

    @classmethod
    def parse(cls, text: str, *, field: str = "Prefix") -> Template:
        parts: list[str | Expression] = []
        position = 0
        for match in _EXPRESSION.finditer(text):
            parts.append(text[position : match.start()])
            parts.append(_expression(match.group(1), field))
            position = match.end()
        rest = text[position:]
        if "!{" in rest:
            raise ConfigurationError(f"{field} {text!r}: an expression '!{{' is not closed by '}}'")
        parts.append(rest)
        return cls(text, tuple(part for part in parts if part != ""))

    @property
    def expressions(self) -> tuple[Expression, ...]:
        return tuple(part for part in self.parts if isinstance(part, Expression))

    @property
    def has_expressions(self) -> bool:
        return bool(self.expressions)

    def uses(self, namespace: str, value: str | None = None) -> bool:
        return any(e.namespace == namespace and value in (None, e.value) for e in self.expressions)

    @property
    def partition_keys(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(e.value for e in self.expressions if e.namespace == FROM_QUERY))

    def render(
        self, moment: datetime, keys: Mapping[str, str] | None = None, error_output_type: str | None = None
    ) -> Rendered:
        """Every part evaluated except ``random-string`` (None): records with equal renderings share an object."""
        rendered: list[str | None] = []
        for part in self.parts:
            if isinstance(part, str):
                rendered.append(part)
            elif part.namespace == TIMESTAMP:
                assert part.formatter is not None
                rendered.append(part.formatter(moment))
            elif part.namespace == FROM_QUERY:
                rendered.append((keys or {})[part.value])
            elif part.value == ERROR_OUTPUT_TYPE:
                if error_output_type is None:
                    raise ConfigurationError(f"{self.text!r}: !{{firehose:error-output-type}} outside an error")
                rendered.append(error_output_type)
            else:
                rendered.append(None)
        return tuple(rendered)

    @staticmethod
    def fill(rendered: Rendered, random_string: Callable[[], str] = new_random_string) -> str:
        """The prefix of one object: each ``random-string`` gets its own value."""
        return "".join(part if part is not None else random_string() for part in rendered)

    def evaluate(
        self,
        moment: datetime,
        keys: Mapping[str, str] | None = None,
        error_output_type: str | None = None,
        random_string: Callable[[], str] = new_random_string,
    ) -> str:
        return self.fill(self.render(moment, keys, error_output_type), random_string)


def _expression(body: str, field: str) -> Expression:
    namespace, colon, value = body.partition(":")
    where = f"{field}: !{{{body}}}"
    if not colon:
        raise ConfigurationError(f"{where} is not an expression of the form !{{namespace:value}}")
    if namespace == TIMESTAMP:
        return Expression(namespace, value, compile_timestamp(value))
    if namespace == FIREHOSE:
        if value not in (RANDOM_STRING, ERROR_OUTPUT_TYPE):
            raise ConfigurationError(f"{where}: the firehose namespace has only random-string and error-output-type")
        return Expression(namespace, value)
    if namespace == FROM_QUERY:
        if not value:
            raise ConfigurationError(f"{where}: which partition key?")
        return Expression(namespace, value)
    if namespace == FROM_LAMBDA:
        raise ConfigurationError(
            f"{where}: partitionKeyFromLambda is not supported by driftloop's local Firehose "
            "(use a MetadataExtraction processor and partitionKeyFromQuery)"
        )
    raise ConfigurationError(
        f"{where}: unknown namespace {namespace!r} (timestamp, firehose, partitionKeyFromQuery, partitionKeyFromLambda)"
    )


# -- MetadataExtractionQuery: a JQ object of simple paths ---------------------------------------------------------

Path = tuple[str | int, ...]
_IDENTIFIER: Final[re.Pattern[str]] = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INTEGER: Final[re.Pattern[str]] = re.compile(r"-?[0-9]+")


class _QueryParser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.position = 0
        self._strings = json.JSONDecoder()

    def fail(self, detail: str) -> ConfigurationError:
        return ConfigurationError(
            f"MetadataExtractionQuery {self.text!r} is not supported locally (at character {self.position}: "
            f"{detail}): {_QUERY_HINT}"
        )

    def peek(self) -> str:
        return self.text[self.position : self.position + 1]

    def skip_space(self) -> None:
        while self.peek().isspace():
            self.position += 1

    def expect(self, char: str, what: str) -> None:
        if self.peek() != char:
            found = repr(self.peek()) if self.peek() else "the end"
            raise self.fail(f"expected {what}, found {found}")
        self.position += 1

    def identifier(self) -> str | None:
        match = _IDENTIFIER.match(self.text, self.position)
        if match is None:
            return None
        self.position = match.end()
        return match.group()

    def string(self) -> str:
        try:
            value, end = self._strings.raw_decode(self.text, self.position)
        except ValueError:
            raise self.fail("a string JQ cannot read, or one with interpolation") from None
        self.position = end
        return str(value)

    def name(self) -> str:
        if self.peek() == '"':
            return self.string()
        found = self.identifier()
        if found is None:
            raise self.fail("a key must be a name or a double-quoted string")
        return found

    def path(self) -> Path:
        self.expect(".", "a path such as .field")
        segments: list[str | int] = []
        if self.peek() == '"':
            segments.append(self.string())
        else:
            first = self.identifier()
            if first is not None:
                segments.append(first)
        while True:
            if self.peek() == ".":
                self.position += 1
                segments.append(self.name())
            elif self.peek() == "[":
                self.position += 1
                self.skip_space()
                if self.peek() == '"':
                    segments.append(self.string())
                else:
                    match = _INTEGER.match(self.text, self.position)
                    if match is None:
                        raise self.fail("an index must be a number or a double-quoted string")
                    segments.append(int(match.group()))
                    self.position = match.end()
                self.skip_space()
                self.expect("]", "']'")
            else:
                return tuple(segments)

    def query(self) -> dict[str, Path]:
        self.skip_space()
        self.expect("{", "an object '{...}'")
        self.skip_space()
        if self.peek() == "}":
            raise self.fail("an object without partition keys")
        keys: dict[str, Path] = {}
        while True:
            key = self.name()
            self.skip_space()
            if self.peek() == ":":
                self.position += 1
                self.skip_space()
                keys[key] = self.path()
            else:  # {key}: JQ's shorthand for {key: .key}
                keys[key] = (key,)
            self.skip_space()
            if self.peek() == ",":
                self.position += 1
                self.skip_space()
                continue
            self.expect("}", "',' or '}'")
            self.skip_space()
            if self.position != len(self.text):
                raise self.fail("only one object, nothing after it")
            return keys


def _jq_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    return "number"


def _path_text(path: Path) -> str:
    text = ""
    for segment in path:
        if isinstance(segment, int):
            text += f"[{segment}]"
        elif _IDENTIFIER.fullmatch(segment):
            text += f".{segment}"
        else:
            text += f".{json.dumps(segment)}"
    return text or "."


def _key_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e17:
        return str(int(value))
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class MetadataQuery:
    """A parsed ``MetadataExtractionQuery``: partition key names and their paths."""

    text: str
    keys: Mapping[str, Path]

    @classmethod
    def parse(cls, text: str) -> MetadataQuery:
        return cls(text, _QueryParser(text).query())

    def extract(self, data: bytes) -> dict[str, str]:
        """The record's partition keys; raises :class:`ExtractionError` when any is missing, null or empty."""
        try:
            document = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise ExtractionError(f"the record is not one JSON document: {exc}") from None
        values: dict[str, str] = {}
        for name, path in self.keys.items():
            value = document
            for segment in path:
                if value is None:
                    break
                if isinstance(segment, str) and isinstance(value, dict):
                    value = value.get(segment)
                elif isinstance(segment, int) and isinstance(value, list):
                    value = value[segment] if -len(value) <= segment < len(value) else None
                else:
                    index = f'"{segment}"' if isinstance(segment, str) else "number"
                    raise ExtractionError(f"partition key {name!r}: cannot index {_jq_type(value)} with {index}")
            if value is None:
                raise ExtractionError(f"partition key {name!r} is null: the record has no {_path_text(path)}")
            text = _key_text(value)
            if not text:
                raise ExtractionError(f'partition key {name!r} is empty ({_path_text(path)} is "")')
            values[name] = text
        return values


# -- a destination's delivery plan ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    data: bytes
    # Approximate arrival time (timezone-aware).
    arrival: datetime


@dataclass(frozen=True)
class Batch:
    """One S3 object: its evaluated prefix and its body."""

    prefix: str
    body: bytes
    records: int
    failed: bool
    # For failed records: the first record's error.
    error: str | None = None


def error_document(record: Record, error: str, now: datetime) -> bytes:
    """A record that could not be partitioned, as AWS writes records that failed processing (one JSON line)."""
    return (
        json.dumps(
            {
                "attemptsMade": 1,
                "arrivalTimestamp": int(record.arrival.timestamp() * 1000),
                "errorCode": EXTRACTION_ERROR_CODE,
                "errorMessage": error,
                "attemptEndingTimestamp": int(now.timestamp() * 1000),
                "rawData": base64.b64encode(record.data).decode("ascii"),
            },
            separators=(",", ":"),
        ).encode()
        + b"\n"
    )


# -- CompressionFormat ---------------------------------------------------------------------------------------------

# The formats emulated, and the extension each adds to an object's name when the destination sets no FileExtension.
_COMPRESSION_EXTENSIONS: Final[dict[str, str]] = {"UNCOMPRESSED": "", "GZIP": ".gz"}


@dataclass(frozen=True)
class Compression:
    """How an S3 destination's ``CompressionFormat`` turns the bytes of one object into what S3 stores."""

    format: str
    # Appended to the object's name: the destination's FileExtension, else the format's own.
    extension: str

    @classmethod
    def from_destination(cls, destination: Mapping[str, Any]) -> Compression:
        """The compression of an (Extended)S3 destination configuration or description; raises
        :class:`ConfigurationError` for a format the emulation cannot apply."""
        kind = str(destination.get("CompressionFormat") or "UNCOMPRESSED")
        if kind not in _COMPRESSION_EXTENSIONS:
            raise ConfigurationError(
                f"CompressionFormat {kind!r} is not emulated by driftloop's local Firehose "
                f"(supported: {', '.join(_COMPRESSION_EXTENSIONS)})"
            )
        return cls(kind, str(destination.get("FileExtension") or _COMPRESSION_EXTENSIONS[kind]))

    @property
    def compresses(self) -> bool:
        return self.format != "UNCOMPRESSED"

    def apply(self, body: bytes) -> bytes:
        """The object's stored bytes: one gzip member holding ``body`` for GZIP."""
        return gzip.compress(body) if self.format == "GZIP" else body


@dataclass(frozen=True)
class _Settings:
    prefix: str
    error_prefix: str
    partitioning: bool
    processors: tuple[tuple[str, tuple[tuple[str, str], ...]], ...]
    time_zone: str


@dataclass(frozen=True)
class DeliveryPlan:
    """How one S3 destination names its objects, when its ``Prefix`` has expressions."""

    prefix: Template
    error_prefix: Template | None
    query: MetadataQuery | None
    zone: tzinfo

    @classmethod
    def from_destination(cls, destination: Mapping[str, Any]) -> DeliveryPlan | None:
        """The plan of an (Extended)S3 destination configuration or description; None for a prefix without
        expressions (LocalStack's own layout). Raises :class:`ConfigurationError` for what AWS rejects and what
        cannot be emulated."""
        partitioning = destination.get("DynamicPartitioningConfiguration") or {}
        processing = destination.get("ProcessingConfiguration") or {}
        processors = (processing.get("Processors") or []) if processing.get("Enabled") is not False else []
        settings = _Settings(
            prefix=str(destination.get("Prefix") or ""),
            error_prefix=str(destination.get("ErrorOutputPrefix") or ""),
            partitioning=partitioning.get("Enabled") is True,
            processors=tuple(_processor(p) for p in processors),
            time_zone=str(destination.get("CustomTimeZone") or "UTC"),
        )
        return _plan(settings)

    def batches(
        self, records: Sequence[Record], now: datetime, random_string: Callable[[], str] = new_random_string
    ) -> list[Batch]:
        """The objects one call writes: records grouped by evaluated prefix, in the order they arrived."""
        groups: dict[tuple[bool, Rendered], list[bytes]] = {}
        errors: dict[tuple[bool, Rendered], str] = {}
        for record in records:
            moment = record.arrival.astimezone(self.zone)
            keys: dict[str, str] = {}
            if self.query is not None:
                try:
                    keys = self.query.extract(record.data)
                except ExtractionError as exc:
                    assert self.error_prefix is not None  # from_destination refuses partitioning without it
                    group = (True, self.error_prefix.render(moment, error_output_type=PROCESSING_FAILED))
                    groups.setdefault(group, []).append(error_document(record, str(exc), now))
                    errors.setdefault(group, str(exc))
                    continue
            groups.setdefault((False, self.prefix.render(moment, keys)), []).append(record.data)
        return [
            Batch(
                prefix=Template.fill(rendered, random_string),
                body=b"".join(pieces),
                records=len(pieces),
                failed=failed,
                error=errors.get((failed, rendered)),
            )
            for (failed, rendered), pieces in groups.items()
        ]


def _processor(processor: Mapping[str, Any]) -> tuple[str, tuple[tuple[str, str], ...]]:
    listed = processor.get("Parameters") or []
    parameters = tuple((str(q.get("ParameterName")), str(q.get("ParameterValue"))) for q in listed)
    return str(processor.get("Type")), parameters


@functools.lru_cache(maxsize=256)
def _plan(settings: _Settings) -> DeliveryPlan | None:
    prefix = Template.parse(settings.prefix, field="Prefix")
    error_text = settings.error_prefix
    error_prefix = Template.parse(error_text, field="ErrorOutputPrefix") if error_text else None
    if prefix.uses(FIREHOSE, ERROR_OUTPUT_TYPE):
        raise ConfigurationError(
            f"Prefix {settings.prefix!r}: !{{firehose:error-output-type}} can only be used in ErrorOutputPrefix"
        )
    if error_prefix is not None and error_prefix.uses(FROM_QUERY):
        raise ConfigurationError(
            f"ErrorOutputPrefix {error_text!r}: partitionKeyFromQuery cannot be used in ErrorOutputPrefix"
        )
    if prefix.has_expressions and error_prefix is None:
        raise ConfigurationError(
            f"Prefix {settings.prefix!r} has expressions: ErrorOutputPrefix cannot be null or empty then"
        )
    query = _query(settings)
    if prefix.partition_keys and not settings.partitioning:
        raise ConfigurationError(
            f"Prefix {settings.prefix!r} uses partitionKeyFromQuery: dynamic partitioning must be enabled"
        )
    if settings.partitioning and error_prefix is None:
        raise ConfigurationError("dynamic partitioning is enabled: ErrorOutputPrefix cannot be null or empty")
    if settings.partitioning and prefix.partition_keys and query is None:
        raise ConfigurationError(
            f"Prefix {settings.prefix!r} uses partitionKeyFromQuery, but the stream has no MetadataExtraction "
            "processor (ProcessingConfiguration) with a MetadataExtractionQuery"
        )
    if query is not None:
        missing = [key for key in prefix.partition_keys if key not in query.keys]
        if missing:
            raise ConfigurationError(
                f"Prefix {settings.prefix!r} uses partition keys {', '.join(missing)} that the "
                f"MetadataExtractionQuery {query.text!r} does not define"
            )
    try:
        zone: tzinfo = UTC if settings.time_zone == "UTC" else ZoneInfo(settings.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigurationError(f"CustomTimeZone {settings.time_zone!r} is not a time zone") from None
    if not prefix.has_expressions:
        return None
    if error_prefix is not None and not error_prefix.has_expressions:
        error_prefix = Template.parse(error_text + DEFAULT_ERROR_SUFFIX, field="ErrorOutputPrefix")
    return DeliveryPlan(prefix, error_prefix, query if settings.partitioning else None, zone)


def _query(settings: _Settings) -> MetadataQuery | None:
    """The MetadataExtraction processor's query, when dynamic partitioning is enabled (None otherwise)."""
    if not settings.partitioning:
        return None
    found: MetadataQuery | None = None
    for kind, parameters in settings.processors:
        if kind != "MetadataExtraction":
            continue
        values = dict(parameters)
        engine = values.get("JsonParsingEngine", JQ_ENGINE)
        if engine != JQ_ENGINE:
            raise ConfigurationError(f"MetadataExtraction: JsonParsingEngine {engine!r} is not {JQ_ENGINE}")
        text = values.get("MetadataExtractionQuery")
        if not text:
            raise ConfigurationError("MetadataExtraction processor without a MetadataExtractionQuery")
        if found is not None:
            raise ConfigurationError("more than one MetadataExtraction processor")
        found = MetadataQuery.parse(text)
    return found
