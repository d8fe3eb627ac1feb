"""Lambda environments as typed contracts: the CDK side renders one, the handler reads it back.

A contract is a frozen dataclass deriving from :class:`EnvContract` whose fields are declared with
:func:`variable`: each names its environment variable and the codec that turns the value into text and back. The
stacks build the dataclass from the app's config and pass ``to_env()`` to the function; the handler calls
``from_env()``. Neither side writes a variable name, so the two cannot drift apart. Standard library only: the
inference Lambda imports it on its cold-start path.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar

from functions.common import text_values

T = TypeVar("T")

# Powertools reads these: the Service of every log line and metric, and the log level.
SERVICE_VARIABLE = "POWERTOOLS_SERVICE_NAME"
LOG_LEVEL_VARIABLE = "POWERTOOLS_LOG_LEVEL"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class EnvError(ValueError):
    """A Lambda's environment does not satisfy its contract; the message names every variable at fault."""


@dataclass(frozen=True)
class Codec[T]:
    """How one kind of value is written into an environment variable and read back."""

    parse: Callable[[str], T]
    render: Callable[[T], str] = str


TEXT: Codec[str] = Codec(str)
PATH: Codec[Path] = Codec(Path)
POSITIVE_INT: Codec[int] = Codec(text_values.positive_int)
NON_NEGATIVE_INT: Codec[int] = Codec(lambda text: _at_least(text_values.integer(text), 0))
NUMBER: Codec[float] = Codec(text_values.finite, repr)
NON_NEGATIVE: Codec[float] = Codec(text_values.non_negative, repr)
FRACTION: Codec[float] = Codec(text_values.fraction, repr)
BOOLEAN: Codec[bool] = Codec(text_values.boolean, lambda value: "true" if value else "false")


def _at_least(value: int, minimum: int) -> int:
    if value < minimum:
        raise ValueError(f"must be an integer >= {minimum}")
    return value


def choice(options: tuple[str, ...]) -> Codec[str]:
    return Codec(text_values.choice(options))


def _string_map(text: str) -> dict[str, str]:
    try:
        value = json.loads(text)
    except ValueError:
        raise ValueError("must be a JSON object") from None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ValueError("must be a JSON object of strings")
    return value


STRING_MAP: Codec[dict[str, str]] = Codec(_string_map, lambda value: json.dumps(value, sort_keys=True))


def variable(name: str, codec: Codec[Any] = TEXT, **field_options: Any) -> Any:
    """Declare a contract field: the environment variable ``name`` holds it, written and read with ``codec``.

    A field with a ``default`` (or ``default_factory``) is optional: an absent or empty variable means the default,
    and a ``None`` value is not rendered at all.
    """
    return dataclasses.field(metadata={"variable": name, "codec": codec}, **field_options)


@dataclass(frozen=True, kw_only=True)
class EnvContract:
    """Base of every Lambda's environment contract. Subclasses are ``@dataclass(frozen=True, kw_only=True)`` of
    :func:`variable` fields; every function has the common ``service`` and ``log_level``."""

    service: str = variable(SERVICE_VARIABLE)
    log_level: str = variable(LOG_LEVEL_VARIABLE, choice(LOG_LEVELS), default="INFO")

    # Set by subclasses that check relations between fields (see ``validate``).
    description: ClassVar[str] = "Lambda"

    @classmethod
    def variables(cls) -> dict[str, str]:
        """Field name -> environment variable, for every field of the contract."""
        return {field.name: field.metadata["variable"] for field in dataclasses.fields(cls)}

    def to_env(self) -> dict[str, str]:
        """The environment CDK gives the function. CDK tokens (unresolved names) pass through as the text they are."""
        rendered: dict[str, str] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is not None:
                rendered[field.metadata["variable"]] = field.metadata["codec"].render(value)
        return rendered

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Read the contract back, listing every missing or malformed variable in one :class:`EnvError`."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        problems: list[str] = []
        required = set()
        for field in dataclasses.fields(cls):
            name, codec = field.metadata["variable"], field.metadata["codec"]
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                required.add(field.name)
            raw = environ.get(name, "").strip()
            if not raw:
                if field.name in required:
                    problems.append(f"{name} is required")
                continue
            try:
                values[field.name] = codec.parse(raw)
            except ValueError as exc:
                problems.append(f"{name}={raw!r}: {exc}")
        # Relations are checked beside malformed optional variables too (those take their defaults), so that one
        # error lists every problem; without a required value there is nothing to relate.
        if required <= values.keys():
            try:
                contract = cls(**values)
            except ValueError as exc:
                problems.append(str(exc))
            else:
                if not problems:
                    return contract
        raise EnvError(f"invalid {cls.description} environment:\n" + "\n".join(f"- {p}" for p in problems))

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check relations between fields; raise ValueError naming the variables. Fields alone are checked by
        their codecs."""
