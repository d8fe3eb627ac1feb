"""The deployed monitor on drifted traffic: after predictions of shifted customers (``covariate_drift``) and their
ground truth went through the API, one invocation of the monitor Lambda measures the champion's window, publishes
its CloudWatch metrics (``Service`` dimension) and writes its report objects.

The captures must be in the ``records.py`` layout for the monitor to find them (see test_5_capture.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from functions.common.layout import capture_hour_prefix, hour_values
from functions.common.metrics import NAMESPACE, Dimension, MonitorMetric
from functions.monitor.settings import MonitorSettings
from tests.integration.support import DELIVERY_TIMEOUT, Deployed, as_instances, wait_for

pytestmark = pytest.mark.integration

DRIFTED_ROWS = 300
BATCH = 150
LABELLED_ROWS = 80
PNG = b"\x89PNG\r\n\x1a\n"
METRICS_TIMEOUT = 60.0


@dataclass(frozen=True)
class MonitorRun:
    version: str
    summary: dict[str, Any]
    service: str
    threshold: float
    invoked_at: datetime


@pytest.fixture(scope="module")
def monitor_run(deployed: Deployed, served_champion: str) -> MonitorRun:
    from training.synthetic import generate

    frame = generate(DRIFTED_ROWS, seed=41, covariate_drift=1.0)
    instances = as_instances(frame)
    started = datetime.now(UTC)
    ids: list[str] = []
    for first in range(0, DRIFTED_ROWS, BATCH):
        answer = deployed.api.predict(instances[first : first + BATCH])
        assert answer["model_version"] == served_champion
        ids += [p["prediction_id"] for p in answer["predictions"]]
    truth = [{"prediction_id": i, "label": str(v)} for i, v in zip(ids, frame["churned"], strict=True)]
    feedback = deployed.api.post("/feedback", {"feedback": truth[:LABELLED_ROWS]})
    assert feedback.status == 202, feedback

    wanted = set(ids)

    def captured() -> set[str | None]:
        """The ids captured so far: the delivery may be filed under the next hour if one began meanwhile."""
        hours = hour_values(started, datetime.now(UTC))
        prefixes = [capture_hour_prefix("captures/", served_champion, hour) for hour in hours]
        return {r.get("prediction_id") for prefix in prefixes for r in deployed.records(prefix)}

    wait_for(
        f"the {DRIFTED_ROWS} drifted captures of {served_champion}",
        lambda: True if wanted <= captured() else None,
        timeout=DELIVERY_TIMEOUT,
        interval=1.0,
        seen=lambda: deployed.keys("captures/")[-3:],
    )
    settings = MonitorSettings.from_env(deployed.environment(deployed.deployment.monitor_function))
    invoked_at = datetime.now(UTC)
    summary, error = deployed.invoke(deployed.deployment.monitor_function, {})
    assert error is None, summary
    return MonitorRun(
        version=served_champion,
        summary=dict(summary),
        service=settings.service,
        threshold=settings.drift_threshold,
        invoked_at=invoked_at,
    )


def test_the_monitor_finds_the_drift_and_the_quality_of_the_window(monitor_run: MonitorRun) -> None:
    summary = monitor_run.summary
    assert summary["status"] == "ok", summary
    assert summary["model_version"] == monitor_run.version
    assert summary["captured"] >= DRIFTED_ROWS
    assert summary["labelled"] >= LABELLED_ROWS
    assert summary["max_feature_drift"] > monitor_run.threshold, summary
    assert summary["max_drift_feature"] in ("region", "tenure_months", "age", "data_usage_gb", "monthly_charges")
    assert summary["prediction_drift"] is not None
    assert set(summary["quality"]) == {"accuracy", "f1"}
    assert 0 <= summary["quality"]["accuracy"] <= 1


def test_the_monitor_writes_its_report_and_chart_under_the_champions_version(
    deployed: Deployed, monitor_run: MonitorRun
) -> None:
    summary = monitor_run.summary
    report_key, chart_key = summary.get("report"), summary.get("chart")
    assert report_key and report_key.startswith(f"monitoring/{monitor_run.version}/"), summary
    assert chart_key == report_key.removesuffix(".json") + ".png"
    bucket = deployed.deployment.data_bucket
    report = json.loads(deployed.s3.get_object(Bucket=bucket, Key=report_key)["Body"].read())
    assert report["version"] == monitor_run.version
    assert report["status"] == "ok"
    assert MonitorMetric.MAX_FEATURE_DRIFT in report["metrics"]
    assert MonitorMetric.LIVE_ACCURACY in report["metrics"]
    assert deployed.s3.get_object(Bucket=bucket, Key=chart_key)["Body"].read().startswith(PNG)


def test_the_monitor_publishes_its_metrics_with_the_service_dimension(
    deployed: Deployed, monitor_run: MonitorRun
) -> None:
    service = [{"Name": Dimension.SERVICE, "Value": monitor_run.service}]
    expected = {
        MonitorMetric.MAX_FEATURE_DRIFT, MonitorMetric.PREDICTION_DRIFT, MonitorMetric.FEATURE_DRIFT,
        MonitorMetric.LIVE_ACCURACY, MonitorMetric.LIVE_F1, MonitorMetric.CAPTURED_RECORDS,
        MonitorMetric.LABELLED_RECORDS,
    }  # fmt: skip

    def listed_metrics() -> list[Any]:
        return list(deployed.cloudwatch.list_metrics(Namespace=NAMESPACE, Dimensions=service)["Metrics"])

    drifted = {"Name": Dimension.FEATURE, "Value": monitor_run.summary["max_drift_feature"]}

    def all_published() -> list[Any] | None:
        metrics = listed_metrics()
        names = {metric["MetricName"] for metric in metrics}
        return metrics if expected <= names and any(drifted in m["Dimensions"] for m in metrics) else None

    # The metrics are lines in the monitor's log (EMF), which CloudWatch turns into metrics after the invocation.
    listed = wait_for(
        "the monitor's metrics in CloudWatch",
        all_published,
        timeout=METRICS_TIMEOUT,
        interval=1.0,
        seen=lambda: sorted({m["MetricName"] for m in listed_metrics()}),
    )
    assert any(
        drifted in metric["Dimensions"] for metric in listed if metric["MetricName"] == MonitorMetric.FEATURE_DRIFT
    ), listed

    for dimensions in (service, [*service, {"Name": Dimension.MODEL_VERSION, "Value": monitor_run.version}]):
        statistics = deployed.cloudwatch.get_metric_statistics(
            Namespace=NAMESPACE,
            MetricName=MonitorMetric.MAX_FEATURE_DRIFT,
            Dimensions=dimensions,
            StartTime=monitor_run.invoked_at - timedelta(minutes=2),
            EndTime=monitor_run.invoked_at + timedelta(minutes=2),
            Period=60,
            Statistics=["Maximum"],
        )["Datapoints"]
        assert statistics, dimensions
        highest = max(point["Maximum"] for point in statistics)
        assert highest >= monitor_run.summary["max_feature_drift"] - 1e-9, (dimensions, statistics)
