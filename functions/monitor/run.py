"""One monitor run: the champion's window of captures and feedback -> report, metrics, report objects.

Athena counts (:mod:`functions.monitor.queries`, three queries a run, and a fourth for the data-quality constraints
of :mod:`functions.monitor.data_quality`); the run holds only those counts, so its
memory does not grow with the window's traffic. A query that fails or outlives the run's deadline raises: the
handler publishes the failed run.

Metrics are published before the report objects are written, and a chart that fails to render is noted in the
report rather than failing the run: the alarms depend on the metrics, nothing depends on the picture. Every run
publishes its :class:`~functions.monitor.metrics.Outcome`; the handler publishes a run that raised.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from functions.common.athena import Athena, QueryResult
from functions.common.bundle import TASKS, Task, recorded_missing_tokens
from functions.common.constraints import ConstraintsError, read_constraints
from functions.common.distribution import DistributionError
from functions.common.labelled_sql import FeedbackWindow, capture_hours
from functions.common.registry import Registry
from functions.monitor import data_quality, queries
from functions.monitor.adapters import ReportStore, publish_metrics
from functions.monitor.data_quality import DataQuality
from functions.monitor.drift import most_drifted
from functions.monitor.metrics import Outcome, constraint_sets, metric_data, metric_sets, outcome_set
from functions.monitor.quality import Labelled
from functions.monitor.report import FeedbackCounts, Limits, LiveCounts, WindowReport, baseline, evaluate
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
    athena: Athena,
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
    task = cast(Task, task)

    end = now - timedelta(seconds=settings.window_lag_seconds)
    start = end - timedelta(minutes=settings.window_minutes)
    window = queries.Window(version, start, end)
    ran: list[QueryResult] = []
    # The strings the champion's serving reads as missing values: the queries read them so too.
    tokens = recorded_missing_tokens(metadata)
    live = _live_counts(athena, window, task, metadata, tokens, ran)
    labelled, feedback = _labelled(athena, window, task, timedelta(days=settings.feedback_max_age_days), ran)
    quality, quality_note = _data_quality(
        registry, athena, window, metadata, tokens, live.captured, settings.min_records, ran
    )

    report = evaluate(
        version=version,
        metadata=metadata,
        time=now,
        start=start,
        end=end,
        live=live,
        labelled=labelled,
        feedback=feedback,
        limits=Limits(settings.min_records, settings.min_feedback, settings.drift_threshold),
    )
    gaps = _gaps(report)
    outcome = Outcome.NOT_COVERED if gaps else Outcome.COVERED
    sets = [*metric_sets(report, settings.service), outcome_set(outcome, settings.service)]
    if quality is not None:
        sets += constraint_sets(quality, settings.service)
    publish_metrics(sets, now)
    data = metric_data(sets)

    document = report.to_dict()
    document["outcome"] = outcome
    document["notes"] += [*gaps, *([quality_note] if quality_note else [])]
    document["data_quality"] = None if quality is None else quality.to_dict()
    document["metrics"] = sorted({datum.name for datum in data})
    document["queries"] = [{"id": result.query_id, "scanned_bytes": result.scanned_bytes} for result in ran]
    document["scanned_bytes"] = sum(result.scanned_bytes for result in ran)
    chart = _chart(report, render_chart, document)
    keys = ReportStore(s3, settings.data_bucket, settings.report_prefix).write(version, now, document, chart)
    summary = _summary(report, outcome, keys, len(data), document["scanned_bytes"])
    summary["constraint_violations"] = None if quality is None else len(quality.violations)
    return summary


def _live_counts(
    athena: Athena,
    window: queries.Window,
    task: Task,
    metadata: dict[str, Any],
    tokens: Sequence[str],
    ran: list[QueryResult],
) -> LiveCounts:
    """The window's captures, binned like the baseline (only counted when the champion has none)."""
    try:
        reference = baseline(metadata)
    except DistributionError:
        live, result = count_live(athena, window, [], [])
    else:
        classes = [str(c) for c in metadata.get("classes", ())]
        features = queries.feature_distributions(reference, tokens)
        positive = metadata.get("positive_class")
        answers = queries.prediction_distributions(
            reference, task, classes, None if positive is None else str(positive)
        )
        live, result = count_live(athena, window, features, answers)
    ran.append(result)
    return live


