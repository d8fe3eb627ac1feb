"""Fixtures for the inference API: a client that drives the Mangum handler in-process with API Gateway REST
proxy events and a Lambda context, exactly as Lambda would, and fakes for the sinks and the clock."""

from __future__ import annotations

import base64
import io
import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from mangum import Mangum

from functions.common.metrics import InferenceMetric
from functions.common.records import FeedbackRecord, IdKeys, PredictionRecord
from functions.inference.api import create_app
from functions.inference.capture import Record, Sink
from functions.inference.settings import InferenceSettings
from functions.inference.telemetry import Telemetry
from tests.inference.events import LambdaContext, rest_event

TARGET = "churned"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: str
    event: dict[str, Any]

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class Api:
    """Calls the Lambda handler with REST proxy events and reads the proxy responses."""

    def __init__(self, handler: Callable[[dict[str, Any], Any], dict[str, Any]], log: io.StringIO) -> None:
        self.handler = handler
        self.log = log

    def call(self, method: str, path: str, body: bytes | str | None = None, **event_options: Any) -> Reply:
        event = rest_event(method, path, body, **event_options)
        response = self.handler(event, LambdaContext())
        text = response["body"]
        if response.get("isBase64Encoded"):
            text = base64.b64decode(text).decode()
        headers = {name.lower(): value for name, value in response["headers"].items()}
        return Reply(response["statusCode"], headers, text, event)

    def predict(self, instances: Any, **event_options: Any) -> Reply:
        return self.call("POST", "/predict", json.dumps({"instances": instances}), **event_options)

    def feedback(self, body: Any, **event_options: Any) -> Reply:
        return self.call("POST", "/feedback", json.dumps(body), **event_options)

    def log_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.getvalue().splitlines()]

    def log_messages(self, message: str) -> list[dict[str, Any]]:
        return [line for line in self.log_lines() if line.get("message") == message]


class RecordingSink:
    def __init__(self) -> None:
        self.batches: list[list[Record]] = []

    def write(self, records: Sequence[Record]) -> None:
        self.batches.append(list(records))

    @property
    def predictions(self) -> list[PredictionRecord]:
        return [r for batch in self.batches for r in batch if isinstance(r, PredictionRecord)]

    @property
    def feedback(self) -> list[FeedbackRecord]:
        return [r for batch in self.batches for r in batch if isinstance(r, FeedbackRecord)]


class FailingSink:
    def write(self, records: Sequence[Record]) -> None:
        raise ConnectionError("the delivery stream is unreachable")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def assert_valid_emf(line: dict[str, Any]) -> None:
    """The EMF specification's rules for a log line that CloudWatch turns into metrics."""
    metadata = line["_aws"]
    assert isinstance(metadata["Timestamp"], int) and metadata["Timestamp"] > 1_600_000_000_000
    [directive] = metadata["CloudWatchMetrics"]
    assert directive["Namespace"] == "driftloop"
    for dimension_set in directive["Dimensions"]:
        assert 1 <= len(dimension_set) <= 30
        for name in dimension_set:
            assert isinstance(line[name], str) and line[name], name
    assert directive["Metrics"], "a directive without metrics"
    for metric in directive["Metrics"]:
        assert set(metric) <= {"Name", "Unit", "StorageResolution"}
        assert isinstance(line[metric["Name"]], int | float), metric["Name"]
        assert metric["Unit"] in {"Milliseconds", "Count"}
        assert metric["Unit"] == InferenceMetric(metric["Name"]).unit, metric["Name"]


MakeApi = Callable[..., Api]


@pytest.fixture
def make_api() -> MakeApi:
    def make(
        settings: InferenceSettings,
        sink: Sink | None = None,
        clock: Callable[[], float] = time.monotonic,
        *,
        feedback: Sink | None = None,
        rng: random.Random | None = None,
        keys: IdKeys | None = None,
    ) -> Api:
        log = io.StringIO()
        app = create_app(
            settings,
            sink=sink,
            feedback=feedback,
            rng=rng,
            telemetry=Telemetry("driftloop-test", log),
            clock=clock,
            keys=keys,
        )
        return Api(Mangum(app, lifespan="off"), log)

    return make


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


@pytest.fixture
def feedback_sink() -> RecordingSink:
    return RecordingSink()


@pytest.fixture
def api(make_api: MakeApi, trained_bundle: Path, sink: RecordingSink, feedback_sink: RecordingSink) -> Api:
    # A batch limit of 100: small enough for the tests to exceed cheaply.
    settings = InferenceSettings(model_dir=trained_bundle, max_instances=100)
    return make_api(settings, sink=sink, feedback=feedback_sink)


@pytest.fixture(scope="session")
def regression_bundle(make_job: Callable[..., Path], churn_data: pd.DataFrame) -> Path:
    """A ridge regression of monthly_charges, trained by the real training program."""
    from training.program import run

    base = make_job(
        {"target": "monthly_charges", "algorithm": "logistic_regression", "drop_columns": TARGET}, churn_data
    )
    assert run(base) == 0, (base / "output" / "failure").read_text()
    return base / "model"


def instances(frame: pd.DataFrame, rows: int, drop: Sequence[str] = (TARGET,)) -> list[dict[str, Any]]:
    """Rows of a data set as the API takes them: JSON values, null for a missing value."""
    records: list[dict[str, Any]] = json.loads(frame.head(rows).drop(columns=list(drop)).to_json(orient="records"))
    return records


@pytest.fixture
def rows(churn_data: pd.DataFrame) -> list[dict[str, Any]]:
    return instances(churn_data, 5)
