"""Firehose's processors for CloudWatch Logs subscriptions, as AWS applies them (pure: no LocalStack import).

A subscription filter puts each batch of matching log events into a delivery stream as one record: the gzip of a
JSON envelope ``{"messageType": "DATA_MESSAGE", "owner", "logGroup", "logStream", "subscriptionFilters",
"logEvents": [{"id", "timestamp", "message"}, ...]}`` (CloudWatch Logs also sends a ``CONTROL_MESSAGE`` when the
filter is created, to check the destination). LocalStack 2026.3.0's Firehose skips the processors that unpack it
("Unsupported Firehose processor type"); :mod:`.firehose_partitioning` hands them here, in the stream's order:

- ``Decompression`` (``CompressionFormat`` GZIP): the gunzipped record. A record that is not gzip fails: AWS
  writes it to the error prefix under ``decompression-failed``; here it is dropped with an error in LocalStack's
  log (:class:`ProcessingFailed`, the one difference);
- ``CloudWatchLogProcessing`` (``DataMessageExtraction`` true): each log event's message as a record of its own,
  the envelope's metadata dropped (AWS's "Extract message after decompression of CloudWatch Logs"); a control
  message yields nothing;
- ``AppendDelimiterToRecord``: a newline after each record.

The records then go on to dynamic partitioning (``MetadataExtraction``, evaluated at delivery), as on AWS.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Mapping, Sequence
from typing import Final

DECOMPRESSION: Final[str] = "Decompression"
MESSAGE_EXTRACTION: Final[str] = "CloudWatchLogProcessing"
APPEND_DELIMITER: Final[str] = "AppendDelimiterToRecord"
PROCESSORS: Final[frozenset[str]] = frozenset({DECOMPRESSION, MESSAGE_EXTRACTION, APPEND_DELIMITER})
# AWS's error output type for records that could not be decompressed.
DECOMPRESSION_FAILED: Final[str] = "decompression-failed"


class ProcessingFailed(ValueError):
    """The record cannot go through the processor (AWS would write it under the error prefix)."""


def check(kind: str, parameters: Mapping[str, str]) -> None:
    """Refuse a processor configuration AWS refuses or this emulation does not implement."""
    if kind == DECOMPRESSION and parameters.get("CompressionFormat", "GZIP") != "GZIP":
        raise ValueError(f"Decompression: CompressionFormat {parameters['CompressionFormat']!r} is not GZIP")
    if kind == MESSAGE_EXTRACTION and parameters.get("DataMessageExtraction") != "true":
        raise ValueError("CloudWatchLogProcessing: only DataMessageExtraction=true is emulated (AWS requires it)")


def process(kind: str, data: bytes) -> Sequence[bytes]:
    """What one processor makes of one record: zero, one or more records; raises :class:`ProcessingFailed`."""
    if kind == DECOMPRESSION:
        try:
            return [gzip.decompress(data)]
        except (OSError, EOFError, zlib.error) as exc:
            raise ProcessingFailed(f"{DECOMPRESSION_FAILED}: not a gzip record ({exc})") from None
    if kind == MESSAGE_EXTRACTION:
        return messages(data)
    if kind == APPEND_DELIMITER:
        return [data + b"\n"]
    raise ValueError(f"not a CloudWatch Logs processor: {kind}")


def messages(data: bytes) -> list[bytes]:
    """The messages of a decompressed CloudWatch Logs envelope, each as its own record."""
    try:
        envelope = json.loads(data)
    except ValueError:
        raise ProcessingFailed("message extraction: the record is not a CloudWatch Logs envelope (JSON)") from None
    if not isinstance(envelope, dict) or "logEvents" not in envelope:
        raise ProcessingFailed("message extraction: the record is not a CloudWatch Logs envelope (no logEvents)")
    if envelope.get("messageType") == "CONTROL_MESSAGE":
        return []
    return [str(event.get("message", "")).encode() for event in envelope["logEvents"]]
