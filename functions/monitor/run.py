"""One monitor run: the champion's window of captures and feedback -> report, metrics, report objects.

Metrics are published before the report objects are written, and a chart that fails to render is noted in the
report rather than failing the run: the alarms depend on the metrics, nothing depends on the picture. Every run
publishes its :class:`~functions.monitor.metrics.Outcome`; the handler publishes a run that raised.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from functions.common.bundle import TASKS, Task
from functions.common.labelled import ReadCounts, join, plan_join
from functions.common.registry import Registry
from functions.monitor.adapters import CaptureStore, ReportStore, publish_metrics
from functions.monitor.drift import most_drifted
from functions.monitor.metrics import Outcome, metric_data, metric_sets, outcome_set
from functions.monitor.report import FeedbackCounts, Limits, WindowReport, evaluate
from functions.monitor.settings import MonitorSettings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

ChartRenderer = Callable[..., bytes]


def _render_chart(ranked: Sequence[tuple[str, float]], *, threshold: float, title: str) -> bytes:
    from functions.monitor.chart import drift_chart

    return drift_chart(ranked, threshold=threshold, title=title)


def run_monitor(
    settings: MonitorSettings,
    now: datetime,
    s3: S3Client,
    render_chart: ChartRenderer = _render_chart,
) -> dict[str, Any]:
    """Evaluate the window ending at ``now`` (minus the lag) for the current champion; returns a summary."""
    registry = Registry(s3, settings.model_bucket, settings.registry_prefix)
    champion = registry.champion()
    if champion is None:
        # Nothing to watch is not a blind monitor.
        publish_metrics([outcome_set(Outcome.COVERED, settings.service)], now)
        return {"status": "no_champion", "outcome": Outcome.COVERED, "time": now.isoformat()}
    version = champion.version
    metadata = registry.get_metadata(version)
    task = metadata.get("task")
    if task not in TASKS:
        raise ValueError(f"model {version} has no valid task in its metadata: {task!r}")

    end = now - timedelta(seconds=settings.window_lag_seconds)
    start = end - timedelta(minutes=settings.window_minutes)
    store = CaptureStore(s3, settings.data_bucket, settings.capture_prefix, settings.feedback_prefix)
    captures = store.predictions(version, start, end)
    feedback = store.feedback(start, end)
    max_age = timedelta(days=settings.feedback_max_age_days)
    plan = plan_join(feedback, cast(Task, task), end, max_age)
    joined = join(plan, store.captures([version], plan.hours))

    report = evaluate(
        version=version,
        metadata=metadata,
        time=now,
        start=start,
        end=end,
        captures=captures,
        labelled=joined.pairs,
        feedback=FeedbackCounts(len(feedback), plan.rejected, joined.unmatched),
        limits=Limits(settings.min_records, settings.min_feedback, settings.drift_threshold),
    )
    gaps = _gaps(report, store.counts)
    outcome = Outcome.NOT_COVERED if gaps else Outcome.COVERED
    sets = [*metric_sets(report, settings.service), outcome_set(outcome, settings.service)]
    publish_metrics(sets, now)
    data = metric_data(sets)

    document = report.to_dict()
    document["outcome"] = outcome
    document["notes"] += gaps
    document["metrics"] = sorted({datum.name for datum in data})
    document["reads"] = {
        "objects": store.counts.objects,
        "malformed_objects": store.counts.malformed_objects,
        "malformed_records": store.counts.malformed_records,
    }
    chart = _chart(report, render_chart, document)
    keys = ReportStore(s3, settings.data_bucket, settings.report_prefix).write(version, now, document, chart)
    return _summary(report, outcome, keys, len(data))


def _gaps(report: WindowReport, counts: ReadCounts) -> list[str]:
    """Why the run did not cover its window: none when it did."""
    gaps = []
    if report.status == "no_baseline":
        gaps.append("window not covered: drift cannot be measured without the champion's baseline")
    if counts.malformed_objects:
        gaps.append(f"window not covered: {counts.malformed_objects} objects could not be read")
    return gaps


def _chart(report: WindowReport, render_chart: ChartRenderer, document: dict[str, Any]) -> bytes | None:
    if report.status != "ok" or not report.features:
        return None
    title = f"{report.version}: feature drift, {report.start:%Y-%m-%d %H:%M} to {report.end:%H:%M} UTC"
    try:
        return render_chart(most_drifted(report.features), threshold=report.limits.drift_threshold, title=title)
    except Exception as exc:  # the chart is optional; the metrics are already published
        document["notes"].append(f"chart not rendered: {exc!r}")
        return None


def _summary(report: WindowReport, outcome: Outcome, keys: dict[str, str], metric_count: int) -> dict[str, Any]:
    top = report.max_feature_drift
    return {
        "status": report.status,
        "outcome": outcome,
        "model_version": report.version,
        "time": report.time.isoformat(),
        "captured": report.captured,
        "labelled": report.labelled,
        "max_feature_drift": None if report.status != "ok" or top is None else top[1],
        "max_drift_feature": None if report.status != "ok" or top is None else top[0],
        "prediction_drift": report.prediction_drift if report.status == "ok" else None,
        "quality": dict(report.quality),
        "metrics_published": metric_count,
        **keys,
    }
