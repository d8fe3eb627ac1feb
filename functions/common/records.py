"""Captured predictions and ground-truth feedback: their ids and their shapes.

The inference API writes both (captures as lines of its log, which a subscription ships to Kinesis Data Firehose;
feedback straight to Firehose), the monitor reads them to measure drift and live
quality, and the training workflow joins them into retraining data. This module is the one place that knows:

- prediction ids: 44 lowercase hex digits = the serving time in milliseconds (12 digits), 12 random digits, the
  4-digit tag of the key that minted it and a 16-digit MAC (HMAC-SHA256) of the rest under that key. Only the
  holders of the key (the functions that serve predictions) can mint an id that ``/feedback`` accepts, and the
  time says which capture partition holds it. Where the keys come from is :mod:`functions.inference.id_keys`'s;
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
import hmac
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

TIME_DIGITS = 12
_RANDOM_DIGITS = 12
_BODY_DIGITS = TIME_DIGITS + _RANDOM_DIGITS
# The key's tag only picks which key to try (the current or the previous one): it needs no more than to tell
# two keys apart, which rotation guarantees (functions.inference.key_rotation).
KEY_TAG_DIGITS = 4
# 64 bits: /feedback checks at most (throttle) x (items per request) ids a second, 10 x 1000 by default, so a
# caller guessing MACs for the whole feedback_max_age_days (30 days: ~2.6e10 guesses) forges one with probability
# ~1.4e-9.
_MAC_DIGITS = 16
PREDICTION_ID_LENGTH = _BODY_DIGITS + KEY_TAG_DIGITS + _MAC_DIGITS
# The shortest key taken; the keys made here hold 256 random bits or more (32 random bytes, 64 hex digits, or 64
# letters and digits).
MIN_KEY_BYTES = 32
# Lowercase only: the ids this service issues are, and int(x, 16) alone would also take "0x", "_", "+" and spaces.
_HEX_DIGITS = frozenset("0123456789abcdef")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class InvalidPredictionId(ValueError):
    """Not an id this service issued: wrong length, not lowercase hex, an unknown key, a bad MAC or an impossible
    time."""


@dataclass(frozen=True)
class IdKey:
    """A secret that mints and verifies prediction ids; ``tag`` (derived from it) names it inside the ids."""

    secret: bytes = field(repr=False)
    tag: str = field(init=False)
    # The MAC keyed and fed its fixed prefix once: each id then costs a copy and one update (half the time).
    _ids: hmac.HMAC = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.secret) < MIN_KEY_BYTES:
            raise ValueError(f"a prediction id key has at least {MIN_KEY_BYTES} bytes, got {len(self.secret)}")
        # A MAC of a fixed message, not of anything an id carries: the tag reveals nothing usable about the key.
        tag = hmac.new(self.secret, b"key-tag", hashlib.sha256).hexdigest()[:KEY_TAG_DIGITS]
        object.__setattr__(self, "tag", tag)
        object.__setattr__(self, "_ids", hmac.new(self.secret, b"prediction-id:", hashlib.sha256))

    @classmethod
    def generate(cls) -> IdKey:
        return cls(os.urandom(MIN_KEY_BYTES))

    def sign(self, body: str) -> str:
        """The id of ``body`` (time and random digits): the body, this key's tag and their MAC."""
        tagged = body + self.tag
        mac = self._ids.copy()
        mac.update(tagged.encode())
        return tagged + mac.hexdigest()[:_MAC_DIGITS]

    def signed(self, prediction_id: str) -> bool:
        return hmac.compare_digest(self.sign(prediction_id[:_BODY_DIGITS]), prediction_id)


class IdKeys(Protocol):
    """The keys of a deployment: one mints, and those whose ids may still be valid verify."""

    def minting(self) -> IdKey: ...

    def verifying(self, tag: str) -> IdKey | None:
        """The key tagged ``tag``, or None when none is (any more, or yet: an implementation may look again)."""
        ...


class FixedKeys:
    """Keys that never change: ``current`` mints, it and ``others`` verify."""

    def __init__(self, current: IdKey, *others: IdKey) -> None:
        self._current = current
        self._by_tag = {key.tag: key for key in (*others, current)}

    def minting(self) -> IdKey:
        return self._current

    def verifying(self, tag: str) -> IdKey | None:
        return self._by_tag.get(tag)


def time_prefix(served: datetime) -> str:
    """The leading digits of every id served at ``served``: its time in milliseconds, in hex. Ids of the same
    length sort as their times do, so SQL compares an id's prefix with this text to bound when it was served."""
    return f"{int(served.timestamp() * 1000):0{TIME_DIGITS}x}"


def new_prediction_ids(count: int, now: datetime, key: IdKey) -> list[str]:
    """``count`` fresh ids served at ``now``, minted with ``key`` (one ``urandom`` call for the batch: ids are
    minted on the hot path)."""
    stamp = time_prefix(now)
    randomness = os.urandom(_RANDOM_DIGITS // 2 * count).hex()
    return [
        key.sign(stamp + randomness[index * _RANDOM_DIGITS : (index + 1) * _RANDOM_DIGITS]) for index in range(count)
    ]


def prediction_time(prediction_id: str, keys: IdKeys) -> datetime:
    """When the prediction was served; raises :class:`InvalidPredictionId` for an id none of ``keys`` minted."""
    if not isinstance(prediction_id, str) or len(prediction_id) != PREDICTION_ID_LENGTH:
        raise InvalidPredictionId(f"a prediction id is {PREDICTION_ID_LENGTH} hex digits")
    if not _HEX_DIGITS.issuperset(prediction_id):
        raise InvalidPredictionId("a prediction id is lowercase hex digits only (0-9, a-f)")
    key = keys.verifying(prediction_id[_BODY_DIGITS : _BODY_DIGITS + KEY_TAG_DIGITS])
    if key is None:
        raise InvalidPredictionId("no prediction was served with this id (no current key has its key tag)")
    if not key.signed(prediction_id):
        raise InvalidPredictionId("no prediction was served with this id (its MAC does not match)")
    # A key holder (the serving functions) mints only the current time, but check the time's range anyway.
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
