"""Parsers of values given as text (SageMaker hyperparameters, Lambda environment variables, times in records).

Each setting parser takes the text and returns the value, or raises ValueError saying what the value must be, for
the caller to name the setting. :func:`parse_time` returns None instead, for times that may be absent. Standard
library only: the Lambdas and the training program all use it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time as an aware UTC datetime (naive times are UTC); None if it is not one."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError("must be an integer") from None


def number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError("must be a number") from None


def finite(text: str) -> float:
    value = number(text)
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


def non_negative(text: str) -> float:
    value = number(text)
    if not (math.isfinite(value) and value >= 0):
        raise ValueError("must be a finite number >= 0")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError("must be an integer >= 1")
    return value


def positive_float(text: str) -> float:
    value = number(text)
    if not (math.isfinite(value) and value > 0):
        raise ValueError("must be a finite number > 0")
    return value


def fraction(text: str) -> float:
    value = number(text)
    if not 0 <= value <= 1:  # also refuses NaN
        raise ValueError("must be a number between 0 and 1")
    return value


def open_fraction(text: str) -> float:
    value = number(text)
    if not 0 < value < 1:
        raise ValueError("must be a number strictly between 0 and 1")
    return value


def boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise ValueError("must be true or false")


def choice(options: tuple[str, ...]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return text

    return parse


def text_list(text: str) -> tuple[str, ...]:
    """A list of texts: a JSON list of strings when it starts with ``[`` (each kept exactly, spaces and commas
    included: ``["Price, USD", " ?"]``), else comma-separated (each stripped, empty ones skipped). Each at most once.
    """
    if text.lstrip().startswith("["):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"starts with '[' but is not a JSON list: {exc.msg} at character {exc.pos}") from None
        if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
            raise ValueError("starts with '[' but is not a JSON list of non-empty strings")
        items = tuple(value)
    else:
        items = tuple(item.strip() for item in text.split(",") if item.strip())
    repeated = sorted({item for item in items if items.count(item) > 1})
    if repeated:
        raise ValueError(f"lists {', '.join(repeated)} more than once")
    return items


def list_text(items: tuple[str, ...]) -> str:
    """``items`` as :func:`text_list` reads them back: comma-separated when that is exact, else a JSON list."""
    plain = all(item == item.strip() and "," not in item for item in items)
    if plain and not (items and items[0].startswith("[")):
        return ",".join(items)
    return json.dumps(list(items), ensure_ascii=False)
