"""Typed reads of a Lambda's environment, with errors that name the variable and say what is wrong."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


class EnvError(ValueError):
    """A required environment variable is missing or malformed."""


@dataclass(frozen=True)
class Env:
    values: Mapping[str, str]

    def required(self, name: str) -> str:
        value = self.values.get(name, "").strip()
        if not value:
            raise EnvError(f"environment variable {name} is required")
        return value

    def optional(self, name: str, default: str) -> str:
        return self.values.get(name, "").strip() or default

    def integer(self, name: str, minimum: int) -> int:
        raw = self.required(name)
        try:
            value = int(raw)
        except ValueError:
            raise EnvError(f"environment variable {name} must be an integer, got {raw!r}") from None
        if value < minimum:
            raise EnvError(f"environment variable {name} must be at least {minimum}, got {value}")
        return value

    def number(self, name: str) -> float:
        raw = self.required(name)
        try:
            return float(raw)
        except ValueError:
            raise EnvError(f"environment variable {name} must be a number, got {raw!r}") from None

    def boolean(self, name: str) -> bool:
        raw = self.required(name).lower()
        if raw not in ("true", "false"):
            raise EnvError(f"environment variable {name} must be 'true' or 'false', got {raw!r}")
        return raw == "true"
