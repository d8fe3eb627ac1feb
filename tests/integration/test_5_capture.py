"""Prediction capture and feedback reach the data bucket through the deployed Firehose streams, in the layout of
``functions/common/records.py`` that the monitor and the workflow read:
``captures/model_version=<v>/hour=<YYYY-MM-DD-HH>/`` and ``feedback/hour=<YYYY-MM-DD-HH>/`` (the arrival hour, UTC),
gzip-compressed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from functions.common.layout import capture_hour_prefix, feedback_hour_prefix, hour_values
from tests.integration.support import DELIVERY_TIMEOUT, Deployed, as_instances, wait_for

pytestmark = pytest.mark.integration

CAPTURE_PREFIX = "captures/"
FEEDBACK_PREFIX = "feedback/"


@dataclass(frozen=True)
class Served:
    version: str
    instances: list[dict[str, Any]]
    predictions: list[dict[str, Any]]
    labels: dict[str, str]
    started: datetime

    def hours(self) -> list[str]:
        """The UTC hours the delivery may be filed under (the requests' hour, or the next one just after it)."""
        return hour_values(self.started, datetime.now(UTC))


@pytest.fixture(scope="module")
def served(deployed: Deployed, served_champion: str) -> Served:
    """Four predictions and the ground truth of each, sent through the API."""
    from training.synthetic import generate

    started = datetime.now(UTC)
    frame = generate(4, seed=31)
    instances = as_instances(frame)
    answer = deployed.api.predict(instances)
    labels = {p["prediction_id"]: str(label) for p, label in zip(answer["predictions"], frame["churned"], strict=True)}
    items = [{"prediction_id": i, "label": v} for i, v in labels.items()]
    feedback = deployed.api.post("/feedback", {"feedback": items})
    assert (feedback.status, feedback.json) == (202, {"accepted": 4}), feedback
    return Served(answer["model_version"], instances, answer["predictions"], labels, started)


def delivered(deployed: Deployed, prefixes: list[str], ids: set[str]) -> dict[str, dict[str, Any]] | None:
    """The records of ``ids`` under ``prefixes``, once every one of them is there."""
    found = {
        record["prediction_id"]: record
        for prefix in prefixes
        for record in deployed.records(prefix)
        if record.get("prediction_id") in ids
    }
    return found if set(found) == ids else None


def test_captured_predictions_land_under_the_champions_version_and_the_hour(deployed: Deployed, served: Served) -> None:
    prefixes = [capture_hour_prefix(CAPTURE_PREFIX, served.version, hour) for hour in served.hours()]
    ids = {p["prediction_id"] for p in served.predictions}

    records = wait_for(
        f"the captures of {sorted(ids)} under {prefixes}",
        lambda: delivered(deployed, prefixes, ids),
        timeout=DELIVERY_TIMEOUT,
        interval=1.0,
        seen=lambda: deployed.keys(CAPTURE_PREFIX)[-5:],
    )

    for instance, prediction in zip(served.instances, served.predictions, strict=True):
        record = records[prediction["prediction_id"]]
        assert record["model_version"] == served.version
        assert record["features"] == instance
        assert record["label"] == prediction["label"]
        assert record["probabilities"] == prediction["probabilities"]
        assert served.started <= datetime.fromisoformat(record["time"]) <= datetime.now(UTC)
        assert record["request_id"]


def test_feedback_lands_under_the_hour_it_arrived(deployed: Deployed, served: Served) -> None:
    prefixes = [feedback_hour_prefix(FEEDBACK_PREFIX, hour) for hour in served.hours()]

    records = wait_for(
        f"the feedback for {sorted(served.labels)} under {prefixes}",
        lambda: delivered(deployed, prefixes, set(served.labels)),
        timeout=DELIVERY_TIMEOUT,
        interval=1.0,
        seen=lambda: deployed.keys(FEEDBACK_PREFIX)[-5:],
    )

    for prediction_id, label in served.labels.items():
        record = records[prediction_id]
        assert record["label"] == label
        assert served.started <= datetime.fromisoformat(record["time"]) <= datetime.now(UTC)


def test_no_delivery_is_filed_under_an_unresolved_partitioning_expression(deployed: Deployed, served: Served) -> None:
    wait_for(
        "any capture to be delivered",
        lambda: deployed.keys(CAPTURE_PREFIX) or None,
        timeout=DELIVERY_TIMEOUT,
        interval=1.0,
    )
    unresolved = [key for key in deployed.keys(CAPTURE_PREFIX) + deployed.keys(FEEDBACK_PREFIX) if "!{" in key]
    assert not unresolved, unresolved[:3]
