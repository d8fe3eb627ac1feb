"""Capture benchmark: what capturing adds to a request, through the log (now) and through a synchronous Firehose
``PutRecordBatch`` (before), while the capture service is up and while it hangs.

Run with ``python -m tests.benchmarks.bench_capture`` (part of ``make bench``). The log path is measured writing
the capture lines of 1 and 100 predictions to a pipe that is drained, as Lambda's runtime drains stdout. The
Firehose path is the sink the inference Lambda used for captures (one attempt, connect 0.5 s, read 1 s), pointed
at a local endpoint that accepts connections and never answers: a hanging Firehose. Whatever the capture service
does, the log path costs the same, since it makes no call. Prints medians and their ratio; exits non-zero only
when it cannot run.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TextIO, cast

import boto3

from functions.common.records import PredictionRecord, new_prediction_ids
from functions.inference.capture import CaptureLog, FirehoseClient, FirehoseSink, Record
from tests.prediction_ids import ID_KEY

LOG_RUNS = 2000
HANGING_RUNS = 3


def records(count: int) -> list[Record]:
    now = datetime.now(UTC)
    features = {"tenure_months": 14, "monthly_charges": 70.35, "contract": "month_to_month", "region": "west"}
    return [
        PredictionRecord(pid, now.isoformat(timespec="milliseconds"), "v1", features, label="1",
                         probabilities={"0": 0.31, "1": 0.69}, request_id="c6f1a3e2-8a9b-4c1d")
        for pid in new_prediction_ids(count, now, ID_KEY)
    ]  # fmt: skip


def median_seconds(action: Callable[[], object], runs: int) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        # A hanging Firehose fails the write: its time is what is measured.
        with contextlib.suppress(Exception):
            action()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def drained_pipe() -> TextIO:
    """The write end of a pipe a thread keeps reading, as Lambda's runtime reads the function's stdout."""
    read_end, write_end = os.pipe()

    def drain() -> None:
        while os.read(read_end, 1 << 16):
            pass

    threading.Thread(target=drain, daemon=True).start()
    return os.fdopen(write_end, "w")


def hanging_endpoint() -> str:
    """A local HTTP endpoint that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            connection, _ = server.accept()
            held.append(connection)

    threading.Thread(target=accept, daemon=True).start()
    host, port = server.getsockname()
    return f"http://{host}:{port}"


def main() -> int:
    sink = CaptureLog(drained_pipe())
    firehose = FirehoseSink("captures", attempts=1)
    client = boto3.client(
        "firehose",
        endpoint_url=hanging_endpoint(),
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        config=firehose.boto_config(),
    )
    hanging = FirehoseSink("captures", attempts=1, client=cast(FirehoseClient, client))
    print("capture cost per request (median), log line vs synchronous Firehose PutRecordBatch")
    print(f"{'predictions':>12}  {'log path':>10}  {'Firehose hanging':>17}  {'ratio':>9}")
    for count in (1, 100):
        batch = records(count)
        log_seconds = median_seconds(functools.partial(sink.write, batch), LOG_RUNS)
        hanging_seconds = median_seconds(functools.partial(hanging.write, batch), HANGING_RUNS)
        ratio = log_seconds / hanging_seconds
        print(f"{count:>12}  {log_seconds * 1e6:>8.1f}us  {hanging_seconds * 1e3:>15.0f}ms  {ratio:>9.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
