"""The capture hook: every served prediction goes through one :class:`CaptureSink`.

A monitor needs what the model saw and what it answered, keyed by the id the client got back (ground-truth
feedback refers to it later). Sinks are chosen by name (``DRIFTLOOP_CAPTURE``); a stream sink such as Kinesis
Firehose plugs in by adding a factory to :data:`SINKS`. The service calls ``capture`` once per request with
that request's records and treats any exception as a capture failure, never as a failed prediction.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import orjson


@dataclass(frozen=True, slots=True)
class PredictionRecord:
    prediction_id: str
    # When the prediction was served: ISO 8601, UTC.
    time: str
    model_version: str
    # The instance as the client sent it (null for a missing value).
    features: Mapping[str, Any]
    # Classification: the label and the class probabilities; regression: the value.
    label: str | None = None
    probabilities: Mapping[str, float] | None = None
    value: float | None = None
    # The API request that carried the instance (API Gateway request id when there is one).
    request_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class CaptureSink(Protocol):
    def capture(self, records: Sequence[PredictionRecord]) -> None: ...


class NoCapture:
    """The default: predictions are not kept."""

    def capture(self, records: Sequence[PredictionRecord]) -> None:
        return None


class LogCapture:
    """One JSON line per prediction on stdout: local runs, or a CloudWatch Logs subscription."""

    def capture(self, records: Sequence[PredictionRecord]) -> None:
        sys.stdout.write(
            "".join(orjson.dumps({"message": "prediction", **record.to_dict()}).decode() + "\n" for record in records)
        )
        sys.stdout.flush()


SINKS: dict[str, Callable[[], CaptureSink]] = {"none": NoCapture, "log": LogCapture}


def make_sink(name: str) -> CaptureSink:
    return SINKS[name]()