def count_live(
    athena: Athena,
    window: queries.Window,
    features: Sequence[queries.Distribution],
    predictions: Sequence[queries.Distribution],
) -> tuple[LiveCounts, QueryResult]:
    """The drift query over the window's captures, and its rows as counts per feature and prediction."""
    distributions = [*features, *predictions]
    result = athena.run(queries.drift_query(window, distributions))
    captured, counts = queries.drift_counts(result.rows, len(distributions))
    # By position: a feature may be named like a prediction distribution ("label").
    split = len(features)
    live = LiveCounts(
        captured,
        features={d.name: c for d, c in zip(features, counts[:split], strict=True)},
        predictions={d.name: c for d, c in zip(predictions, counts[split:], strict=True)},
    )
    return live, result


def _data_quality(
    registry: Registry,
    athena: Athena,
    window: queries.Window,
    metadata: dict[str, Any],
    tokens: Sequence[str],
    captured: int,
    min_records: int,
    ran: list[QueryResult],
) -> tuple[DataQuality | None, str | None]:
    """The window's captures checked against the constraints that apply to the champion (an operator's, else its
    training's), and a note when they are not checked. An insufficient window is not checked (its report says so)."""
    if captured < min_records:
        return None, None
    found = registry.constraints(window.version, metadata.get("files") or {})
    if found is None:
        return None, "data quality not checked: the champion's bundle has no constraints.json and none is stored"
    source, text = found
    try:
        constraints = read_constraints(text)
        query = data_quality.constraints_query(window, constraints, tokens)
    except ConstraintsError as exc:
        return None, f"data quality not checked: {source}: {exc}"
    config = constraints.monitoring_config
    if not config.evaluate_constraints:
        return None, f"data quality not checked: {source} sets evaluate_constraints Disabled"
    result = athena.run(query)
    ran.append(result)
    total, counts = data_quality.constraint_counts(result.rows, constraints)
    return DataQuality(
        source=source,
        checked=total,
        emit_metrics=config.emit_metrics,
        features={feature.name: found for feature, found in zip(constraints.features, counts, strict=True)},
        violations=tuple(data_quality.check(constraints, total, counts)),
    ), None


def _labelled(
    athena: Athena, window: queries.Window, task: Task, max_age: timedelta, ran: list[QueryResult]
) -> tuple[Labelled, FeedbackCounts]:
    """The window's feedback joined to the champion's captures: first its fates and id prefixes, then the join over
    the capture hours the prefixes name (none when no feedback is usable)."""
    feedback = FeedbackWindow(window.start, window.end, max_age, task)
    result = athena.run(queries.feedback_query(feedback))
    ran.append(result)
    status = queries.feedback_status(result.rows)
    hours = capture_hours(status.prefixes, feedback)
    labelled = Labelled()
    if hours:
        joined = athena.run(queries.join_query(window, feedback, hours))
        ran.append(joined)
        labelled = queries.labelled(joined.rows, task)
    return labelled, FeedbackCounts(status.received, status.rejected, status.usable - labelled.count, status.dropped)


def _gaps(report: WindowReport) -> list[str]:
    """Why the run did not cover its window: none when it did."""
    if report.status == "no_baseline":
        return ["window not covered: drift cannot be measured without the champion's baseline"]
    return []


def _chart(report: WindowReport, render_chart: ChartRenderer, document: dict[str, Any]) -> bytes | None:
    if report.status != "ok" or not report.features:
        return None
    title = f"{report.version}: feature drift, {report.start:%Y-%m-%d %H:%M} to {report.end:%H:%M} UTC"
    try:
        return render_chart(most_drifted(report.features), threshold=report.limits.drift_threshold, title=title)
    except Exception as exc:  # the chart is optional; the metrics are already published
        document["notes"].append(f"chart not rendered: {exc!r}")
        return None


def _summary(
    report: WindowReport, outcome: Outcome, keys: dict[str, str], metric_count: int, scanned_bytes: int
) -> dict[str, Any]:
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
        "scanned_bytes": scanned_bytes,
        **keys,
    }
