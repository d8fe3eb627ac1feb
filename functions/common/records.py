"""Captured predictions and ground-truth feedback: their ids, their shapes, and where they land in S3.

The inference API writes both (through Kinesis Data Firehose), the monitor reads them to measure drift and live
quality, and the training workflow joins them into retraining data. This module is the one place that knows:

- prediction ids: 32 hex digits = the serving time in milliseconds (12 digits), 12 random digits and an 8-digit
  checksum. A mistyped or made-up id fails the checksum, and the time says which capture partition holds it
  (ids authenticate nothing: the API itself is authenticated);
- one JSON object per line, for both record kinds;
- the keys: ``<capture_prefix>model_version=<v>/date=<YYYY-MM-DD>/...`` and ``<feedback_prefix>date=<YYYY-MM-DD>/...``
  (Firehose dynamic partitioning writes them; :func:`capture_day_prefix` and :func:`feedback_day_prefix` read them).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

PREDICTION_ID_LENGTH = 32
_TIME_DIGITS = 12
_RANDOM_DIGITS = 12
_CHECK_DIGITS = PREDICTION_ID_LENGTH - _TIME_DIGITS - _RANDOM_DIGITS


class InvalidPredictionId(ValueError):
    """Not an id this service issued: wrong length, not hex, or the checksum does not match."""


def _check(body: str) -> str:
    return hashlib.blake2b(body.encode(), digest_size=_CHECK_DIGITS // 2).hexdigest()


def new_prediction_ids(count: int, now: datetime) -> list[str]:
    """``count`` fresh ids served at ``now`` (one ``urandom`` call for the batch: ids are minted on the hot path)."""
    stamp = f"{int(now.timestamp() * 1000):0{_TIME_DIGITS}x}"
    randomness = os.urandom(_RANDOM_DIGITS // 2 * count).hex()
    ids = []
    for index in range(count):
        body = stamp + randomness[index * _RANDOM_DIGITS : (index + 1) * _RANDOM_DIGITS]
        ids.append(body + _check(body))
    return ids


def prediction_time(prediction_id: str) -> datetime:
    """When the prediction was served; raises :class:`InvalidPredictionId` for an id this service did not issue."""
    if not isinstance(prediction_id, str) or len(prediction_id) != PREDICTION_ID_LENGTH:
        raise InvalidPredictionId(f"a prediction id is {PREDICTION_ID_LENGTH} hex digits")
    try:
        millis = int(prediction_id[:_TIME_DIGITS], 16)
        int(prediction_id, 16)
    except ValueError:
        raise InvalidPredictionId("a prediction id is hex digits only") from None
    body = prediction_id[: _TIME_DIGITS + _RANDOM_DIGITS]
    if prediction_id[len(body) :] != _check(body):
        raise InvalidPredictionId("no prediction was served with this id (checksum mismatch)")
    return datetime.fromtimestamp(millis / 1000, UTC)


@dataclass(frozen=True, slots=True)
class PredictionRecord:
    """One served prediction, as captured."""

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

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PredictionRecord:
        return cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})


@dataclass(frozen=True, slots=True)
class FeedbackRecord:
    """The ground truth for one prediction, as a client reported it."""

    prediction_id: str
    # When the feedback was received: ISO 8601, UTC.
    time: str
    # Classification: the true label (as a string, like metadata.classes); regression: the true value.
    label: str | None = None
    value: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeedbackRecord:
        return cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})


def to_json_lines(records: Iterable[PredictionRecord | FeedbackRecord]) -> bytes:
    return "".join(json.dumps(record.to_dict(), separators=(",", ":")) + "\n" for record in records).encode()


def parse_json_lines(body: bytes) -> Iterator[dict[str, Any]]:
    """Records of one S3 object; Firehose may concatenate objects without newlines, so split on both."""
    decoder = json.JSONDecoder()
    text = body.decode()
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position >= len(text):
            return
        record, position = decoder.raw_decode(text, position)
        if isinstance(record, dict):
            yield record


# -- S3 layout --------------------------------------------------------------------------------------------------

MODEL_VERSION_PARTITION = "model_version"
DATE_PARTITION = "date"


def capture_day_prefix(capture_prefix: str, model_version: str, day: date) -> str:
    return f"{capture_prefix}{MODEL_VERSION_PARTITION}={model_version}/{DATE_PARTITION}={day:%Y-%m-%d}/"


def feedback_day_prefix(feedback_prefix: str, day: date) -> str:
    return f"{feedback_prefix}{DATE_PARTITION}={day:%Y-%m-%d}/"


def days_between(start: datetime, end: datetime) -> list[date]:
    """Every UTC day a window touches, oldest first."""
    first, last = start.astimezone(UTC).date(), end.astimezone(UTC).date()
    return [first + timedelta(days=offset) for offset in range((last - first).days + 1)]
