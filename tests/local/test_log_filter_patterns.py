"""CloudWatch Logs JSON filter patterns as the local cloud matches them (driftloop_localstack.log_filter_patterns),
and the capture path they open: which lines of a predicting function's log reach the capture stream.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import pytest
from driftloop_localstack.log_filter_patterns import UnsupportedPattern, compile_pattern

from functions.common.records import CAPTURE_FILTER_PATTERN, PredictionRecord, new_prediction_ids
from functions.inference.capture import CaptureLog, LogSink
from functions.inference.telemetry import RequestLog, Telemetry
from tests.prediction_ids import ID_KEY


def record() -> PredictionRecord:
    [pid] = new_prediction_ids(1, datetime.now(UTC), ID_KEY)
    return PredictionRecord(pid, "2026-01-01T00:00:00.000+00:00", "v1", {"a": 1}, label="1", request_id="r")


def test_of_everything_a_predicting_function_logs_the_capture_filter_selects_exactly_the_capture_lines(
    capsys: pytest.CaptureFixture[str],
) -> None:
    log = io.StringIO()
    telemetry = Telemetry("driftloop-test", log, level="DEBUG")
    telemetry.request(RequestLog("POST", "/predict", "r", status=200, batch_size=2, model_version="v1"), predict=True)
    telemetry.event("INFO", "model loaded", version="v1", capture="prediction-cache")
    telemetry.exception("capture failed; the predictions were served but not captured", ValueError("x"), lost=1)
    CaptureLog(log).write([record(), record()])
    LogSink().write([record()])  # feedback's local fallback, with the same members as a record
    log.write(capsys.readouterr().out)
    matches = compile_pattern(CAPTURE_FILTER_PATTERN)

    lines = log.getvalue().splitlines()
    selected = [line for line in lines if matches(line + "\n")]

    assert len(lines) == 6
    assert len(selected) == 2
    assert all(json.loads(line)["capture"] == "prediction" for line in selected)


@pytest.mark.parametrize(
    ("pattern", "message", "expected"),
    [
        ('{ $.capture = "prediction" }', '{"capture": "prediction"}', True),
        ('{ $.capture = "prediction" }', '{"capture": "Prediction"}', False),
        ('{ $.capture = "prediction" }', '{"capture": ["prediction"]}', False),
        ('{ $.capture = "prediction" }', '{"other": "prediction"}', False),
        ('{ $.capture = "prediction" }', '[INFO] {"capture": "prediction"}', False),
        ('{ $.capture = "prediction" }', "not json at all", False),
        ("{ $.capture = prediction }", '{"capture": "prediction"}', True),
        ('{ $.capture != "prediction" }', '{"capture": "feedback"}', True),
        ('{ $.capture != "prediction" }', '{"other": 1}', False),
        ('{ $.kind = "pred*" }', '{"kind": "prediction"}', True),
        ('{ $.kind = "*tion" }', '{"kind": "prediction"}', True),
        ('{ $.kind = "p.e*" }', '{"kind": "prediction"}', False),
        ('{ $.a.b[1] = "x" }', '{"a": {"b": ["w", "x"]}}', True),
        ('{ $.a.b[2] = "x" }', '{"a": {"b": ["w", "x"]}}', False),
        ("{ $.latency > 100 }", '{"latency": 150.5}', True),
        ("{ $.latency > 100 }", '{"latency": "150"}', False),
        ("{ $.latency <= 100 }", '{"latency": 100}', True),
        ("{ $.ok = 1 }", '{"ok": true}', False),
        ('{ $.a = "x" && $.b = 2 }', '{"a": "x", "b": 2}', True),
        ('{ $.a = "x" && $.b = 2 }', '{"a": "x", "b": 3}', False),
        ('{ $.a = "y" || $.b = 2 }', '{"a": "x", "b": 2}', True),
        ('{ ($.a = "y" || $.b = 2) && $.c = "z" }', '{"a": "y", "b": 1, "c": "q"}', False),
        ('{ $.a = "y" || $.b = 2 && $.c = "z" }', '{"a": "y", "b": 1, "c": "q"}', True),
        ("", "anything", True),
    ],
)
def test_json_patterns_match_as_aws_matches_them(pattern: str, message: str, expected: bool) -> None:
    assert compile_pattern(pattern)(message) is expected


@pytest.mark.parametrize(
    "pattern",
    [
        "ERROR",
        '"capture failed"',
        "[ip, user, ...]",
        "{ $.flag IS TRUE }",
        "{ $.flag NOT EXISTS }",
        "{ $.name = %pre.*% }",
        '{ $.latency > "100" }',
        '{ $.a = "x" ',
        '{ $.a = "x" } trailing',
    ],
)
def test_patterns_the_emulation_does_not_implement_are_refused_never_matched_loosely(pattern: str) -> None:
    with pytest.raises(UnsupportedPattern, match="filter pattern"):
        compile_pattern(pattern)
