"""Where served predictions and ground-truth feedback go: one :class:`Sink` interface, four sinks.

- :class:`NoCapture` keeps nothing;
- :class:`CaptureLog` writes each captured prediction as one marked JSON line on stdout: in Lambda that is the
  function's CloudWatch Logs group, whose subscription filter (``records.CAPTURE_FILTER_PATTERN``) ships the lines
  to the capture delivery stream. Writing a line is a local pipe write (microseconds): no network call, so a
  prediction never waits on the capture service, and an outage of the subscription or of Firehose costs the
  client nothing (CloudWatch Logs retries delivery for up to 24 hours; the alarms watch it);
- :class:`LogSink` writes feedback as JSON lines on stdout (local runs without a stream);
- :class:`FirehoseSink` sends feedback (``functions.common.records``) to a Kinesis Data Firehose delivery stream
  with ``PutRecordBatch``, which delivers them to S3.

Captured predictions are best effort: the service samples them (:class:`Sampler`, per prediction), and a record
that cannot be written (a line larger than a CloudWatch Logs event) is logged and counted (``CaptureFailures``) but
never fails the prediction. Feedback goes through a sink of the same interface, but a failure there is the
client's to know: the API answers 503 so it can retry. So feedback keeps its synchronous Firehose round trip
(usually 5-30 ms in-region, inside the request), with tight timeouts (connect 0.5 s, read 1 s) and a few attempts.
boto3 is imported only when a Firehose sink is used.
"""

from __future__ import annotations

import random
import sys
import threading
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TextIO, cast

import orjson

from functions.common.records import CAPTURE_MARKER, FeedbackRecord, PredictionRecord, to_json_lines

if TYPE_CHECKING:
    from botocore.config import Config as BotoConfig

Record = PredictionRecord | FeedbackRecord

# PutRecordBatch limits: records per call, bytes per call, bytes per record (Firehose's quotas).
MAX_BATCH_RECORDS = 500
MAX_BATCH_BYTES = 4 * 1024 * 1024
MAX_RECORD_BYTES = 1000 * 1024
CONNECT_TIMEOUT_SECONDS = 0.5
READ_TIMEOUT_SECONDS = 1.0
# Feedback must not be lost: a few attempts.
FEEDBACK_ATTEMPTS = 3
# CloudWatch Logs takes events of at most 256 KiB, counting 26 bytes of overhead per event (PutLogEvents' quota).
MAX_LOG_EVENT_BYTES = 256 * 1024
LOG_EVENT_OVERHEAD_BYTES = 26


class DeliveryFailed(Exception):
    """Some records were not delivered: ``lost`` of them (any other exception from a sink: all of them)."""

    def __init__(self, message: str, lost: int) -> None:
        super().__init__(message)
        self.lost = lost


class Sink(Protocol):
    def write(self, records: Sequence[Record]) -> None:
        """Deliver ``records`` or raise: :class:`DeliveryFailed` when only some were lost."""
        ...


def lost_records(exc: BaseException, records: Sequence[Record]) -> int:
    """How many of ``records`` a sink's exception says were lost."""
    return exc.lost if isinstance(exc, DeliveryFailed) else len(records)


class NoCapture:
    """Predictions are not kept."""

    def write(self, records: Sequence[Record]) -> None:
        return None


class CaptureLog:
    """Each record as one JSON line on stdout (or ``stream``) carrying the capture marker: the log subscription's
    filter selects these lines and Firehose delivers them, one per line, as the records themselves.

    A line that would exceed a CloudWatch Logs event is not written (Lambda would split it, and the halves would
    reach S3 as two broken lines): it counts as lost.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        # None: whatever sys.stdout is at write time (the Lambda runtime's, or a test's capture).
        self._stream = stream

    def write(self, records: Sequence[Record]) -> None:
        lines: list[bytes] = []
        too_large: list[str] = []
        for record in records:
            line = capture_line(record)
            if len(line) + LOG_EVENT_OVERHEAD_BYTES > MAX_LOG_EVENT_BYTES:
                too_large.append(f"{record.prediction_id} ({len(line)} bytes)")
            else:
                lines.append(line)
        if lines:
            stream = self._stream or sys.stdout
            stream.write(b"".join(lines).decode())
            stream.flush()
        if too_large:
            raise DeliveryFailed(
                f"{len(too_large)} of {len(records)} captures exceed a CloudWatch Logs event "
                f"({MAX_LOG_EVENT_BYTES - LOG_EVENT_OVERHEAD_BYTES} bytes) and were not written: "
                + ", ".join(too_large[:3])
                + (", ..." if len(too_large) > 3 else ""),
                len(too_large),
            )


# The marker member opens each capture line: '{"capture":"prediction",' then the record's members.
_CAPTURE_OPENING = orjson.dumps(dict([CAPTURE_MARKER]))[:-1] + b","


def capture_line(record: Record) -> bytes:
    """The record's JSON line (:func:`encode`) with the capture marker as its first member."""
    return _CAPTURE_OPENING + encode(record)[1:]


