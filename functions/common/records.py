"""Captured predictions and ground-truth feedback: their ids and their shapes.

The inference API writes both (captures as lines of its log, which a subscription ships to Kinesis Data Firehose;
feedback straight to Firehose), the monitor reads them to measure drift and live
quality, and the training workflow joins them into retraining data. This module is the one place that knows:

- prediction ids: 32 lowercase hex digits = the serving time in milliseconds (12 digits), 12 random digits and an
  8-digit checksum. A mistyped or made-up id fails the checksum, and the time says which capture partition holds
  it (ids authenticate nothing: the API itself is authenticated);
- one JSON object per line, for both record kinds;
- who sent a request (:class:`Caller`, in both record kinds): the identity API Gateway saw, so that feedback labels,
  which flow into training data, can be traced to and limited per sender. A session of an assumed role is
  recorded as its role (the session name, which whoever assumes the role chooses freely, is kept apart for audit),
  so that everything counting or capping callers (Assemble's per-caller cap) sees one caller per role. Records
  written before callers were recorded, and requests that did not come through API Gateway (``driftloop serve``,
  uvicorn: nothing there authenticates the client), have no caller: ``caller`` is null or absent, and readers
  must accept both.

Where the records lie in S3 is :mod:`functions.common.layout`'s; how the monitor and Assemble join them,
:mod:`functions.common.labelled_sql`'s.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

PREDICTION_ID_LENGTH = 32
TIME_DIGITS = 12
_RANDOM_DIGITS = 12
_CHECK_DIGITS = PREDICTION_ID_LENGTH - TIME_DIGITS - _RANDOM_DIGITS
# Lowercase only: the ids this service issues are, and int(x, 16) alone would also take "0x", "_", "+" and spaces.
_HEX_DIGITS = frozenset("0123456789abcdef")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class InvalidPredictionId(ValueError):
    """Not an id this service issued: wrong length, not lowercase hex, a bad checksum or an impossible time."""


def _check(body: str) -> str:
    return hashlib.blake2b(body.encode(), digest_size=_CHECK_DIGITS // 2).hexdigest()


def time_prefix(served: datetime) -> str:
    """The leading digits of every id served at ``served``: its time in milliseconds, in hex. Ids of the same
    length sort as their times do, so SQL compares an id's prefix with this text to bound when it was served."""
    return f"{int(served.timestamp() * 1000):0{TIME_DIGITS}x}"


def new_prediction_ids(count: int, now: datetime) -> list[str]:
    """``count`` fresh ids served at ``now`` (one ``urandom`` call for the batch: ids are minted on the hot path)."""
    stamp = time_prefix(now)
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
    if not _HEX_DIGITS.issuperset(prediction_id):
        raise InvalidPredictionId("a prediction id is lowercase hex digits only (0-9, a-f)")
    body = prediction_id[: TIME_DIGITS + _RANDOM_DIGITS]
    if prediction_id[len(body) :] != _check(body):
        raise InvalidPredictionId("no prediction was served with this id (checksum mismatch)")
    # The checksum is not a secret: a well-formed id can carry any 12-digit time, up to year 10889.
    try:
        return _EPOCH + timedelta(milliseconds=int(prediction_id[:TIME_DIGITS], 16))
    except OverflowError:
        raise InvalidPredictionId("no prediction was served with this id (its time is past year 9999)") from None


# A session of an assumed role: its STS ARN (the role's path, if any, before its name; a session name has no "/")
# and its principal id (the role's unique id, "AROA...", then the session name).
_SESSION_ARN = re.compile(
    r"arn:(?P<partition>[\w-]+):sts::(?P<account>\d{12}):assumed-role/(?P<role>.+)/(?P<session>[^/]+)"
)
_SESSION_ID = re.compile(r"(?P<role>AROA[0-9A-Z]+):(?P<session>.+)")


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent a request, as API Gateway (REST API) identified it; any part may be unknown (None).

    A principal that is a session of an assumed role becomes its role (``arn:aws:iam::<account>:role/<name>``, or
    the role's unique id), and the session name goes to ``session``.
    """

    # The IAM principal's ARN of a SigV4-signed request (else the principal id API Gateway reports).
    principal: str | None = None
    # The id of the API key the request carried (never the key itself).
    api_key_id: str | None = None
    source_ip: str | None = None
    # The session name of an assumed role: who assumed it says so, so it records, never identifies.
    session: str | None = None

    def __post_init__(self) -> None:
        if not self.principal:
            return
        if match := _SESSION_ARN.fullmatch(self.principal):
            role = f"arn:{match['partition']}:iam::{match['account']}:role/{match['role']}"
        elif match := _SESSION_ID.fullmatch(self.principal):
            role = match["role"]
        else:
            return
        object.__setattr__(self, "principal", role)
        object.__setattr__(self, "session", match["session"])

    @property
    def identity(self) -> str:
        """The strongest identity known, as ``kind:value`` ("" when none is): the IAM principal, else the API key
        id, else the source IP, so a caller rotating IPs under one principal or key stays one caller."""
        for kind in ("principal", "api_key_id", "source_ip"):
            value = getattr(self, kind)
            if value:
                return f"{kind}:{value}"
        return ""

    @classmethod
    def from_dict(cls, data: Any) -> Caller | None:
        """The caller of a stored record's ``caller`` value (None: none recorded); TypeError when malformed."""
        if data is None:
            return None
        if not isinstance(data, Mapping):
            raise TypeError(f"a caller is an object, got {type(data).__name__}")
        return cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})


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
    caller: Caller | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PredictionRecord:
        return cls(**_fields(cls.__dataclass_fields__, data))


@dataclass(frozen=True, slots=True)
class FeedbackRecord:
    """The ground truth for one prediction, as a client reported it."""

    prediction_id: str
    # When the feedback was received: ISO 8601, UTC.
    time: str
    # Classification: the true label (as a string, like metadata.classes); regression: the true value.
    label: str | None = None
    value: float | None = None
    caller: Caller | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeedbackRecord:
        return cls(**_fields(cls.__dataclass_fields__, data))


def _fields(names: Iterable[str], data: Mapping[str, Any]) -> dict[str, Any]:
    """A record's constructor arguments from its JSON object: unknown keys ignored, a missing caller is None."""
    fields = {name: data[name] for name in names if name in data}
    if "caller" in fields:
        fields["caller"] = Caller.from_dict(fields["caller"])
    return fields


# A captured prediction travels as one line of its Lambda's log (functions.inference.capture.CaptureLog): the
# record's members plus this marker member, which the log group's subscription filter selects (no other line
# carries it: EMF and event lines have none) and which readers ignore (from_dict, the Glue tables' columns).
CAPTURE_MARKER = ("capture", "prediction")
# CloudWatch Logs' JSON filter pattern for the marker: the subscription ships exactly the capture lines.
CAPTURE_FILTER_PATTERN = f'{{ $.{CAPTURE_MARKER[0]} = "{CAPTURE_MARKER[1]}" }}'


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
