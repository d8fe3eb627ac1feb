"""Captures as log lines: what the inference Lambda writes for each captured prediction, and that a prediction
never waits on the capture service (the log subscription ships the lines; ``tests/local`` checks its filter).
"""

from __future__ import annotations

import io
import json
import random
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from functions.common.records import CAPTURE_MARKER, PredictionRecord, new_prediction_ids, to_json_lines
from functions.inference.capture import (
    LOG_EVENT_OVERHEAD_BYTES,
    MAX_LOG_EVENT_BYTES,
    CaptureLog,
    DeliveryFailed,
    capture_line,
)
from functions.inference.settings import InferenceSettings
from tests.inference.conftest import MakeApi, instances
from tests.prediction_ids import ID_KEY


def capture_lines(text: str) -> list[dict[str, Any]]:
    """The capture lines of a log, parsed."""
    lines = [json.loads(line) for line in text.splitlines()]
    return [line for line in lines if line.get(CAPTURE_MARKER[0]) == CAPTURE_MARKER[1]]


def served(reply: Any) -> list[dict[str, Any]]:
    assert reply.status == 200, reply.body
    predictions: list[dict[str, Any]] = reply.json["predictions"]
    return predictions


def test_every_prediction_is_one_marked_log_line_holding_its_prediction_record(
    make_api: MakeApi, trained_bundle: Path, rows: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    api = make_api(InferenceSettings(model_dir=trained_bundle, capture="log"))

    reply = api.predict(rows)

    lines = capture_lines(capsys.readouterr().out)
    records = [PredictionRecord.from_dict(line) for line in lines]
    predictions = served(reply)
    assert [r.prediction_id for r in records] == [p["prediction_id"] for p in predictions]
    assert [r.features for r in records] == rows
    assert [(r.label, r.probabilities) for r in records] == [(p["label"], p["probabilities"]) for p in predictions]
    assert {r.model_version for r in records} == {reply.json["model_version"]}
    assert {r.request_id for r in records} == {reply.event["requestContext"]["requestId"]}
    [request] = api.log_messages("request")
    assert request["CaptureFailures"] == 0


def test_a_capture_line_is_the_record_line_with_the_marker_first() -> None:
    [pid] = new_prediction_ids(1, datetime.now(UTC), ID_KEY)
    record = PredictionRecord(pid, "2026-01-01T00:00:00.000+00:00", "v1", {"city": "Zürich", "n": None}, value=1.5)

    line = capture_line(record)

    assert line.startswith(b'{"capture":"prediction",')
    assert json.loads(line) == {"capture": "prediction", **json.loads(to_json_lines([record]))}
    assert line.endswith(b"\n") and line.count(b"\n") == 1


def test_nothing_is_written_at_sample_rate_0(
    make_api: MakeApi, trained_bundle: Path, rows: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    api = make_api(InferenceSettings(model_dir=trained_bundle, capture="log", capture_sample_rate=0.0))

    served(api.predict(rows))

    assert capture_lines(capsys.readouterr().out) == []


def test_at_sample_rate_half_each_prediction_is_drawn_independently_and_reproducibly_with_a_seed(
    make_api: MakeApi, trained_bundle: Path, churn_data: pd.DataFrame, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = instances(churn_data, 400)
    settings = InferenceSettings(model_dir=trained_bundle, capture="log", capture_sample_rate=0.5)
    picks = []
    for _ in range(2):
        api = make_api(settings, rng=random.Random(42))
        positions = {p["prediction_id"]: index for index, p in enumerate(served(api.predict(rows)))}
        picks.append([positions[line["prediction_id"]] for line in capture_lines(capsys.readouterr().out)])

    first, second = picks
    assert first == second, "the same seed must pick the same predictions"
    expected = random.Random(42)
    assert first == [index for index in range(len(rows)) if expected.random() < 0.5]


def test_a_record_too_large_for_a_log_event_is_not_written_and_counted_as_lost(
    make_api: MakeApi, trained_bundle: Path, rows: list[dict[str, Any]]
) -> None:
    log = io.StringIO()
    big = dict(rows[1], region="x" * MAX_LOG_EVENT_BYTES)
    api = make_api(InferenceSettings(model_dir=trained_bundle), sink=CaptureLog(log))

    reply = api.predict([rows[0], big, rows[2]])

    predictions = served(reply)
    assert len(predictions) == 3, "the prediction is served all the same"
    written = capture_lines(log.getvalue())
    assert [line["prediction_id"] for line in written] == [predictions[i]["prediction_id"] for i in (0, 2)]
    [failure] = api.log_messages("capture failed; the predictions were served but not captured")
    assert failure["lost"] == 1
    assert predictions[1]["prediction_id"] in failure["exception"]
    [request] = api.log_messages("request")
    assert request["CaptureFailures"] == 1


def test_the_largest_line_a_log_event_takes_is_written() -> None:
    [pid] = new_prediction_ids(1, datetime.now(UTC), ID_KEY)
    empty = PredictionRecord(pid, "2026-01-01T00:00:00.000+00:00", "v1", {"t": ""}, value=1.0)
    room = MAX_LOG_EVENT_BYTES - LOG_EVENT_OVERHEAD_BYTES - len(capture_line(empty))
    fits = PredictionRecord(pid, empty.time, "v1", {"t": "x" * room}, value=1.0)
    over = PredictionRecord(pid, empty.time, "v1", {"t": "x" * (room + 1)}, value=1.0)
    log = io.StringIO()

    CaptureLog(log).write([fits])
    with pytest.raises(DeliveryFailed) as failed:
        CaptureLog(log).write([over])

    assert len(log.getvalue().encode()) == MAX_LOG_EVENT_BYTES - LOG_EVENT_OVERHEAD_BYTES
    assert failed.value.lost == 1


def test_the_predict_path_makes_no_network_call_to_capture(
    make_api: MakeApi,
    trained_bundle: Path,
    rows: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    api = make_api(InferenceSettings(model_dir=trained_bundle, capture="log"))
    connections: list[object] = []

    def refuse(self: socket.socket, address: object) -> None:
        connections.append(address)
        raise OSError("the capture service is down")

    # A capture outage: nothing answers. The prediction neither calls out nor notices.
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)

    reply = api.predict(rows)

    assert len(served(reply)) == len(rows)
    assert connections == []
    assert len(capture_lines(capsys.readouterr().out)) == len(rows)
    [request] = api.log_messages("request")
    assert request["CaptureFailures"] == 0