class LogSink:
    """One JSON line per record on stdout, ``"message": "feedback"``: feedback in local runs without a stream."""

    def write(self, records: Sequence[Record]) -> None:
        sys.stdout.write(
            "".join(orjson.dumps({"message": "feedback", **record.to_dict()}).decode() + "\n" for record in records)
        )
        sys.stdout.flush()


class FirehoseClient(Protocol):
    """The one call of boto3's Firehose client the sink uses."""

    # boto3's keyword names.
    def put_record_batch(
        self,
        *,
        DeliveryStreamName: str,  # noqa: N803
        Records: list[dict[str, bytes]],  # noqa: N803
    ) -> Mapping[str, Any]: ...


class FirehoseSink:
    """``PutRecordBatch`` to one delivery stream, in chunks within Firehose's limits.

    The boto3 client is created on first use (or by :meth:`warm_up`, which the app calls at start so that Lambda's
    init phase pays for it), never at import. Chunks are sent in order; the first call that raises stops the
    write (the rest would most likely time out too) and every record not acknowledged counts as lost.
    """

    def __init__(self, stream: str, *, attempts: int = FEEDBACK_ATTEMPTS, client: FirehoseClient | None = None) -> None:
        self.stream = stream
        self.attempts = attempts
        self._client = client
        self._lock = threading.Lock()

    @property
    def client(self) -> FirehoseClient:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    import boto3

                    self._client = cast(FirehoseClient, boto3.client("firehose", config=self.boto_config()))
        return self._client

    def boto_config(self) -> BotoConfig:
        from botocore.config import Config

        return Config(
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            read_timeout=READ_TIMEOUT_SECONDS,
            retries={"total_max_attempts": self.attempts, "mode": "standard"},
        )

    def warm_up(self) -> None:
        self.client  # noqa: B018 - creating the client is the point

    def write(self, records: Sequence[Record]) -> None:
        if not records:
            return
        lost = 0
        errors: Counter[str] = Counter()
        payloads: list[bytes] = []
        for record in records:
            data = encode(record)
            if len(data) > MAX_RECORD_BYTES:
                lost += 1
                errors["RecordTooLarge"] += 1
            else:
                payloads.append(data)
        sent = 0
        for chunk in chunks(payloads):
            try:
                response = self.client.put_record_batch(
                    DeliveryStreamName=self.stream, Records=[{"Data": data} for data in chunk]
                )
            except Exception as exc:
                unsent = len(payloads) - sent
                raise DeliveryFailed(
                    f"PutRecordBatch to {self.stream} failed ({type(exc).__name__}: {exc}); "
                    f"{lost + unsent} of {len(records)} records lost",
                    lost + unsent,
                ) from exc
            sent += len(chunk)
            failed = int(response.get("FailedPutCount", 0))
            if failed:
                lost += failed
                errors.update(
                    entry.get("ErrorCode") or "Unknown"
                    for entry in response.get("RequestResponses", ())
                    if entry.get("ErrorCode")
                )
        if lost:
            reasons = ", ".join(f"{code} x{count}" for code, count in sorted(errors.items())) or "no error codes"
            raise DeliveryFailed(f"{lost} of {len(records)} records not delivered to {self.stream} ({reasons})", lost)


def encode(record: Record) -> bytes:
    """One JSON line, as :func:`functions.common.records.to_json_lines` writes it (orjson is ~10x faster; the
    standard library handles what orjson refuses, such as integers beyond 64 bits)."""
    try:
        return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)
    except orjson.JSONEncodeError:
        return to_json_lines([record])


def chunks(payloads: Sequence[bytes]) -> Iterator[list[bytes]]:
    """Consecutive runs of at most :data:`MAX_BATCH_RECORDS` records and :data:`MAX_BATCH_BYTES` bytes."""
    chunk: list[bytes] = []
    size = 0
    for data in payloads:
        if chunk and (len(chunk) == MAX_BATCH_RECORDS or size + len(data) > MAX_BATCH_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(data)
        size += len(data)
    if chunk:
        yield chunk


class Sampler:
    """Which predictions of a batch to capture: each independently with probability ``rate``."""

    def __init__(self, rate: float, rng: random.Random | None = None) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"a sampling rate is from 0 to 1, got {rate}")
        self.rate = rate
        self._rng = rng or random.Random()  # noqa: S311 - sampling, not secrecy

    def pick(self, count: int) -> Sequence[int]:
        if self.rate >= 1.0:
            return range(count)
        if self.rate <= 0.0:
            return range(0)
        draw, rate = self._rng.random, self.rate
        return [index for index in range(count) if draw() < rate]


SINK_NAMES = ("none", "log")


def capture_sink(name: str) -> Sink:
    """The sink ``DRIFTLOOP_CAPTURE`` names: ``log`` writes capture lines (the deployed path), ``none`` nothing."""
    return CaptureLog() if name == "log" else NoCapture()


def feedback_sink(stream: str | None) -> Sink:
    """Feedback always goes somewhere: the delivery stream when there is one, else the log."""
    return FirehoseSink(stream) if stream else LogSink()
